"""Batch normalisation, forward and backward, for ``(N, C)`` and ``(N, C, *S)`` inputs.

Statistics are per channel ``c``, over the batch and every spatial axis: ``m = N · prod(S)``
values each. Notation: ``μ`` mean, ``σ²`` variance, ``σ = √(σ² + ε)``, ``x̂ = (x - μ) / σ``,
``γ`` weight, ``β`` bias.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import kernels, norm_compiled


class BatchNormCache(NamedTuple):
    x_hat: np.ndarray           # (N, C, *S): the normalised input
    inv_std: np.ndarray         # (C,): 1 / σ
    weight: np.ndarray | None   # (C,): γ, None for γ = 1
    training: bool              # batch statistics (True) or running estimates (False)


def _reduce_axes(ndim: int) -> tuple[int, ...]:
    return (0, *range(2, ndim))                                    # every axis but C


def values_per_channel(shape: tuple[int, ...]) -> int:
    """``m = N · prod(S)``: how many values each channel's statistics average."""
    return math.prod(shape[:1] + shape[2:])


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (ndim - 2))                  # (C,) -> (1, C, 1, ...)


def batch_norm_forward(x: np.ndarray, running_mean: np.ndarray | None,
                       running_var: np.ndarray | None, weight: np.ndarray | None,
                       bias: np.ndarray | None, training: bool, momentum: float,
                       eps: float) -> tuple[np.ndarray, BatchNormCache]:
    """``Y = γ · (X - μ) / √(σ² + ε) + β``, per channel.

    Training: ``μ`` and the biased ``σ² = (1/m) Σ (x - μ)²`` come from the batch, and the
    running estimates (when given) are updated in place, as PyTorch does::

        running_mean = (1 - momentum) · running_mean + momentum · μ
        running_var  = (1 - momentum) · running_var  + momentum · σ² · m / (m - 1)   # unbiased

    Evaluation: ``μ = running_mean``, ``σ² = running_var``; nothing is updated.
    ``weight``/``bias`` ``None`` mean ``γ = 1``/``β = 0``. The output keeps ``x``'s dtype.

    Shapes: ``x (N, C, *S)``; ``running_mean``, ``running_var``, ``weight``, ``bias`` ``(C,)``
    -> ``(N, C, *S)``.
    """
    axes = _reduce_axes(x.ndim)
    if x.ndim >= 3 and kernels.use_compiled():
        return _forward_compiled(x, running_mean, running_var, weight, bias, training,
                                 momentum, eps)
    if training:
        mean = x.mean(axis=axes)                                   # (C,)
        x_hat = x - _per_channel(mean, x.ndim)                     # (N, C, *S): x - μ
        var = np.square(x_hat).mean(axis=axes)                     # (C,), biased
        if running_mean is not None:
            m = values_per_channel(x.shape)
            _update_running(running_mean, running_var, mean, var, momentum, m)
    else:
        mean = running_mean.astype(x.dtype, copy=False)
        var = running_var.astype(x.dtype, copy=False)
        x_hat = x - _per_channel(mean, x.ndim)
    inv_std = 1.0 / np.sqrt(var + eps)                             # (C,)
    x_hat *= _per_channel(inv_std, x.ndim)                         # (N, C, *S): x̂
    if weight is not None:
        weight = weight.astype(x.dtype, copy=False)
        y = x_hat * _per_channel(weight, x.ndim)
    else:
        y = x_hat.copy()                   # the cache keeps x̂: never hand it out as the output
    if bias is not None:
        y += _per_channel(bias.astype(x.dtype, copy=False), x.ndim)
    return y, BatchNormCache(x_hat, inv_std, weight, training)


def _update_running(running_mean: np.ndarray, running_var: np.ndarray, mean: np.ndarray,
                    var: np.ndarray, momentum: float, m: int) -> None:
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * var * (m / (m - 1))


def _forward_compiled(x, running_mean, running_var, weight, bias, training, momentum, eps):
    """:func:`batch_norm_forward` by the compiled loops of ``norm_compiled`` (same formulas)."""
    if training:
        mean, var = norm_compiled.statistics(x)
        if running_mean is not None:
            _update_running(running_mean, running_var, mean, var, momentum,
                            values_per_channel(x.shape))
    else:
        mean = running_mean.astype(x.dtype, copy=False)
        var = running_var.astype(x.dtype, copy=False)
    inv_std = 1.0 / np.sqrt(var + eps)
    y, x_hat = norm_compiled.normalize(x, mean, inv_std, weight, bias)
    weight = None if weight is None else weight.astype(x.dtype, copy=False)
    return y, BatchNormCache(x_hat, inv_std, weight, training)


def batch_norm_backward(dy: np.ndarray, cache: BatchNormCache, need_dx: bool = True,
                        need_dweight: bool = True, need_dbias: bool = True):
    """Gradients of :func:`batch_norm_forward` (sums over the ``m`` values of each channel):

    - ``dβ = Σ dY``,  ``dγ = Σ dY · x̂``
    - training (``μ``, ``σ`` depend on ``X``):
      ``dX = (1/m) · γ · σ⁻¹ · (m · dY - Σ dY - x̂ · Σ (dY · x̂))``
    - evaluation (``μ``, ``σ`` are constants, a plain affine map): ``dX = γ · σ⁻¹ · dY``

    Returns ``(dx, dweight, dbias)``; each is ``None`` unless asked for.
    """
    x_hat, inv_std, weight, training = cache
    axes, nd = _reduce_axes(dy.ndim), dy.ndim
    if nd >= 3 and kernels.use_compiled():
        scale = inv_std if weight is None else inv_std * weight
        dx, dweight, dbias = norm_compiled.gradients(dy, x_hat, scale, training, need_dx)
        return dx, dweight if need_dweight else None, dbias if need_dbias else None
    batch_terms = need_dx and training
    dbias = dy.sum(axis=axes) if need_dbias or batch_terms else None           # (C,)
    dweight = (dy * x_hat).sum(axis=axes) if need_dweight or batch_terms else None
    dx = None
    if need_dx:
        scale = inv_std if weight is None else inv_std * weight                # γ / σ, (C,)
        if training:
            m = values_per_channel(dy.shape)
            dx = dy - _per_channel(dbias / m, nd)
            dx -= x_hat * _per_channel(dweight / m, nd)
            dx *= _per_channel(scale, nd)
        else:
            dx = dy * _per_channel(scale, nd)
    return (dx, dweight if need_dweight else None, dbias if need_dbias else None)
