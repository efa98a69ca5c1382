"""cnnlab's thread pool: across ``fork`` (DataLoader workers, test runners that fork), and how
the compiled kernels deal out their ranges."""

from __future__ import annotations

import os
import threading

import pytest


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_runs_blocks_on_its_own_threads():
    """After ``fork`` the parent's pool threads are gone: a child that used them would wait
    forever (a DataLoader worker, mutmut's runner). The child starts a pool of its own."""
    from cnnlab.ops import parallel

    parallel.set_num_threads(2)
    try:
        done = []
        parallel.run_blocks(lambda start, stop: done.append(start), [0, 1, 2, 3])
        assert sorted(done) == [0, 1, 2] and parallel._pool is not None
        pid = os.fork()
        if pid == 0:                                    # the child: exit 0 only if it finished
            code = 1
            try:
                seen = []
                thread = threading.Thread(target=parallel.run_blocks,
                                          args=(lambda start, stop: seen.append(start),
                                                [0, 1, 2, 3, 4]))
                thread.start()
                thread.join(10)
                code = 0 if not thread.is_alive() and sorted(seen) == [0, 1, 2, 3] else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        parallel.set_num_threads(parallel._default_threads())


@pytest.mark.parametrize("items, per_block, per_thread, expected", [
    (40, None, 4, 5),            # 2 threads × 4 blocks: ranges of 5
    (40, 2, 4, 2),               # a smaller block asked for wins
    (40, 0, 4, 1),               # never empty ranges
    (40, None, 8, 2),
    (3, None, 4, 1),
])
def test_run_ranges_covers_every_item_once_in_ranges_of_the_block(items, per_block, per_thread,
                                                                 expected):
    from cnnlab.ops import parallel

    parallel.set_num_threads(2)
    try:
        seen = []
        parallel.run_ranges(lambda tag, start, stop: seen.append((tag, start, stop)), items,
                            "t", per_block=per_block, per_thread=per_thread)
    finally:
        parallel.set_num_threads(parallel._default_threads())
    assert sorted(i for _, start, stop in seen for i in range(start, stop)) == list(range(items))
    assert {tag for tag, _, _ in seen} == {"t"}
    assert max(stop - start for _, start, stop in seen) == expected


@pytest.mark.parametrize("size, calls", [(None, 8), ((1 << 20) - 1, 1), (1 << 20, 8)])
def test_run_ranges_keeps_a_small_job_on_the_calling_thread(size, calls):
    """Below about a megabyte of data, one call on the calling thread: waking a pool thread
    costs more than it saves."""
    import threading

    from cnnlab.ops import parallel

    parallel.set_num_threads(2)
    try:
        seen = []
        parallel.run_ranges(lambda start, stop: seen.append((start, stop,
                                                             threading.current_thread())),
                            40, size=size)
    finally:
        parallel.set_num_threads(parallel._default_threads())
    assert sorted(i for start, stop, _ in seen for i in range(start, stop)) == list(range(40))
    assert len(seen) == calls
    if calls == 1:
        assert seen[0][2] is threading.main_thread()


def test_a_pool_thread_not_started_is_cancelled_not_waited_for(monkeypatch):
    """When the calling thread has taken every block, a helper still queued is cancelled."""
    from cnnlab.ops import parallel

    cancelled = []

    class Queued:
        def cancel(self):
            cancelled.append(True)
            return True

        def result(self):
            raise AssertionError("a cancelled helper must not be waited for")

    class Pool:
        def submit(self, fn):
            return Queued()

    parallel.set_num_threads(2)
    monkeypatch.setattr(parallel, "_pool", Pool())
    try:
        seen = []
        parallel.run_blocks(lambda start, stop: seen.append((start, stop)), [0, 1, 2])
    finally:
        monkeypatch.setattr(parallel, "_pool", None)
        parallel.set_num_threads(parallel._default_threads())
    assert seen == [(0, 1), (1, 2)] and cancelled == [True]
