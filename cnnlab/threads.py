"""Process thread policy: share the cores gracefully with whatever else the machine runs.

OpenBLAS (NumPy's BLAS) splits every GEMM over a team of threads that *spin* while they wait
for each other. When another program holds one of the cores, the thread on that core runs in
short slices, the team waits for it at every GEMM, and the spinning threads take more time
from the other program. On the 2-core machine ``cnnlab train`` took 55-85 s instead of 12-20 s
with one core busy (benchmarks/RESULTS.md).

:func:`steady` makes BLAS single-threaded and lets cnnlab's own thread pool
(``ops.parallel``) run everything in blocks instead: large GEMMs as column blocks, the compiled
kernels and the element-wise passes as blocks of planes. Idle pool threads sleep; a thread
slowed down by another program takes fewer blocks while the others take more.

Like ``cnnlab.memory``, this changes the whole process, so importing cnnlab never does it: the
``cnnlab`` command calls it (it owns its process); a program of yours may call it once at
start-up. ``CNNLAB_BLAS_THREADS=default`` leaves BLAS as it is.

Example:
    >>> import cnnlab
    >>> took_effect = cnnlab.threads.steady()      # False where no BLAS could be limited
"""

from __future__ import annotations

import os

from .ops import parallel

_limiter = None       # threadpoolctl's limiter, kept alive while the policy holds


def steady() -> bool:
    """BLAS on one thread, cnnlab's threads splitting the GEMMs; True if it took effect.

    Nothing changes (False) when ``CNNLAB_BLAS_THREADS=default`` is set or no BLAS library
    that threadpoolctl knows is loaded.
    """
    global _limiter
    if os.environ.get("CNNLAB_BLAS_THREADS", "").strip().lower() == "default":
        return False
    from threadpoolctl import threadpool_info, threadpool_limits

    if not any(pool.get("user_api") == "blas" for pool in threadpool_info()):
        return False
    _limiter = threadpool_limits(limits=1, user_api="blas")
    parallel.split_gemms(True)
    return True


def restore() -> None:
    """Undo :func:`steady`: BLAS's own thread count again, GEMMs in one call."""
    global _limiter
    if _limiter is not None:
        _limiter.restore_original_limits()
        _limiter = None
    parallel.split_gemms(False)
