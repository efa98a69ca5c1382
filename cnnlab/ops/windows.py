"""Sliding windows over the spatial axes, shared by convolution and pooling.

``sliding_windows`` is the zero-copy im2col: a strided view whose element
``[lead..., k_1..k_nd, o_1..o_nd, trail...]`` is ``xp[lead..., o_1*s_1 + k_1*d_1, ..., trail...]``.
``col2im`` is its adjoint: it adds window-shaped values back onto the positions they were read
from. The spatial axes are the ``nd`` axes before the last ``trail`` axes: ``(N, C, *S)`` for
pooling (``trail=0``), ``(C, *S, N)`` for the convolution's batch-last layout (``trail=1``).
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .shapes import windows_overlap


def _window_strides(strides: tuple[int, ...], nd: int, trail: int, stride: tuple[int, ...],
                    dilation: tuple[int, ...]) -> tuple[int, ...]:
    end = len(strides) - trail
    spatial = strides[end - nd:end]
    return (strides[:end - nd] + tuple(st * d for st, d in zip(spatial, dilation))
            + tuple(st * s for st, s in zip(spatial, stride)) + strides[end:])


def sliding_windows(xp: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...],
                    dilation: tuple[int, ...], out: tuple[int, ...],
                    trail: int = 0) -> np.ndarray:
    """View ``(*lead, *S, *trail) -> (*lead, *K, *O, *trail)`` of the windows; nothing is copied."""
    nd = len(kernel)
    end = xp.ndim - trail
    shape = xp.shape[:end - nd] + tuple(kernel) + tuple(out) + xp.shape[end:]
    return as_strided(xp, shape=shape,
                      strides=_window_strides(xp.strides, nd, trail, stride, dilation),
                      writeable=False)


def col2im(cols: np.ndarray, padded: tuple[int, ...], kernel: tuple[int, ...],
           stride: tuple[int, ...], dilation: tuple[int, ...], trail: int = 0) -> np.ndarray:
    """Adjoint of :func:`sliding_windows`: ``(*lead, *K, *O, *trail) -> (*lead, *padded, *trail)``.

    ``dxp[..., o*s + k*d, ...] += cols[..., k, o, ...]`` for every kernel offset ``k``: one strided
    add of a whole ``(*lead, *O, *trail)`` block per offset (``prod(K)`` iterations, no loop over
    pixels). With the batch axis last (``trail=1``) each add runs over long contiguous rows.
    """
    nd = len(kernel)
    end = cols.ndim - trail
    out = cols.shape[end - nd:end]
    lead = cols.shape[:end - 2 * nd]
    tail = cols.shape[end:]
    dxp = np.zeros(lead + tuple(padded) + tail, dtype=cols.dtype)
    if not windows_overlap(kernel, stride, dilation):
        # Windows do not overlap: every input position receives at most one value, so all
        # offsets are written by one strided assignment instead of prod(K) adds.
        view = as_strided(dxp, shape=cols.shape,
                          strides=_window_strides(dxp.strides, nd, trail, stride, dilation))
        view[...] = cols
        return dxp
    rest = (slice(None),) * trail
    for offset in itertools.product(*(range(k) for k in kernel)):
        region = tuple(slice(k * d, k * d + (o - 1) * s + 1, s)
                       for k, d, o, s in zip(offset, dilation, out, stride))
        dxp[(Ellipsis, *region, *rest)] += cols[(Ellipsis, *offset, *(slice(None),) * nd,
                                                 *rest)]
    return dxp
