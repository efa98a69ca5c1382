"""Activations and the softmax family on Tensors: checks, then ``ops.activation`` recorded."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable

from .._validate import _is_int, check_float_array
from ..autograd.tensor import Tensor, as_tensor, record
from ..ops import activation as act_ops


def _unary(x, where: str, forward: Callable, backward: Callable, *args) -> Tensor:
    x = as_tensor(x)
    check_float_array(x.data, f"{where} input")
    y, cache = forward(x.data, *args)
    return record(y, (x,), lambda dy: (backward(dy, cache),))


def relu(x, inplace: bool = False) -> Tensor:
    """Rectified linear unit ``y = max(x, 0)``; the gradient is ``dy · [x > 0]`` (0 at 0).

    Args:
        x: input of any shape; Tensor or ndarray.
        inplace: accepted for PyTorch compatibility and ignored: the result is a new array.

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.relu(np.array([-2.0, 0.0, 3.0])).data
        array([0., 0., 3.])
    """
    return _unary(x, "relu", act_ops.relu_forward, act_ops.relu_backward)


def leaky_relu(x, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``y = x`` for ``x > 0``, else ``negative_slope · x``.

    Args:
        x: input of any shape; Tensor or ndarray.
        negative_slope: the slope for ``x <= 0`` (the gradient at exactly 0 uses it, as PyTorch).
        inplace: accepted for PyTorch compatibility and ignored.

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.leaky_relu(np.array([-2.0, 3.0]), 0.1).data
        array([-0.2,  3. ])
    """
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
        raise TypeError(f"negative_slope must be a real number, received {negative_slope!r}.")
    return _unary(x, "leaky_relu", act_ops.leaky_relu_forward, act_ops.leaky_relu_backward,
                  float(negative_slope))


def sigmoid(x) -> Tensor:
    """Logistic sigmoid ``σ(x) = 1 / (1 + e^{-x})``, stable for any ``|x|``; ``dσ = σ (1 − σ)``.

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.sigmoid(np.array([-1000.0, 0.0, 1000.0])).data
        array([0. , 0.5, 1. ])
    """
    return _unary(x, "sigmoid", act_ops.sigmoid_forward, act_ops.sigmoid_backward)


def tanh(x) -> Tensor:
    """Hyperbolic tangent; ``d tanh = 1 − tanh²``.

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.tanh(np.array([0.0])).data
        array([0.])
    """
    return _unary(x, "tanh", act_ops.tanh_forward, act_ops.tanh_backward)


def _softmax_dim(x: Tensor, dim: int | None, name: str) -> int:
    """Check ``dim`` against ``x``'s rank; ``None`` picks PyTorch's legacy default (warned)."""
    if dim is None:
        dim = 0 if x.ndim in (0, 1, 3) else 1
        warnings.warn(
            f"Implicit dimension choice for {name} has been deprecated. Change the call to "
            f"include dim=X as an argument.", UserWarning, stacklevel=3)
    if not _is_int(dim):
        raise TypeError(f"{name} dim must be an int, received {dim!r}.")
    rank = max(x.ndim, 1)
    if not -rank <= dim < rank:
        raise ValueError(
            f"{name} dim must be in [{-rank}, {rank - 1}] for an input of shape {x.shape}, "
            f"received {dim}."
        )
    return int(dim) % rank


def _along_axis(x, dim, name: str, forward: Callable, backward: Callable) -> Tensor:
    x = as_tensor(x)
    check_float_array(x.data, f"{name} input")
    axis = _softmax_dim(x, dim, name)
    if x.ndim == 0:                    # a scalar is a one-element axis, as in PyTorch
        return _along_axis(x.reshape(1), 0, name, forward, backward).reshape(())
    y, cache = forward(x.data, axis)
    return record(y, (x,), lambda dy: (backward(dy, cache),))


def softmax(x, dim: int | None = None) -> Tensor:
    """``softmax(x)_i = e^{x_i} / Σ_j e^{x_j}`` along ``dim`` (computed as ``e^{x_i − max}``).

    The gradient is ``dx = y ⊙ (dy − Σ_dim(dy ⊙ y))``.

    Args:
        x: input of any shape; Tensor or ndarray.
        dim: the axis that sums to 1. ``None`` is accepted with PyTorch's deprecation warning
            and its legacy choice (0 for 0-, 1- and 3-D inputs, else 1); always pass it.

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.softmax(np.array([1.0, 2.0, 3.0]), dim=0).data
        array([0.09003057, 0.24472847, 0.66524096])
    """
    return _along_axis(x, dim, "softmax", act_ops.softmax_forward, act_ops.softmax_backward)


def log_softmax(x, dim: int | None = None) -> Tensor:
    """``log_softmax(x)_i = x_i − log Σ_j e^{x_j}`` along ``dim``, finite even for ±1000 logits.

    The gradient is ``dx = dy − softmax(x) · Σ_dim dy``.

    Args:
        x: input of any shape; Tensor or ndarray.
        dim: the axis to normalise over (``None``: see :func:`softmax`).

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.log_softmax(np.array([0.0, 1000.0], dtype=np.float64), dim=0).data
        array([-1000.,     0.])
    """
    return _along_axis(x, dim, "log_softmax", act_ops.log_softmax_forward,
                       act_ops.log_softmax_backward)

