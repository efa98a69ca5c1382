"""Slow, obviously-correct loop implementations that the fast ops are compared with.

Each function computes the textbook definition entry by entry, with explicit Python loops and
no strided tricks. Padding here is done by index arithmetic, independently of ``cnnlab.ops``.
"""

from __future__ import annotations

import itertools

import numpy as np


def padded_value(x: np.ndarray, index: tuple[int, ...], mode: str) -> float:
    """``x`` (spatial only) read at a possibly out-of-range ``index`` under a padding mode."""
    resolved = []
    for i, n in zip(index, x.shape):
        if 0 <= i < n:
            resolved.append(i)
        elif mode == "zeros":
            return 0.0
        elif mode == "reflect":
            resolved.append(-i if i < 0 else 2 * (n - 1) - i)
        elif mode == "replicate":
            resolved.append(min(max(i, 0), n - 1))
        elif mode == "circular":
            resolved.append(i % n)
        else:
            raise ValueError(mode)
    return float(x[tuple(resolved)])


def conv_nd(x, w, b=None, stride=None, pads=None, dilation=None, groups=1, mode="zeros",
            flip=False):
    """``y[n, o, i] = b[o] + Σ_c Σ_k x[n, g*Cg + c, i*s + k*d - p_begin] · w[o, c, k]``."""
    nd = w.ndim - 2
    stride = stride or (1,) * nd
    dilation = dilation or (1,) * nd
    pads = pads or ((0, 0),) * nd
    if flip:
        w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    n_batch, c_in = x.shape[:2]
    c_out, c_group = w.shape[:2]
    kernel = w.shape[2:]
    out = [(n + pb + pe - d * (k - 1) - 1) // s + 1
           for n, (pb, pe), k, s, d in zip(x.shape[2:], pads, kernel, stride, dilation)]
    y = np.zeros((n_batch, c_out, *out))
    out_per_group = c_out // groups
    for n, o in itertools.product(range(n_batch), range(c_out)):
        g = o // out_per_group
        for pos in itertools.product(*(range(m) for m in out)):
            total = 0.0 if b is None else float(b[o])
            for c in range(c_group):
                for k in itertools.product(*(range(m) for m in kernel)):
                    src = tuple(p * s + kk * d - pb for p, s, kk, d, (pb, _)
                                in zip(pos, stride, k, dilation, pads))
                    total += padded_value(x[n, g * c_group + c], src, mode) * w[(o, c, *k)]
            y[(n, o, *pos)] = total
    return y


def conv_transpose_nd(x, w, b=None, stride=None, pads=None, output_padding=None, dilation=None,
                      groups=1):
    """Scatter: ``y[n, g*Cg_out + o, i*s + k*d - p_begin] += x[n, c, i] · w[c, o, k]``."""
    nd = w.ndim - 2
    stride = stride or (1,) * nd
    dilation = dilation or (1,) * nd
    pads = pads or ((0, 0),) * nd
    output_padding = output_padding or (0,) * nd
    n_batch, c_in = x.shape[:2]
    c_out_group = w.shape[1]
    kernel = w.shape[2:]
    in_per_group = c_in // groups
    out = [(n - 1) * s - pb - pe + d * (k - 1) + op + 1 for n, s, (pb, pe), d, k, op
           in zip(x.shape[2:], stride, pads, dilation, kernel, output_padding)]
    y = np.zeros((n_batch, c_out_group * groups, *out))
    for n, c in itertools.product(range(n_batch), range(c_in)):
        g = c // in_per_group
        for pos in itertools.product(*(range(m) for m in x.shape[2:])):
            for o in range(c_out_group):
                for k in itertools.product(*(range(m) for m in kernel)):
                    dst = tuple(p * s + kk * d - pb for p, s, kk, d, (pb, _)
                                in zip(pos, stride, k, dilation, pads))
                    if all(0 <= t < m for t, m in zip(dst, out)):
                        y[(n, g * c_out_group + o, *dst)] += x[(n, c, *pos)] * w[(c, o, *k)]
    if b is not None:
        y += np.asarray(b).reshape((-1,) + (1,) * nd)
    return y


