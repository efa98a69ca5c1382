"""Sliding windows over the spatial axes, shared by convolution and pooling.

``sliding_windows`` is the zero-copy im2col: a strided view whose element
``[n, c, k_1..k_nd, o_1..o_nd]`` is ``xp[n, c, o_1*s_1 + k_1*d_1, ...]``. ``col2im`` is its adjoint:
it adds window-shaped values back onto the positions they were read from.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided


def sliding_windows(xp: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...],
                    dilation: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
    """View ``(N, C, *S) -> (N, C, *K, *O)`` of the windows; nothing is copied."""
    nd = len(kernel)
    lead_shape, lead_strides = xp.shape[:-nd], xp.strides[:-nd]
    spatial = xp.strides[-nd:]
    shape = lead_shape + tuple(kernel) + tuple(out)
    strides = (lead_strides + tuple(st * d for st, d in zip(spatial, dilation))
               + tuple(st * s for st, s in zip(spatial, stride)))
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def col2im(cols: np.ndarray, padded: tuple[int, ...], kernel: tuple[int, ...],
           stride: tuple[int, ...], dilation: tuple[int, ...]) -> np.ndarray:
    """Adjoint of :func:`sliding_windows`: ``(N, C, *K, *O) -> (N, C, *padded)``.

    ``dxp[n, c, o*s + k*d] += cols[n, c, k, o]`` for every kernel offset ``k``: one strided add
    of a whole ``(N, C, *O)`` block per offset (``prod(K)`` iterations, no loop over pixels).
    """
    nd = len(kernel)
    out = cols.shape[-nd:]
    dxp = np.zeros(cols.shape[:-2 * nd] + tuple(padded), dtype=cols.dtype)
    if all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation)):
        # Windows do not overlap: every input position receives at most one value, so the
        # offsets can be written in one strided assignment instead of prod(K) adds.
        view = as_strided(dxp, shape=cols.shape,
                          strides=dxp.strides[:-nd]
                          + tuple(st * d for st, d in zip(dxp.strides[-nd:], dilation))
                          + tuple(st * s for st, s in zip(dxp.strides[-nd:], stride)))
        view[...] = cols
        return dxp
    for offset in itertools.product(*(range(k) for k in kernel)):
        region = tuple(slice(k * d, k * d + (o - 1) * s + 1, s)
                       for k, d, o, s in zip(offset, dilation, out, stride))
        dxp[(..., *region)] += cols[(..., *offset, *(slice(None),) * nd)]
    return dxp


def window_size(kernel: tuple[int, ...]) -> int:
    return math.prod(kernel)
