"""Convolution by the FFT: the algorithm for large kernels (stride 1, no groups).

The convolution theorem turns the sum over kernel taps into one product per frequency, so the
cost no longer grows with the kernel size: an 11×11 kernel costs what a 3×3 one does. For real
signals on a length-``L`` circle, with ``ℱ`` the real FFT over the spatial axes:

- correlation ``z[i] = Σ_k x[i + k] · w[k]``        ->  ``ℱz = ℱx · conj(ℱw)``
- convolution ``u[j] = Σ_i g[i] · w[j - i]``        ->  ``ℱu = ℱg · ℱw``

The circle has the padded input's length ``Sp``: a valid output ``i < O = Sp - k_eff + 1`` only
reads ``x[i + k] <= x[Sp - 1]``, so nothing wraps around. The three passes of the layer, summed
over channels and batch per frequency (``F`` frequencies, batch-last layouts as in ``conv.py``):

- forward ``Z[o] = Σ_c ℱ⁻¹(ℱXp[c] · conj(ℱK[o, c]))[:O]``
- ``dK[o, c] = Σ_n ℱ⁻¹(ℱXp[n, c] · conj(ℱdZ[n, o]))[:k]``    (the lecture's ``dK = X ⋆ dZ``)
- ``dXp[c] = Σ_o ℱ⁻¹(ℱdZ[o] · ℱK[o, c])``   (``dZ`` zero-padded to ``Sp``, convolved with ``K``:
  the lecture's ``(dZ padded) ⋆ rot180(K)``)

Dilation enters by spreading the kernel (zeros between taps) before the transform. The results
equal the GEMM path's up to float32 rounding (tests compare both with the loop reference).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .shapes import conv_output_sizes, kernel_span


class FFTPlan(NamedTuple):
    padded: tuple[int, ...]     # Sp: spatial sizes of the padded input
    length: tuple[int, ...]     # transform sizes: the smallest fast sizes >= Sp
    kernel: tuple[int, ...]     # k_eff = d*(k-1) + 1
    out: tuple[int, ...]        # O


def fast_length(n: int) -> int:
    """The smallest ``m >= n`` whose prime factors are 2, 3, 5 and 7 (fast for pocketfft)."""
    m = n
    while True:
        rest = m
        for p in (2, 3, 5, 7):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 1


def spread(w: np.ndarray, dilation: tuple[int, ...]) -> np.ndarray:
    """``K (..., *k) -> (..., *k_eff)`` with ``d - 1`` zeros between taps along each axis."""
    nd = len(dilation)
    if all(d == 1 for d in dilation):
        return w
    k = w.shape[-nd:]
    out = np.zeros(w.shape[:-nd] + tuple(kernel_span(n, d) for n, d in zip(k, dilation)),
                   dtype=w.dtype)
    out[(Ellipsis, *(slice(None, None, d) for d in dilation))] = w
    return out


def make_plan(padded: tuple[int, ...], kernel: tuple[int, ...],
              dilation: tuple[int, ...]) -> FFTPlan:
    nd = len(padded)
    span = tuple(kernel_span(k, d) for k, d in zip(kernel, dilation))
    out = conv_output_sizes(padded, kernel, (1,) * nd, ((0, 0),) * nd, dilation)
    return FFTPlan(padded, tuple(fast_length(s) for s in padded), span, out)


def _axes(nd: int, first: int) -> tuple[int, ...]:
    return tuple(range(first, first + nd))


def _crop(a: np.ndarray, sizes: tuple[int, ...], first: int) -> np.ndarray:
    return a[(slice(None),) * first + tuple(slice(0, s) for s in sizes)]


def kernel_spectrum(w: np.ndarray, plan: FFTPlan, dilation: tuple[int, ...]) -> np.ndarray:
    """``ℱK``: ``(C_out, C, *k) -> (C_out, C, *F)``, complex."""
    nd = len(plan.padded)
    return np.fft.rfftn(spread(w, dilation), s=plan.length, axes=_axes(nd, 2))


def correlate(xt: np.ndarray, wf: np.ndarray, plan: FFTPlan) -> tuple[np.ndarray, np.ndarray]:
    """Forward: ``Xp (C, *Sp, N)``, ``ℱK`` -> ``Z (C_out, *O, N)`` and ``ℱXp (C, *F, N)``."""
    nd = len(plan.padded)
    xf = np.fft.rfftn(xt, s=plan.length, axes=_axes(nd, 1))              # (C, *F, N)
    zf = np.einsum("c...n,oc...->o...n", xf, wf.conj())                  # (C_out, *F, N)
    zt = np.fft.irfftn(zf, s=plan.length, axes=_axes(nd, 1))             # (C_out, *L, N)
    return _crop(zt, plan.out, 1).astype(xt.dtype, copy=False), xf


def weight_grad(dzt: np.ndarray, xf: np.ndarray, plan: FFTPlan,
                dilation: tuple[int, ...]) -> np.ndarray:
    """``dK = Xp ⋆ dZ``: ``dZ (C_out, *O, N)``, ``ℱXp`` -> ``(C_out, C, *k)``."""
    nd = len(plan.padded)
    dzf = np.fft.rfftn(dzt, s=plan.length, axes=_axes(nd, 1))            # (C_out, *F, N)
    dwf = np.einsum("c...n,o...n->oc...", xf, dzf.conj())                # (C_out, C, *F)
    dw = _crop(np.fft.irfftn(dwf, s=plan.length, axes=_axes(nd, 2)), plan.kernel, 2)
    dw = dw[(Ellipsis, *(slice(None, None, d) for d in dilation))]       # the real taps
    return np.ascontiguousarray(dw, dtype=dzt.dtype)


def input_grad(dzt: np.ndarray, wf: np.ndarray, plan: FFTPlan) -> np.ndarray:
    """``dXp = (dZ zero-padded) ⋆ rot180(K)``: ``dZ (C_out, *O, N)`` -> ``(C, *Sp, N)``."""
    nd = len(plan.padded)
    dzf = np.fft.rfftn(dzt, s=plan.length, axes=_axes(nd, 1))            # (C_out, *F, N)
    dxf = np.einsum("o...n,oc...->c...n", dzf, wf)                       # (C, *F, N)
    dxt = np.fft.irfftn(dxf, s=plan.length, axes=_axes(nd, 1))           # (C, *L, N)
    return _crop(dxt, plan.padded, 1).astype(dzt.dtype, copy=False)
