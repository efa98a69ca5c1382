"""N-dimensional max, average and adaptive average pooling, forward and backward.

One implementation serves 1-, 2- and 3-D: ``nd = len(kernel)`` spatial axes. Arguments arrive
normalised (tuples of length ``nd``; padding ``p`` per axis, or ``(p_begin, p_end)`` pairs as
ONNX writes them); the functional layer checks them. Semantics are PyTorch's, including
``ceil_mode`` and ``count_include_pad``, extended to per-side padding and dilated averages.

Notation (per spatial axis, multi-indices for nd > 1): input ``X (N, C, *S)``; window ``k``,
stride ``s``, dilation ``d``, padding ``p``; output ``Y (N, C, *O)`` with ``O`` from
:func:`~cnnlab.ops.shapes.pool_output_size`. Output position ``o`` reads the padded input ``Xp``
at ``o*s + j*d`` for ``j = 0..k-1`` (``Xp[i] = X[i - p]``). With ``ceil_mode`` the last window may
reach past the right padding; ``Xp`` is then extended (with -inf, or zeros that are not counted)
so every window lies inside it.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np

from . import kernels, pool_compiled
from .pad import pad_forward
from .shapes import Pairs, pool_output_size, windows_overlap
from .windows import col2im, sliding_windows


def _pairs(padding) -> Pairs:
    """Per-axis ``p`` or ``(p_begin, p_end)`` -> pairs."""
    return tuple((p, p) if isinstance(p, (int, np.integer)) else (p[0], p[1]) for p in padding)


def _geometry(in_sizes: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
              padding, dilation: tuple[int, ...],
              ceil_mode: bool) -> tuple[tuple[int, ...], Pairs]:
    """Output sizes and the ``(before, after)`` padding of ``Xp``.

    ``after`` is ``p_end``, or more when ceil_mode's last window ends past ``n + p_b + p_e``.
    """
    pairs = _pairs(padding)
    out = tuple(pool_output_size(n, k, s, p, d, ceil_mode)
                for n, k, s, p, d in zip(in_sizes, kernel, stride, pairs, dilation))
    pads = tuple((pb, max(pe, (o - 1) * s + d * (k - 1) + 1 - n - pb))
                 for n, k, s, (pb, pe), d, o in zip(in_sizes, kernel, stride, pairs, dilation,
                                                     out))
    return out, pads


def _crop(dxp: np.ndarray, pads: Pairs, in_sizes: tuple[int, ...]) -> np.ndarray:
    """``dXp (N, C, *S_padded) -> dX (N, C, *S)``: the padding receives no gradient."""
    if not any(pb or pe for pb, pe in pads):
        return dxp
    return dxp[(..., *(slice(pb, pb + n) for (pb, _), n in zip(pads, in_sizes)))]


def _plane_strides(sizes: tuple[int, ...]) -> tuple[int, ...]:
    """C-order element strides of one ``(*sizes)`` plane: ``(5, 7) -> (7, 1)``."""
    return tuple(math.prod(sizes[a + 1:]) for a in range(len(sizes)))


def _offset_grid(counts: tuple[int, ...], steps: tuple[int, ...]) -> np.ndarray:
    """``grid[i_1, .., i_nd] = Σ_a i_a * steps[a]``: flat offsets of a regular lattice."""
    grid = np.zeros(counts, dtype=np.intp)
    for a, (count, step) in enumerate(zip(counts, steps)):
        shape = [1] * len(counts)
        shape[a] = count
        grid += (np.arange(count, dtype=np.intp) * step).reshape(shape)
    return grid


# ----------------------------------------------------------------------------- max pooling

class MaxPoolCache(NamedTuple):
    index: np.ndarray           # (N, C, *O) flat index of each maximum within its padded plane
    padded: tuple[int, ...]     # spatial sizes of Xp
    pads: Pairs
    in_sizes: tuple[int, ...]
    overlap: bool               # can two windows read the same input position?
    compiled: bool = False      # made by pool_compiled's 2×2 loops, which also run the backward


def max_pool_forward(x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...],
                     padding: tuple[int, ...], dilation: tuple[int, ...],
                     ceil_mode: bool = False,
                     keep_index: bool = True) -> tuple[np.ndarray, MaxPoolCache | None]:
    """Max pooling: ``Y[n, c, o] = max_j Xp[n, c, o*s + j*d]`` with ``Xp`` padded by -inf.

    The first maximum in window order wins and NaN propagates (PyTorch's rule
    ``v > best or isnan(v)``). The position of each maximum is kept for the backward pass, as a
    flat index into its ``(n, c)`` plane of ``Xp``. A window whose values are all -inf points at
    its first real input position, as in PyTorch.

    Algorithm: a running maximum over the ``prod(k)`` kernel offsets, each step one vectorised
    comparison of the ``(N, C, *O)`` block that the offset reads. With ``keep_index=False``
    (no gradient and no indices wanted) only the maxima are computed and the cache is ``None``.

    Shapes: ``x (N, C, *S)`` -> ``y (N, C, *O)``.
    """
    in_sizes = x.shape[2:]
    out, pads = _geometry(in_sizes, kernel, stride, padding, dilation, ceil_mode)
    compiled = (pool_compiled.max_pool(x, out, keep_index)            # 2×2, stride 2
                if pool_compiled.handles(kernel, stride, dilation, pads)
                and kernels.use_compiled() else None)                   # (None: NaN in X)
    if compiled is not None:
        best, index = compiled
        if not keep_index:
            return best, None
        return best, MaxPoolCache(index, in_sizes, pads, in_sizes, False, compiled=True)
    xp, _ = pad_forward(x, pads, "constant", value=-np.inf)              # (N, C, *S_padded)
    padded = xp.shape[2:]
    windows = sliding_windows(xp, kernel, stride, dilation, out)        # (N, C, *k, *O) view
    steps = _plane_strides(padded)
    kernel_offsets = _offset_grid(kernel, tuple(d * st for d, st in zip(dilation, steps)))

    if not keep_index:
        return _window_reduce(np.maximum, windows, kernel), None         # NaN propagates
    best, index = _running_max(windows, kernel_offsets, nan_aware=False)
    if np.isnan(best).any():          # NaN anywhere in a window reaches its maximum: redo
        best, index = _running_max(windows, kernel_offsets, nan_aware=True)
    index += _offset_grid(out, tuple(s * st for s, st in zip(stride, steps)))  # window starts
    if any(pb or pe for pb, pe in pads):
        _point_at_first_real(index, best, out, stride, dilation, pads, steps)

    overlap = windows_overlap(kernel, stride, dilation)
    return best, MaxPoolCache(index, padded, pads, in_sizes, overlap)


def _window_reduce(ufunc: np.ufunc, windows: np.ndarray, kernel: tuple[int, ...]) -> np.ndarray:
    """Reduce ``(N, C, *k, *O) -> (N, C, *O)`` with one in-place ``ufunc`` per kernel offset.

    For ``np.add`` this is about 15× faster than ``windows.sum(axis)`` over the strided axes.
    """
    lead = (slice(None), slice(None))
    offsets = itertools.product(*(range(k) for k in kernel))
    total = windows[(*lead, *next(offsets))].copy()                      # (N, C, *O)
    for offset in offsets:
        ufunc(total, windows[(*lead, *offset)], out=total)
    return total


def _running_max(windows: np.ndarray, kernel_offsets: np.ndarray,
                 nan_aware: bool) -> tuple[np.ndarray, np.ndarray]:
    """Maximum over the kernel axes of ``(N, C, *k, *O)`` and the kernel offset where it is.

    One pass per kernel offset; the index is updated arithmetically,
    ``index += better * (offset - index)``, because masked writes are several times slower.
    """
    lead = (slice(None), slice(None))
    kernel = kernel_offsets.shape
    small = np.int16 if math.prod(kernel) <= np.iinfo(np.int16).max else np.intp
    offsets = itertools.product(*(range(k) for k in kernel))
    best = windows[(*lead, *next(offsets))].copy()                       # (N, C, *O)
    which = np.zeros(best.shape, dtype=small)       # running argmax as a kernel position number
    better = np.empty(best.shape, dtype=bool)
    step = np.empty(best.shape, dtype=small)
    for j, offset in enumerate(offsets, start=1):
        values = windows[(*lead, *offset)]
        np.greater(values, best, out=better)
        if nan_aware:
            better |= np.isnan(values)
        np.maximum(values, best, out=best)                               # NaN propagates
        np.subtract(small(j), which, out=step)
        step *= better
        which += step
    return best, kernel_offsets.ravel()[which]                           # (N, C, *O) flat


def _point_at_first_real(index: np.ndarray, best: np.ndarray, out: tuple[int, ...],
                         stride: tuple[int, ...], dilation: tuple[int, ...], pads: Pairs,
                         steps: tuple[int, ...]) -> None:
    """Windows whose maximum is -inf: point at the first real input position (PyTorch's index)."""
    all_neg_inf = np.isneginf(best)
    if not all_neg_inf.any():
        return
    first = np.zeros(out, dtype=np.intp)
    for a, (o, s, d, (pb, _), step) in enumerate(zip(out, stride, dilation, pads, steps)):
        start = np.arange(o) * s                          # window starts in Xp
        j = np.maximum(-(-(pb - start) // d), 0)           # first offset with start + j*d >= p
        shape = [1] * len(out)
        shape[a] = o
        first += ((start + j * d) * step).reshape(shape)
    np.copyto(index, np.broadcast_to(first, index.shape), where=all_neg_inf)


def max_pool_backward(dy: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    """``dX[argmax of window o] += dY[o]``: the gradient flows only to each window's maximum.

    The stored flat indices are offset by their ``(n, c)`` plane and ``dY`` is scattered with them:
    one assignment when windows cannot overlap (every position is hit at most once), otherwise
    ``np.add.at``, which sums the contributions of overlapping windows.

    Shapes: ``dy (N, C, *O)`` -> ``dx (N, C, *S)``.
    """
    if cache.compiled:
        return pool_compiled.max_pool_backward(dy, cache.index, cache.in_sizes)
    planes = dy.shape[0] * dy.shape[1]
    plane = math.prod(cache.padded)
    outputs = math.prod(dy.shape[2:])
    flat = cache.index.reshape(planes, outputs) + (np.arange(planes) * plane)[:, None]  # (N*C, O)
    dxp = np.zeros(planes * plane, dtype=dy.dtype)
    if cache.overlap:
        np.add.at(dxp, flat.ravel(), dy.ravel())         # repeated indices accumulate
    else:
        dxp[flat.ravel()] = dy.ravel()
    dxp = dxp.reshape(dy.shape[:2] + cache.padded)                       # (N, C, *S_padded)
    return _crop(dxp, cache.pads, cache.in_sizes)                        # (N, C, *S)


def max_pool_indices(cache: MaxPoolCache) -> np.ndarray:
    """PyTorch's ``return_indices``: flat int64 index of each maximum in its unpadded plane."""
    coords = np.unravel_index(cache.index, cache.padded)
    steps = _plane_strides(cache.in_sizes)
    flat = sum((c - pb) * st for c, (pb, _), st in zip(coords, cache.pads, steps))
    return np.asarray(flat, dtype=np.int64)


# ----------------------------------------------------------------------------- average pooling

class AvgPoolCache(NamedTuple):
    divisor: np.ndarray         # (*O) or a 0-d array (divisor_override)
    padded: tuple[int, ...]
    pads: Pairs
    in_sizes: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]


def avg_pool_divisor(in_sizes: tuple[int, ...], kernel: tuple[int, ...],
                     stride: tuple[int, ...], padding, out: tuple[int, ...],
                     count_include_pad: bool, dtype=np.float32,
                     dilation: tuple[int, ...] | None = None) -> np.ndarray:
    """How many positions each window averages over, PyTorch's rule, ``(*O)``.

    Per axis the window's positions ``o*s - p_b + j*d`` (``j = 0..k-1``) are counted inside the
    padded extent ``[-p_b, n + p_e)`` when ``count_include_pad``, else inside the input
    ``[0, n)``; the per-axis counts multiply. The extra region that ``ceil_mode`` adds past
    ``n + p_e`` is never counted.
    """
    dilation = dilation or (1,) * len(kernel)
    divisor = np.ones(out, dtype=dtype)
    for a, (n, k, s, (pb, pe), d, o) in enumerate(zip(in_sizes, kernel, stride,
                                                       _pairs(padding), dilation, out)):
        start = np.arange(o) * s - pb
        low, high = (-pb, n + pe) if count_include_pad else (0, n)
        first = np.maximum(-((start - low) // d), 0)             # ceil((low - start) / d)
        last = np.minimum((high - 1 - start) // d, k - 1)
        count = np.maximum(last - first + 1, 0)                   # (O_a,)
        shape = [1] * len(out)
        shape[a] = o
        divisor *= count.reshape(shape).astype(dtype)
    return divisor


def avg_pool_forward(x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...],
                     padding, ceil_mode: bool = False,
                     count_include_pad: bool = True,
                     divisor_override: int | None = None,
                     dilation: tuple[int, ...] | None = None
                     ) -> tuple[np.ndarray, AvgPoolCache]:
    """Average pooling: ``Y[n, c, o] = Σ_j Xp[n, c, o*s + j*d] / D[o]`` with ``Xp`` zero-padded.

    ``D[o]`` is :func:`avg_pool_divisor` (or ``divisor_override``). The window sums are one
    add per kernel offset of the zero-copy :func:`sliding_windows` view. A window all in the
    padding (possible with per-side padding as large as the kernel) averages nothing: 0.

    Shapes: ``x (N, C, *S)`` -> ``y (N, C, *O)``.
    """
    nd = len(kernel)
    in_sizes = x.shape[2:]
    dilation = dilation or (1,) * nd
    out, pads = _geometry(in_sizes, kernel, stride, padding, dilation, ceil_mode)
    xp, _ = pad_forward(x, pads)                                         # (N, C, *S_padded)
    windows = sliding_windows(xp, kernel, stride, dilation, out)        # (N, C, *k, *O) view
    sums = _window_reduce(np.add, windows, kernel)                       # (N, C, *O)
    if divisor_override is None:
        divisor = avg_pool_divisor(in_sizes, kernel, stride, padding, out, count_include_pad,
                                   x.dtype, dilation)
        divisor = np.where(divisor == 0, np.asarray(1, x.dtype), divisor)  # empty window: 0
    else:
        divisor = np.asarray(divisor_override, dtype=x.dtype)
    y = sums / divisor
    return y, AvgPoolCache(divisor, xp.shape[2:], pads, in_sizes, kernel, stride, dilation)


def avg_pool_backward(dy: np.ndarray, cache: AvgPoolCache) -> np.ndarray:
    """``dX[o*s + j*d - p] += dY[o] / D[o]`` for every window offset ``j``: col2im of ``dY / D``.

    Shapes: ``dy (N, C, *O)`` -> ``dx (N, C, *S)``.
    """
    nd = len(cache.kernel)
    share = (dy / cache.divisor)[(slice(None), slice(None), *(None,) * nd)]   # (N, C, 1.., *O)
    cols = np.broadcast_to(share, dy.shape[:2] + cache.kernel + dy.shape[2:])  # (N, C, *k, *O)
    dxp = col2im(cols, cache.padded, cache.kernel, cache.stride, cache.dilation)  # (N, C, *Sp)
    return _crop(dxp, cache.pads, cache.in_sizes)


# ----------------------------------------------------------------------------- adaptive

class AdaptiveAvgPoolCache(NamedTuple):
    matrices: tuple[np.ndarray | None, ...]   # per spatial axis (O_a, S_a); None: axis kept


def adaptive_avg_matrix(n: int, out: int, dtype=np.float32) -> np.ndarray:
    """The ``(out, n)`` averaging matrix of one axis, PyTorch's bins.

    Row ``i`` averages ``[floor(i*n/out), ceil((i+1)*n/out))``: ``A[i, j] = 1/len`` inside it.

    >>> adaptive_avg_matrix(5, 3, np.float64) * 6
    array([[3., 3., 0., 0., 0.],
           [0., 2., 2., 2., 0.],
           [0., 0., 0., 3., 3.]])
    """
    i = np.arange(out)
    start = i * n // out
    end = -(-(i + 1) * n // out)
    j = np.arange(n)
    inside = (j >= start[:, None]) & (j < end[:, None])                  # (out, n)
    return (inside / (end - start)[:, None]).astype(dtype)


def _along(x: np.ndarray, axis: int, matrix: np.ndarray) -> np.ndarray:
    """Apply ``matrix (M, S_a)`` along ``axis``: ``(.., S_a, ..) -> (.., M, ..)``."""
    return np.moveaxis(np.moveaxis(x, axis, -1) @ matrix.T, -1, axis)


def adaptive_avg_pool_forward(x: np.ndarray, output_size: tuple[int | None, ...]
                              ) -> tuple[np.ndarray, AdaptiveAvgPoolCache]:
    """Adaptive average pooling: ``Y = X ×_1 A_1 ×_2 A_2 ...`` (one averaging matrix per axis).

    For 2-D: ``Y[n, c] = A_h X[n, c] A_wᵀ``, i.e. ``einsum('nchw,ih,jw->ncij', X, A_h, A_w)``;
    each ``A_a`` is :func:`adaptive_avg_matrix`. ``None`` in ``output_size`` keeps that axis.

    Shapes: ``x (N, C, *S)`` -> ``y (N, C, *O)``.
    """
    matrices = tuple(None if o is None else adaptive_avg_matrix(n, o, x.dtype)
                     for n, o in zip(x.shape[2:], output_size))
    y = x
    for axis, matrix in enumerate(matrices, start=2):
        if matrix is not None:
            y = _along(y, axis, matrix)                                  # S_a -> O_a
    if y is x:                                     # every axis kept: never alias the input
        y = x.copy()
    return y, AdaptiveAvgPoolCache(matrices)


def adaptive_avg_pool_backward(dy: np.ndarray, cache: AdaptiveAvgPoolCache) -> np.ndarray:
    """``dX = dY ×_1 A_1ᵀ ×_2 A_2ᵀ ...`` (the transposed averaging matrices).

    Shapes: ``dy (N, C, *O)`` -> ``dx (N, C, *S)``.
    """
    dx = dy
    for axis, matrix in enumerate(cache.matrices, start=2):
        if matrix is not None:
            dx = _along(dx, axis, matrix.T)                              # O_a -> S_a
    return dx
