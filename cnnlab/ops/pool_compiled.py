"""2×2 max pooling with stride 2 as the lecture's loop, compiled (numba), in the (N, C, H, W)
layout: the pooling of LeNet, VGG and most of the networks people learn with.

The NumPy path (``pool.max_pool_forward``) takes a running maximum over the kernel offsets, one
pass over the whole ``(N, C, *O)`` block per offset plus passes for the arg-max bookkeeping;
here each window's four values are read once and compared in registers:

``Y[n, c, i, j] = max(X[n, c, 2i, 2j], X[n, c, 2i, 2j+1], X[n, c, 2i+1, 2j], X[n, c, 2i+1, 2j+1])``

The first maximum in window order wins, as on the NumPy path (PyTorch's rule). The position is
kept as the NumPy path keeps it, a flat index into the ``(n, c)`` plane (``i·W + j``), so the
cache and ``return_indices`` are the same for both paths. Windows do not overlap, so the
backward puts each ``dY`` in its window's chosen position and zeros elsewhere. An input holding
NaN goes to the NumPy path, whose rule (NaN wins over anything, the last NaN of a window is
kept) would slow every comparison here.

A loop written for any kernel, stride, dilation and padding was measured first: with those as
run-time values LLVM neither unrolls nor vectorises the window loops, and it ran 3-4 times
*slower* than the NumPy passes (2.2 ms against 0.68 ms for LeNet's first pooling); other
shapes keep the NumPy path.
"""

from __future__ import annotations

import numpy as np

from . import parallel
from .kernels import jit


def handles(kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
            pads) -> bool:
    """Whether these loops compute the layer: 2-D, 2×2 windows, stride 2, no dilation, no
    padding (ceil_mode's extra window on an odd size is padding too)."""
    return (kernel == (2, 2) and stride == (2, 2) and dilation == (1, 1)
            and all(pb == pe == 0 for pb, pe in pads))


@jit
def _max_pool_2x2(x, y, index, nan, start, stop):
    """``Y`` and (unless ``index`` is empty) the flat position of each window's maximum in its
    plane, for the planes ``(n, c)`` numbered ``start .. stop-1``; ``nan[t]`` says whether
    plane ``t`` holds a NaN.

    The comparisons are ``v > best`` alone: with the NaN rule in the same condition LLVM
    branches on every value and the loop ran 7 times slower (1.1 ms against 0.16 ms for
    LeNet's first pooling). NaN is only noted here, and a plane holding one is recomputed
    with the rule by the caller."""
    channels, w = x.shape[1], x.shape[3]
    oh, ow = y.shape[2], y.shape[3]
    keep = index.size > 0
    for t in range(start, stop):
        n, c = t // channels, t % channels
        seen = False
        for i in range(oh):
            r = 2 * i
            for j in range(ow):
                q = 2 * j
                best, at = x[n, c, r, q], 0
                seen |= best != best
                v = x[n, c, r, q + 1]
                seen |= v != v
                if v > best:
                    best, at = v, 1
                v = x[n, c, r + 1, q]
                seen |= v != v
                if v > best:
                    best, at = v, w
                v = x[n, c, r + 1, q + 1]
                seen |= v != v
                if v > best:
                    best, at = v, w + 1
                y[n, c, i, j] = best
                if keep:
                    index[n, c, i, j] = r * w + q + at
        nan[t] = seen


@jit
def _max_unpool(dy, index, dx, start, stop):
    """``dX[n, c].flat[index[n, c, o]] = dY[n, c, o]``, zero elsewhere, for the planes
    ``start .. stop-1``: windows that do not overlap each put their gradient in one place."""
    channels = dx.shape[1]
    oh, ow = dy.shape[2], dy.shape[3]
    for t in range(start, stop):
        n, c = t // channels, t % channels
        plane = dx[n, c].ravel()
        plane[:] = 0
        for i in range(oh):
            for j in range(ow):
                plane[index[n, c, i, j]] = dy[n, c, i, j]


def max_pool(x: np.ndarray, out: tuple[int, ...], keep_index: bool
             ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(Y (N, C, *O), index (N, C, *O) or None)`` of a layer that :func:`handles`, or None
    when ``X`` holds a NaN (the NumPy path then applies the NaN rule). The index is int32 when
    a plane has fewer than 2³¹ positions."""
    n, c = x.shape[:2]
    y = np.empty((n, c, *out), dtype=x.dtype)
    index_type = np.int32 if x.shape[2] * x.shape[3] < 2**31 else np.int64
    index = np.empty((n, c, *out) if keep_index else (0, 0, 0, 0), dtype=index_type)
    nan = np.empty(n * c, dtype=np.bool_)
    parallel.run_ranges(_max_pool_2x2, n * c, np.ascontiguousarray(x), y, index, nan,
                        size=x.size + 2 * y.size)
    if nan.any():
        return None
    return y, (index if keep_index else None)


def max_pool_backward(dy: np.ndarray, index: np.ndarray, in_sizes: tuple[int, ...]
                      ) -> np.ndarray:
    """``dX (N, C, H, W)`` of :func:`max_pool`."""
    n, c = dy.shape[:2]
    dx = np.empty((n, c, *in_sizes), dtype=dy.dtype)
    parallel.run_ranges(_max_unpool, n * c, np.ascontiguousarray(dy), index, dx,
                        size=dx.size + 2 * dy.size)
    return dx
