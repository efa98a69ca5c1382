"""cnnlab's thread pool: across ``fork`` (DataLoader workers, test runners that fork), and how
the compiled kernels deal out their ranges."""

from __future__ import annotations

import os
import threading
import types

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


def test_a_pool_thread_not_woken_is_not_waited_for(monkeypatch):
    """When the calling thread has taken every block before a helper woke up, the helper's
    wake-up is taken back (its start lock acquired again) instead of waited for."""
    from cnnlab.ops import parallel

    crew = parallel._Crew(0)
    start, done = threading.Lock(), threading.Lock()   # a helper that never wakes up:
    start.acquire()                                    # waiting for it would hang
    done.acquire()
    crew.starts.append(start)
    crew.dones.append(done)
    parallel.set_num_threads(2)
    monkeypatch.setattr(parallel, "_pool", crew)
    seen = []
    try:
        caller = threading.Thread(target=parallel.run_blocks,
                                  args=(lambda lo, hi: seen.append((lo, hi)), [0, 1, 2]))
        caller.start()
        caller.join(10)
    finally:
        monkeypatch.setattr(parallel, "_pool", None)
        parallel.set_num_threads(parallel._default_threads())
    assert not caller.is_alive() and seen == [(0, 1), (1, 2)]
    assert start.locked() and not crew.busy.locked() and crew.settled


def test_a_helper_s_error_is_raised_by_the_caller():
    """A block that fails on a pool thread fails the call, after every block has finished."""
    from cnnlab.ops import parallel

    taken = threading.Event()

    def block(start: int, stop: int) -> None:
        if threading.current_thread() is threading.main_thread():
            assert taken.wait(10)                  # the helper takes the other block
            return
        taken.set()
        raise ValueError(f"block {start} failed on a helper")

    parallel.set_num_threads(2)
    try:
        with pytest.raises(ValueError, match="^block 1 failed on a helper$"):
            parallel.run_blocks(block, [0, 1, 2])
        seen = []                                  # and the pool still works
        parallel.run_blocks(lambda lo, hi: seen.append(lo), [0, 1, 2, 3])
        assert sorted(seen) == [0, 1, 2]
    finally:
        parallel.set_num_threads(parallel._default_threads())


def test_a_call_that_finds_the_pool_busy_runs_its_blocks_alone():
    """A block's own nested call (or another thread's call) while the pool runs a job: its
    blocks all run on its own thread, none waits for the busy helpers."""
    from cnnlab.ops import parallel

    inner = []

    def outer(start: int, stop: int) -> None:
        parallel.run_blocks(lambda lo, hi: inner.append((lo, threading.current_thread())),
                            [0, 1, 2, 3])

    parallel.set_num_threads(2)
    try:
        caller = threading.Thread(target=parallel.run_blocks, args=(outer, [0, 1, 2]))
        caller.start()
        caller.join(2)                 # (a nested call that waited for the pool would hang)
        assert not caller.is_alive()
    finally:
        parallel.set_num_threads(parallel._default_threads())
    assert sorted(lo for lo, _ in inner) == [0, 0, 1, 1, 2, 2]
    by_thread = {}                 # each nested call's three blocks on its caller's thread
    for lo, thread in inner:
        by_thread.setdefault(thread, []).append(lo)
    assert sorted(map(sorted, by_thread.values())) in ([[0, 0, 1, 1, 2, 2]],
                                                       [[0, 1, 2], [0, 1, 2]])


def test_the_helpers_are_kept_off_the_calling_thread_s_cpu(monkeypatch):
    """Before each job the helpers may run on every CPU the caller may use but the caller's
    own (Linux co-locates a thread with the thread that wakes it often): one system call a
    helper when the caller is found on another CPU, none while it stays; never again once
    the system refuses."""
    from cnnlab.ops import parallel

    crew = parallel._Crew(0)
    crew.threads = [types.SimpleNamespace(native_id=101), types.SimpleNamespace(native_id=102)]
    cpus = iter([3, 3, 5, 5, 0])
    pinned = []
    monkeypatch.setattr(parallel, "_current_cpu", lambda: next(cpus))
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(parallel.os, "sched_setaffinity",
                        lambda tid, cpus: pinned.append((tid, set(cpus))), raising=False)
    for _ in range(4):
        crew._keep_off_the_callers_cpu()
    assert pinned == [(101, {0, 5}), (102, {0, 5}), (101, {0, 3}), (102, {0, 3})]
    assert crew.cpu == 5

    def refuse(tid, cpus):
        raise PermissionError("not allowed here")

    monkeypatch.setattr(parallel.os, "sched_setaffinity", refuse, raising=False)
    crew._keep_off_the_callers_cpu()              # caller on CPU 0 now: refused, so off
    assert crew.cpu is None
    monkeypatch.setattr(parallel, "_current_cpu", lambda: pytest.fail("asked again"))
    crew._keep_off_the_callers_cpu()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs")
def test_after_a_job_the_helper_may_run_anywhere_but_on_the_caller_s_cpu():
    from cnnlab.ops import parallel

    parallel.set_num_threads(2)
    try:
        parallel.run_blocks(lambda lo, hi: None, [0, 1, 2, 3])
        crew = parallel._pool
        assert crew.cpu is not None and crew.cpu >= 0
        helper = crew.threads[0]
        assert os.sched_getaffinity(helper.native_id) == os.sched_getaffinity(0) - {crew.cpu}
    finally:
        parallel.set_num_threads(parallel._default_threads())
