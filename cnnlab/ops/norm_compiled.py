"""Batch normalisation of ``(N, C, *S)`` inputs as compiled loops, one channel at a time.

The NumPy path (``ops.norm``) makes a pass over the whole batch for every step of the formulas
(the mean, ``x - μ``, its square, its mean, the scaling, ``γ·x̂``, ``+ β``: seven passes and two
temporaries forward, as many backward), on one core. Here each channel's ``m = N · prod(S)``
values go through the same formulas in three passes forward (the sum, the sum of squared
deviations, then ``x̂`` and ``y`` together) and two backward (``Σ dY`` and ``Σ dY · x̂``
together, then ``dX``), and the channels are dealt out to cnnlab's threads. Sums over a plane are
taken in the working precision, over the planes of a channel in float64.

Notation as in ``ops.norm``: ``μ`` mean, ``σ²`` biased variance, ``x̂ = (x - μ) / √(σ² + ε)``,
``γ`` weight, ``β`` bias.
"""

from __future__ import annotations

import numpy as np

from . import parallel
from .kernels import jit


@jit
def _statistics(x, mean, var, start, stop):
    """``μ[c] = (1/m) Σ x`` and ``σ²[c] = (1/m) Σ (x - μ[c])²`` over ``x (N, C, P)`` for the
    channels ``start .. stop-1`` (two passes: the deviations from the mean, not
    ``E[x²] - μ²``, which cancels badly)."""
    n, _, plane = x.shape
    for c in range(start, stop):
        total = 0.0
        for i in range(n):
            row = x[i, c]
            s = 0.0                                # float64, as PyTorch's CPU sums
            for p in range(plane):
                s += row[p]
            total += s
        mean[c] = total / (n * plane)
        mu = mean[c]                               # in the working precision
        total = 0.0
        for i in range(n):
            row = x[i, c]
            s = 0.0                                # float64, as PyTorch's CPU sums
            for p in range(plane):
                d = row[p] - mu
                s += d * d
            total += s
        var[c] = total / (n * plane)


@jit
def _normalize(x, mean, inv_std, weight, bias, x_hat, y, start, stop):
    """``x̂ = (x - μ) · σ⁻¹`` and ``y = γ · x̂ + β`` for the channels ``start .. stop-1``."""
    n, _, plane = x.shape
    for c in range(start, stop):
        mu, scale, g, b = mean[c], inv_std[c], weight[c], bias[c]
        for i in range(n):
            src, norm, out = x[i, c], x_hat[i, c], y[i, c]
            for p in range(plane):
                v = (src[p] - mu) * scale
                norm[p] = v
                out[p] = g * v + b


@jit
def _gradients(dy, x_hat, scale, dweight, dbias, dx, training, start, stop):
    """For the channels ``start .. stop-1``: ``dβ = Σ dY``, ``dγ = Σ dY · x̂``, and (``dx`` not
    empty) ``dX = γσ⁻¹ · (dY - dβ/m - x̂ · dγ/m)`` in training, ``γσ⁻¹ · dY`` in evaluation."""
    n, _, plane = dy.shape
    m = n * plane
    terms = np.zeros(2, dtype=dy.dtype)           # dβ/m and dγ/m in the working precision
    for c in range(start, stop):
        sum_dy = 0.0
        sum_dy_xhat = 0.0
        for i in range(n):
            g, h = dy[i, c], x_hat[i, c]
            s = t = 0.0                            # float64, as PyTorch's CPU sums
            for p in range(plane):
                s += g[p]
                t += g[p] * h[p]
            sum_dy += s
            sum_dy_xhat += t
        dbias[c] = sum_dy
        dweight[c] = sum_dy_xhat
        if dx.size == 0:
            continue
        k = scale[c]
        if training:
            terms[0] = sum_dy / m
            terms[1] = sum_dy_xhat / m
        shift, slope = terms[0], terms[1]
        for i in range(n):
            g, h, out = dy[i, c], x_hat[i, c], dx[i, c]
            for p in range(plane):
                out[p] = k * (g[p] - shift - h[p] * slope)


def _planes(a: np.ndarray) -> np.ndarray:
    """``(N, C, *S) -> (N, C, prod(S))``, contiguous."""
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(μ, σ²)`` per channel of ``x (N, C, *S)``, in ``x``'s dtype."""
    c = x.shape[1]
    mean, var = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
    parallel.run_ranges(_statistics, c, _planes(x), mean, var)
    return mean, var


def normalize(x: np.ndarray, mean: np.ndarray, inv_std: np.ndarray, weight: np.ndarray | None,
              bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(y, x̂)`` for ``x (N, C, *S)`` and per-channel ``μ``, ``σ⁻¹``, ``γ``, ``β``."""
    c, dtype = x.shape[1], x.dtype
    ones, zeros = np.ones(c, dtype=dtype), np.zeros(c, dtype=dtype)
    x_hat, y = np.empty(x.shape, dtype=dtype), np.empty(x.shape, dtype=dtype)
    planes = _planes(x)
    parallel.run_ranges(_normalize, c, planes, mean.astype(dtype, copy=False),
                        inv_std.astype(dtype, copy=False),
                        ones if weight is None else weight.astype(dtype, copy=False),
                        zeros if bias is None else bias.astype(dtype, copy=False),
                        x_hat.reshape(planes.shape), y.reshape(planes.shape))
    return y, x_hat


def gradients(dy: np.ndarray, x_hat: np.ndarray, scale: np.ndarray, training: bool,
              need_dx: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """``(dX or None, dγ, dβ)`` with ``scale = γσ⁻¹`` per channel."""
    c, dtype = dy.shape[1], dy.dtype
    dweight, dbias = np.empty(c, dtype=dtype), np.empty(c, dtype=dtype)
    dx = np.empty(dy.shape, dtype=dtype) if need_dx else np.empty(0, dtype=dtype)
    planes = _planes(dy)
    out = dx.reshape(planes.shape) if need_dx else dx.reshape(0, 0, 0)
    parallel.run_ranges(_gradients, c, planes, _planes(x_hat), scale.astype(dtype, copy=False),
                        dweight, dbias, out, training)
    return (dx if need_dx else None), dweight, dbias