def output_size_table(n: int, k: int, s: int, pb: int, pe: int, d: int) -> int:
    """Count the window start positions that fit: the definition behind the size formula."""
    span = d * (k - 1) + 1
    return sum(1 for start in range(0, n + pb + pe - span + 1) if start % s == 0)


def _pool_starts(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> list[int]:
    """Window starts (in unpadded coordinates) by the definition of pooling, not by a formula.

    A window starting at ``o*s - p`` is kept if it lies inside the padded input ``[-p, n + p)``;
    with ``ceil_mode`` a last window that only partly fits is kept too, as long as it starts
    inside the input or the left padding and the window one stride earlier (real or not) did
    not already reach the end of the padded input.
    """
    span = d * (k - 1) + 1
    starts, o = [], 0
    while True:
        start = o * s - p
        if start + span <= n + p:
            starts.append(start)
        elif ceil_mode and start < n and start - s + span < n + p:
            starts.append(start)
            break
        else:
            break
        o += 1
    return starts


def max_pool_nd(x, kernel, stride, padding, dilation, ceil_mode=False):
    """``y[n, c, o] = max`` over the window's real input positions; also the argmax indices.

    Returns ``(y, indices)``; ``indices`` holds each maximum's flat index in its ``(n, c)`` input
    plane (the first maximum in window order wins, as in PyTorch).
    """
    spatial = x.shape[2:]
    starts = [_pool_starts(n, k, s, p, d, ceil_mode)
              for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation)]
    y = np.zeros(x.shape[:2] + tuple(len(st) for st in starts), dtype=x.dtype)
    indices = np.zeros(y.shape, dtype=np.int64)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for pos in itertools.product(*(range(len(st)) for st in starts)):
            best, where = -np.inf, None
            for k in itertools.product(*(range(m) for m in kernel)):
                src = tuple(st[o] + kk * d for st, o, kk, d in zip(starts, pos, k, dilation))
                if not all(0 <= i < m for i, m in zip(src, spatial)):
                    continue                                       # padding never wins
                value = x[(n, c, *src)]
                if where is None or value > best:
                    best, where = value, src
            y[(n, c, *pos)] = best
            indices[(n, c, *pos)] = -1 if where is None else np.ravel_multi_index(where, spatial)
    return y, indices


def avg_pool_nd(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    """``y[n, c, o] = Σ window / D``; ``D`` counts the window's positions inside ``[-p, n + p)``
    (``count_include_pad``) or inside the input ``[0, n)``, per axis, multiplied."""
    spatial = x.shape[2:]
    starts = [_pool_starts(n, k, s, p, 1, ceil_mode)
              for n, k, s, p in zip(spatial, kernel, stride, padding)]
    y = np.zeros(x.shape[:2] + tuple(len(st) for st in starts), dtype=x.dtype)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for pos in itertools.product(*(range(len(st)) for st in starts)):
            total, counted = 0.0, 1
            for axis, (st, o, k, p) in enumerate(zip(starts, pos, kernel, padding)):
                low, high = (-p, spatial[axis] + p) if count_include_pad else (0, spatial[axis])
                counted *= sum(1 for i in range(st[o], st[o] + k) if low <= i < high)
            for k in itertools.product(*(range(m) for m in kernel)):
                src = tuple(st[o] + kk for st, o, kk in zip(starts, pos, k))
                if all(0 <= i < m for i, m in zip(src, spatial)):
                    total += float(x[(n, c, *src)])
            y[(n, c, *pos)] = total / (divisor_override or counted)
    return y


def adaptive_avg_pool_nd(x, output_size):
    """Output cell ``i`` of an axis of size ``n`` averages ``floor(i*n/m) .. ceil((i+1)*n/m) - 1``
    (``None`` in ``output_size`` keeps the axis)."""
    spatial = x.shape[2:]
    sizes = [n if m is None else m for n, m in zip(spatial, output_size)]
    bins = [[(i * n // m, -(-(i + 1) * n // m)) for i in range(m)]       # floor, ceil
            for n, m in zip(spatial, sizes)]
    y = np.zeros(x.shape[:2] + tuple(sizes), dtype=x.dtype)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for pos in itertools.product(*(range(m) for m in sizes)):
            region = tuple(slice(*axis_bins[i]) for axis_bins, i in zip(bins, pos))
            y[(n, c, *pos)] = x[(n, c, *region)].mean()
    return y
