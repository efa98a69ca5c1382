"""Process memory policy: keep freed memory for the next training step instead of returning it.

A training step allocates and frees the same large temporaries every time (im2col matrices,
activations, gradients: about 11 MB per LeNet-5 step at batch 64). glibc's ``malloc`` gives such
memory back to the kernel when it is freed and maps it again on the next step, and every page
mapped again costs a page fault: 174,000 faults in 60 LeNet-5 steps, about 40% of the step time
(benchmarks/RESULTS.md). :func:`keep_freed_memory` tells ``malloc`` to keep up to a limit of
freed memory in the process, as jemalloc or tcmalloc would.

This changes the allocator of the whole process, so importing cnnlab never does it: the
``cnnlab`` command calls it (it owns its process), and a program of yours may call it once at
start-up. PyTorch's CPU tensors use the same ``malloc`` and gain from it too.

Example:
    >>> import cnnlab
    >>> took_effect = cnnlab.memory.keep_freed_memory(limit_mib=512)   # False if not glibc
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20       # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems


def keep_freed_memory(limit_mib: int = 512) -> bool:
    """Keep up to ``limit_mib`` MiB of freed memory in the process for reuse (glibc only).

    Allocations up to 32 MiB come from the heap instead of fresh ``mmap`` calls, and the heap is
    only trimmed once more than ``limit_mib`` MiB at its top are free.

    Args:
        limit_mib: how much freed memory the process may keep, in MiB (a positive int).

    Returns:
        True if the policy took effect; False where the C library is not glibc (macOS,
        Windows, musl), where nothing changes.
    """
    if isinstance(limit_mib, bool) or not isinstance(limit_mib, int) or limit_mib <= 0:
        raise ValueError(f"keep_freed_memory: limit_mib must be a positive int, received "
                         f"{limit_mib!r}.")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    limit = min(limit_mib, 2047) << 20                      # a C int
    return bool(mallopt(_M_MMAP_THRESHOLD, min(_MMAP_THRESHOLD_MAX, limit))
                and mallopt(_M_TRIM_THRESHOLD, limit))
