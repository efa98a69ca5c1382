"""cnnlab's thread pool across ``fork`` (DataLoader workers, test runners that fork)."""

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
