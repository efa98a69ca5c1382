"""Both cores for NumPy's element-wise passes: split a loop's blocks over a few threads.

BLAS already runs a GEMM on every core, but NumPy's element-wise loops (the copies, adds and
products of the convolution paths) run on the calling thread only. They release the GIL, so
threads that each take their own share of the blocks run side by side.

Every output element is computed by exactly one block, with the same arithmetic whatever the
number of threads, so results are bit for bit the same with 1 thread or many. The blocks of one
call must write disjoint outputs; anything summed across blocks is summed afterwards, in order,
by the caller.

``set_num_threads(n)`` (or the environment variable ``CNNLAB_NUM_THREADS``) sets how many
threads run the blocks; the default is the number of CPUs this process may use, at most 8.

GEMMs too can run as blocks on these threads (:func:`matmul`, once :func:`split_gemms` is on):
``cnnlab.threads.steady()`` turns it on when it makes BLAS single-threaded, so that a core taken
by another program slows one block down instead of stalling a BLAS thread team that spins while
it waits (benchmarks/RESULTS.md, "steady under load").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import threading
from collections.abc import Callable, Sequence

import numpy as np

_MAX_DEFAULT = 8
_MIN_PARALLEL = 1 << 20     # smaller arrays: handing work to a thread costs more than it saves
_GEMM_BLOCK = 1 << 22       # multiply-adds per GEMM block (smaller GEMMs run in one call)
_split_gemms = False
_pool: _Crew | None = None
_threads = 0


def _default_threads() -> int:
    value = os.environ.get("CNNLAB_NUM_THREADS", "")
    if value.strip().isdigit() and int(value) > 0:
        return int(value)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:                      # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_DEFAULT))


def num_threads() -> int:
    """How many threads run the blocks of :func:`run_blocks`."""
    global _threads
    if not _threads:
        _threads = _default_threads()
    return _threads


def _forget_pool() -> None:
    """In a child made by ``fork``: the parent's pool threads do not exist here, so a block
    handed to them would never run. The child starts its own pool when it needs one."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):             # not on Windows
    os.register_at_fork(after_in_child=_forget_pool)


class _Crew:
    """The pool: ``helpers`` threads, each waiting on a lock of its own for the next job.

    One call at a time hands a job to it (``busy``); a call that finds it busy (another
    thread's call, or a block's own nested call) runs its blocks alone. A helper is woken by
    releasing its ``start`` lock and says it is done by releasing its ``done`` lock: plain locks
    instead of ``concurrent.futures`` (a Future, its condition variable and a queue a call),
    which cost 13-15 µs less a call (a 4-block job of 11 µs on one thread: 58 -> 43 µs on
    two), depthwise 3×3 64 ch, 32×32×32, forward + backward 1.56 -> 1.52 ms, same process."""

    def __init__(self, helpers: int) -> None:
        self.busy = threading.Lock()
        self.settled = True                         # no helper is running a job
        self.job: Callable[[], None] | None = None
        self.error: BaseException | None = None
        self.starts: list[threading.Lock] = []
        self.dones: list[threading.Lock] = []
        self.threads: list[threading.Thread] = []
        self.cpu: int | None = -1                  # the caller's CPU when last seen (None: off)
        for i in range(helpers):
            start, done = threading.Lock(), threading.Lock()
            start.acquire()
            done.acquire()
            self.starts.append(start)
            self.dones.append(done)
            thread = threading.Thread(target=self._serve, args=(start, done), daemon=True,
                                      name=f"cnnlab-blocks-{i}")
            thread.start()
            self.threads.append(thread)

    def _serve(self, start: threading.Lock, done: threading.Lock) -> None:
        while True:
            start.acquire()
            job = self.job
            if job is None:                         # shut down
                return
            try:
                job()
            except BaseException as error:          # noqa: BLE001 (re-raised by the caller)
                if self.error is None:
                    self.error = error
            done.release()

    def run(self, job: Callable[[], None], helpers: int) -> None:
        """``job()`` on the calling thread and on ``helpers`` helpers; returns when all are
        done and re-raises the first error. A helper that has not woken up by the time the
        calling thread is done is not waited for: its wake-up is taken back."""
        self._keep_off_the_callers_cpu()
        self.job, self.error = job, None
        woken = list(zip(self.starts[:helpers], self.dones))
        for start, _ in woken:
            start.release()
        try:
            job()
        finally:
            self.settled = False                   # (stays so if a wait is interrupted)
            for start, done in woken:
                if not start.acquire(blocking=False):   # it woke up and took the job
                    done.acquire()
            self.settled = True
            self.job = None
        if self.error is not None:
            raise self.error

    def _keep_off_the_callers_cpu(self) -> None:
        """Let the helpers run on any CPU the calling thread may use but the one it is on.

        Linux wakes a thread on its waker's CPU when the two wake each other often, and on
        this 2-core VM, after any pause (0.25 s asleep), it put the helper on the calling
        thread's CPU and left it there for about 50 ms: the two took turns on one core while
        the other idled (depthwise 3×3 64 ch, 32×32×32: the first 20 calls after a pause 2.6-3.3
        ms, then 1.5). Re-pinned whenever the caller is found on another CPU (one system call
        then, none otherwise): the same calls 3.3, 2.3, then 1.9-1.5 ms from the third. The
        calling thread itself is never pinned. Off where the CPU cannot be asked for or set
        (not Linux, a sandbox that refuses it)."""
        if self.cpu is None:
            return
        try:
            cpu = _current_cpu()
            if cpu == self.cpu:
                return
            others = os.sched_getaffinity(0) - {cpu}
            for thread in self.threads:
                os.sched_setaffinity(thread.native_id, others or {cpu})
            self.cpu = cpu
        except (OSError, AttributeError, TypeError, ValueError):
            self.cpu = None                        # not possible here: never tried again

    def stop(self) -> None:
        """End the helper threads (after the running call, if any) and wait for them."""
        with self.busy:
            self.job = None
            for start in self.starts:
                start.release()
            for thread in self.threads:
                thread.join()


