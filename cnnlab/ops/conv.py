"""N-dimensional convolution (cross-correlation) and its transpose, forward and backward.

One implementation serves 1-, 2- and 3-D: ``nd = w.ndim - 2`` spatial axes. Arguments arrive
normalised (tuples of length ``nd``, padding as ``(before, after)`` pairs); the functional layer
checks them.

Notation (per spatial axis, multi-indices for nd > 1): input ``X (N, C, *S)``, padded input
``Xp``, weight ``K (C_out, C/G, *k)``, bias ``B (C_out,)``, stride ``s``, dilation ``d``,
``G`` groups, output ``Z (N, C_out, *O)``, ``O = floor((S + p_begin + p_end - d*(k-1) - 1)/s) + 1``.

Algorithm: im2col + GEMM. The windows of ``Xp`` are a zero-copy strided view
``(N, C, *k, *O)``; one copy makes them the matrix ``cols (N, G, C/G*prod(k), prod(O))`` and one
batched matmul with the weight matrix ``(G, C_out/G, C/G*prod(k))`` gives ``Z``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .pad import PadCache, pad_backward, pad_forward
from .shapes import Pairs
from .windows import col2im, sliding_windows


class ConvCache(NamedTuple):
    cols: np.ndarray            # (N, G, C/G*prod(k), prod(O)): the windows of Xp, as a matrix
    w: np.ndarray               # the kernel actually applied (already flipped if asked)
    padded: tuple[int, ...]     # spatial sizes of Xp
    pad_cache: PadCache
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    flip_kernel: bool


def _flip(w: np.ndarray) -> np.ndarray:
    """rot180 of every kernel: reverse all spatial axes of ``(C_out, C_in/G, *k)``."""
    return w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)]


def _im2col(xp: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...],
            dilation: tuple[int, ...], groups: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """``Xp (N, C, *S) -> cols (N, G, C/G*prod(k), prod(O))`` (one copy) and ``O``."""
    out = tuple((n - d * (k - 1) - 1) // s + 1
                for n, k, s, d in zip(xp.shape[2:], kernel, stride, dilation))
    windows = sliding_windows(xp, kernel, stride, dilation, out)     # (N, C, *k, *O) view
    n, c = xp.shape[:2]
    return windows.reshape(n, groups, c // groups * math.prod(kernel), math.prod(out)), out


def _correlate(xp: np.ndarray, w: np.ndarray, stride: tuple[int, ...],
               dilation: tuple[int, ...], groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Valid cross-correlation of an already padded input: ``Z = K ⋆ Xp``; returns ``Z, cols``."""
    cols, out = _im2col(xp, w.shape[2:], stride, dilation, groups)
    wm = w.reshape(groups, w.shape[0] // groups, -1)              # (G, C_out/G, C/G*k)
    z = np.matmul(wm, cols)         # (G, C_out/G, C/G*k) @ (N, G, C/G*k, O) -> (N, G, C_out/G, O)
    return z.reshape(xp.shape[0], w.shape[0], *out), cols


def _input_grad(dz: np.ndarray, w: np.ndarray, padded: tuple[int, ...],
                stride: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> np.ndarray:
    """``dXp = (dZ dilated by s, zero-padded by d*(k-1)) ⋆ rot180(K)``, computed as col2im(Kᵀ dZ).

    Both sides are the same sum ``dXp[i] = Σ_{o,k: o*s + k*d = i} dZ[o] K[k]``; scattering the
    products ``Kᵀ dZ`` over the windows (col2im) skips the zeros that dilating dZ inserts.
    """
    n, c_out = dz.shape[:2]
    kernel = w.shape[2:]
    c_in = w.shape[1] * groups
    wm = w.reshape(groups, c_out // groups, -1)                    # (G, C_out/G, C/G*k)
    dz3 = dz.reshape(n, groups, c_out // groups, -1)               # (N, G, C_out/G, O)
    dcols = np.matmul(wm.transpose(0, 2, 1), dz3)  # (G, C/G*k, C_out/G) @ (.., O) -> (N,G,C/G*k,O)
    dcols = dcols.reshape(n, c_in, *kernel, *dz.shape[2:])        # (N, C, *k, *O)
    return col2im(dcols, padded, kernel, stride, dilation)        # (N, C, *S_padded)


def _weight_grad(dz: np.ndarray, cols: np.ndarray, w_shape: tuple[int, ...],
                 groups: int) -> np.ndarray:
    """``dK = Xp ⋆ dZ``: ``dK[g] = Σ_n dZ[n, g] @ cols[n, g]ᵀ`` -> ``(C_out, C/G, *k)``."""
    n = dz.shape[0]
    dz3 = dz.reshape(n, groups, w_shape[0] // groups, -1)          # (N, G, C_out/G, O)
    dw = np.matmul(dz3, cols.transpose(0, 1, 3, 2)).sum(axis=0)    # (G, C_out/G, C/G*k)
    return dw.reshape(w_shape)


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: tuple[int, ...],
                 pads: Pairs, dilation: tuple[int, ...], groups: int = 1,
                 padding_mode: str = "zeros",
                 flip_kernel: bool = False) -> tuple[np.ndarray, ConvCache]:
    """Convolution layer forward: ``Z = K ⋆ pad(X) + B``.

    ``Z[n, o, i] = B[o] + Σ_{c ∈ group(o)} Σ_k Xp[n, c, i*s + k*d] · K[o, c mod C/G, k]``

    ``flip_kernel=True`` applies ``rot180(K)`` instead (the mathematical convolution).
    ``padding_mode`` is ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.

    Shapes: ``x (N, C, *S)``, ``w (C_out, C/G, *k)``, ``b (C_out,)`` -> ``(N, C_out, *O)``.
    """
    nd = w.ndim - 2
    kernel = _flip(w) if flip_kernel else w
    mode = "constant" if padding_mode == "zeros" else padding_mode
    xp, pad_cache = pad_forward(x, pads, mode)                      # (N, C, *S_padded)
    z, cols = _correlate(xp, kernel, stride, dilation, groups)     # (N, C_out, *O)
    if b is not None:
        z += b.reshape((-1,) + (1,) * nd)
    cache = ConvCache(cols, kernel, xp.shape[2:], pad_cache, stride, dilation, groups,
                      flip_kernel)
    return z, cache


def conv_backward(dz: np.ndarray, cache: ConvCache, need_dx: bool = True, need_dw: bool = True,
                  need_db: bool = True):
    """Gradients of :func:`conv_forward`, the lecture's formulas:

    - ``dK = Xp ⋆ dZ``  (``dK[o, c, k] = Σ_{n,i} dZ[n, o, i] · Xp[n, c, i*s + k*d]``)
    - ``dX = unpad((dZ dilated by s, zero-padded by d*(k-1)) ⋆ rot180(K))``
    - ``dB = Σ_{n,i} dZ[n, :, i]``

    With ``flip_kernel`` the kernel gradient is flipped back onto the parameter. ``unpad`` adds
    the gradient of reflected/replicated/circular border pixels onto the pixels they copy.
    Returns ``(dx, dw, db)``; each is ``None`` unless asked for.
    """
    nd = dz.ndim - 2
    dx = dw = db = None
    if need_db:
        db = dz.sum(axis=(0, *range(2, 2 + nd)))                  # (C_out,)
    if need_dw:
        dw = _weight_grad(dz, cache.cols, cache.w.shape, cache.groups)
        if cache.flip_kernel:
            dw = _flip(dw)
    if need_dx:
        dxp = _input_grad(dz, cache.w, cache.padded, cache.stride, cache.dilation, cache.groups)
        dx = pad_backward(dxp, cache.pad_cache)                    # (N, C, *S)
    return dx, dw, db


class ConvTransposeCache(NamedTuple):
    x: np.ndarray
    w: np.ndarray
    pads: Pairs
    full: tuple[int, ...]        # spatial size before cropping the padding
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int


def conv_transpose_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                           stride: tuple[int, ...], pads: Pairs,
                           output_padding: tuple[int, ...], dilation: tuple[int, ...],
                           groups: int = 1) -> tuple[np.ndarray, ConvTransposeCache]:
    """Transposed convolution: the input gradient of a convolution whose weight is ``w``.

    ``Y = crop(Σ_k scatter(Kᵀ X)) + B``: every input pixel ``X[n, c, i]`` adds
    ``X[n, c, i] · K[c, o, k]`` at output position ``i*s + k*d - p_begin``. The output size is
    ``(n - 1)*s - p_begin - p_end + d*(k-1) + output_padding + 1``.

    Shapes: ``x (N, C_in, *I)``, ``w (C_in, C_out/G, *k)`` (PyTorch's layout), ``b (C_out,)``
    -> ``(N, C_out, *O)``.
    """
    nd = w.ndim - 2
    kernel = w.shape[2:]
    full = tuple((i - 1) * s + d * (k - 1) + 1 + op
                 for i, k, s, d, op in zip(x.shape[2:], kernel, stride, dilation, output_padding))
    y = _input_grad(x, w, full, stride, dilation, groups)          # (N, C_out, *full)
    y = y[(slice(None), slice(None)) + tuple(slice(pb, f - pe) for (pb, pe), f in zip(pads, full))]
    if b is not None:
        y = y + b.reshape((-1,) + (1,) * nd)
    return y, ConvTransposeCache(x, w, pads, full, stride, dilation, groups)


def conv_transpose_backward(dy: np.ndarray, cache: ConvTransposeCache, need_dx: bool = True,
                            need_dw: bool = True, need_db: bool = True):
    """Gradients of :func:`conv_transpose_forward`; the roles of the convolution swap:

    - ``dX = K ⋆ pad(dY)`` (an ordinary strided convolution of the output gradient)
    - ``dK = pad(dY) ⋆ X`` (the convolution weight gradient with ``X`` in the role of ``dZ``)
    - ``dB = Σ dY``
    """
    x, w, pads, full, stride, dilation, groups = cache
    nd = dy.ndim - 2
    dx = dw = db = None
    if need_db:
        db = dy.sum(axis=(0, *range(2, 2 + nd)))
    if need_dx or need_dw:
        # Pad dY back to the uncropped size; positions cut by output_padding read zeros.
        width = ((0, 0), (0, 0)) + tuple(
            (pb, f - pb - n) for (pb, _), f, n in zip(pads, full, dy.shape[2:]))
        dyp = np.pad(dy, width)                                     # (N, C_out, *full)
        dx_full, cols = _correlate(dyp, w, stride, dilation, groups)
        if need_dx:
            dx = dx_full[(...,) + tuple(slice(0, n) for n in x.shape[2:])]
        if need_dw:
            dw = _weight_grad(x, cols, w.shape, groups)
    return dx, dw, db
