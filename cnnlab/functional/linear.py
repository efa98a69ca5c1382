"""Fully connected layer on Tensors: argument checks, then ``ops.linear`` with its backward."""

from __future__ import annotations

from ..autograd.tensor import Tensor, needs_grad, record
from ..ops import linear as linear_ops
from ._common import layer_operands


def _linear(x, w, b, where: str | None = None) -> Tensor:
    where = where or "linear"
    x, w, b = layer_operands(x, w, b, where)
    if w.ndim != 2:
        raise ValueError(
            f"{where} expected a 2-D weight (out_features, in_features), received shape "
            f"{w.shape}."
        )
    n_out, n_in = w.shape
    if x.ndim == 0:
        raise ValueError(
            f"{where} expected input with {n_in} features in the last axis, received a 0-D "
            f"input (a scalar)."
        )
    if x.shape[-1] != n_in:
        raise ValueError(
            f"{where} expected input with {n_in} features in the last axis, received "
            f"{x.shape[-1]} (input shape {x.shape})."
        )
    if b is not None and b.shape != (n_out,):
        raise ValueError(f"{where} expected bias of shape ({n_out},), received {b.shape}.")

    y, cache = linear_ops.linear_forward(x.data, w.data, None if b is None else b.data)
    need = needs_grad(x, w, b)
    return record(y, (x, w) if b is None else (x, w, b),
                  lambda dy: linear_ops.linear_backward(dy, cache, *need)[: 2 if b is None else 3])


def linear(x, w, b=None) -> Tensor:
    """Fully connected layer: ``y = x Wᵀ + b`` over the last axis, with a recorded gradient.

    ``y[..., o] = b[o] + Σ_i x[..., i] · W[o, i]``; gradients ``dx = dy W``,
    ``dW = dyᵀ x`` (summed over all leading axes), ``db = Σ dy``.

    Args:
        x: input ``(..., in_features)``; any leading axes are batch axes. Tensor or ndarray.
        w: weight ``(out_features, in_features)`` (PyTorch's layout).
        b: optional bias ``(out_features,)``.

    Shape:
        ``(..., in_features) -> (..., out_features)``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.linear(np.ones((2, 3)), np.arange(6.0).reshape(2, 3), np.array([0.0, 1.0])).data
        array([[ 3., 13.],
               [ 3., 13.]])
    """
    return _linear(x, w, b)