_sched_getcpu: Callable[[], int] | None = None


def _current_cpu() -> int:
    """The CPU the calling thread runs on (glibc's ``sched_getcpu``; AttributeError where
    there is none)."""
    global _sched_getcpu
    if _sched_getcpu is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        getcpu = libc.sched_getcpu
        getcpu.argtypes, getcpu.restype = [], ctypes.c_int
        _sched_getcpu = getcpu
    cpu = _sched_getcpu()
    if cpu < 0:
        raise OSError("sched_getcpu failed")
    return cpu


def set_num_threads(n: int) -> None:
    """Run element-wise blocks on ``n`` threads (1 runs them on the calling thread only)."""
    global _threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, received {n!r}.")
    if _pool is not None:
        _pool.stop()
        _pool = None
    _threads = n


def run_blocks(fn: Callable[[int, int], None], bounds: Sequence[int]) -> None:
    """Call ``fn(start, stop)`` for each consecutive pair of ``bounds``, spread over the threads.

    Each thread (the calling one included) takes the next block not yet taken until none is
    left, so a thread slowed down by another program on its core simply takes fewer blocks.
    It returns when all are done and re-raises the first error. A pool thread that has not
    woken up when the calling thread runs out of blocks is not waited for: waking a thread
    costs tens of microseconds, more than a small job's blocks.
    """
    global _pool
    blocks = iter(list(zip(bounds[:-1], bounds[1:])))
    threads = min(num_threads(), len(bounds) - 1)

    def run() -> None:
        for start, stop in blocks:       # one shared iterator: each block is taken once
            fn(start, stop)

    if threads <= 1:
        run()
        return
    if _pool is None:
        _pool = _Crew(num_threads() - 1)
    pool = _pool
    if not pool.busy.acquire(blocking=False):      # in use by another call: run alone
        run()
        return
    try:
        pool.run(run, threads - 1)
    except BaseException:
        if not pool.settled and _pool is pool:      # interrupted while waiting for a helper:
            _pool = None                            # a new pool next time
        raise
    finally:
        pool.busy.release()


def run_ranges(kernel: Callable[..., None], items: int, *args, per_block: int | None = None,
               per_thread: int = 4, size: int | None = None) -> None:
    """``kernel(*args, start, stop)`` over ranges of ``items`` (planes, channels, images) on the
    threads: blocks of ``per_block`` items, or at most as many as give each thread
    ``per_thread`` blocks. How the compiled kernels spread their outer loops.

    ``size`` is the number of array elements the whole call reads and writes: below
    ``_MIN_PARALLEL`` (a megabyte or so of float32) the call runs on the calling thread, as
    waking a pool thread would cost more than it saves (LeNet-5's pooling: 0.13 ms on one
    thread, 0.19 ms split over two)."""
    if size is not None and size < _MIN_PARALLEL:
        kernel(*args, 0, items)
        return
    block = max(1, items // (per_thread * num_threads()))
    if per_block is not None:
        block = max(1, min(per_block, block))
    run_blocks(lambda start, stop: kernel(*args, start, stop), split(items, block))


def split_gemms(on: bool) -> None:
    """Run large GEMMs of :func:`matmul` as column (or row) blocks on cnnlab's threads."""
    global _split_gemms
    _split_gemms = bool(on)


def gemms_split() -> bool:
    """Whether :func:`split_gemms` is on (BLAS single-threaded, GEMMs on cnnlab's threads)."""
    return _split_gemms


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` (``(..., m, k) @ (..., k, n)``); with :func:`split_gemms` on, a GEMM of at least
    two blocks' work is computed as blocks of output columns (rows when ``m > n``), each a full
    sum over ``k`` by one thread; a stack of GEMMs (``(s, m, k) @ (s, k, n)``), as blocks of
    whole GEMMs. The blocks depend on the shapes only, so the result is the
    same for any number of threads."""
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    stack = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    work = math.prod(stack) * m * k * n
    if not _split_gemms or work < 2 * _GEMM_BLOCK:
        return np.matmul(a, b)
    out = np.empty((*stack, m, n), dtype=np.result_type(a, b))
    if len(stack) == 1 and stack[0] > 1:           # a stack of GEMMs: whole GEMMs as blocks
        def part(start: int, stop: int) -> None:
            np.matmul(a[start:stop] if a.ndim == 3 else a, b[start:stop] if b.ndim == 3 else b,
                      out=out[start:stop])

        run_blocks(part, split(stack[0], -(-stack[0] // min(stack[0], -(-work // _GEMM_BLOCK)))))
        return out
    by_rows = m > n
    length = m if by_rows else n
    count = max(1, min(length // 32, -(-work // _GEMM_BLOCK)))

    def block(start: int, stop: int) -> None:
        if by_rows:
            np.matmul(a[..., start:stop, :], b, out=out[..., start:stop, :])
        else:
            np.matmul(a, b[..., start:stop], out=out[..., start:stop])

    run_blocks(block, split(length, -(-length // count)))
    return out


def split(n: int, block: int) -> list[int]:
    """Bounds of the fewest blocks of at most ``block`` items that hold ``n``, of sizes that
    differ by one at most: equal blocks keep the threads busy to the end (LeNet-5's second
    layer, 64 images in blocks of at most 17: 17, 17, 17, 13 left one thread 4 images idle)."""
    count = -(-n // max(1, block))
    return [i * n // count for i in range(count)] + [n]


def copyto(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` (``src`` may be any strided view of the same shape), on the threads."""
    split_map(np.copyto, dst, src)


def add(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst += src`` (same shapes), on the threads."""
    add_into(dst, dst, src)


def add_into(dst: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``dst[...] = a + b`` (``b`` broadcast to ``dst``'s shape), on the threads."""
    split_map(lambda d, x, y: np.add(x, y, out=d), dst, a, np.broadcast_to(b, dst.shape))


def split_map(fn: Callable[..., object], dst: np.ndarray, *srcs: np.ndarray) -> None:
    """``fn(dst part, *src parts)`` for an element-wise ``fn`` writing into ``dst``: over blocks
    of the first axis with at least as many items as threads when the arrays are large (all
    arrays have ``dst``'s shape)."""
    threads = num_threads()
    axis = next((i for i, n in enumerate(dst.shape) if n >= threads), None)
    if threads == 1 or axis is None or dst.size < _MIN_PARALLEL:
        fn(dst, *srcs)
        return
    index = (slice(None),) * axis

    def block(start: int, stop: int) -> None:
        part = index + (slice(start, stop),)
        fn(dst[part], *(src[part] for src in srcs))

    run_blocks(block, split(dst.shape[axis], -(-dst.shape[axis] // threads)))


def contiguous(src: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``src`` made with :func:`copyto` (``src`` itself if it is one)."""
    if src.flags.c_contiguous:
        return src
    dst = np.empty(src.shape, dtype=src.dtype)
    copyto(dst, src)
    return dst
