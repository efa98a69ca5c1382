"""Batch normalisation on Tensors: argument checks, then ``ops.norm`` with its backward."""

from __future__ import annotations

import numbers

import numpy as np

from .._validate import check_float_array
from ..autograd.tensor import Tensor, as_tensor, needs_grad, record
from ..ops import norm as norm_ops


def _running_array(value, name: str, where: str) -> np.ndarray | None:
    """Running statistics are updated in place, so they must be float ndarrays (or Tensors)."""
    if value is None:
        return None
    array = value.data if isinstance(value, Tensor) else value
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"{where}: {name} must be a floating-point ndarray (it is updated in place), "
            f"received {type(value).__name__}"
            f"{f' of dtype {array.dtype}' if isinstance(array, np.ndarray) else ''}."
        )
    return array


def _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps,
                where: str | None = None) -> Tensor:
    where = where or "batch_norm"
    x = as_tensor(x)
    weight = None if weight is None else as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    check_float_array(x.data, f"{where} input")
    if x.ndim < 2:
        raise ValueError(
            f"{where} expected input (N, C, *) with at least 2 axes, received shape {x.shape}."
        )
    for name, value in (("momentum", momentum), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{where}: {name} must be a number, received {value!r}.")
    running_mean = _running_array(running_mean, "running_mean", where)
    running_var = _running_array(running_var, "running_var", where)
    if (running_mean is None) != (running_var is None):
        raise ValueError(
            f"{where}: running_mean and running_var must both be given or both be None, "
            f"received {'None' if running_mean is None else 'an array'} and "
            f"{'None' if running_var is None else 'an array'}."
        )
    if not training and running_mean is None:
        raise ValueError(
            f"{where} in evaluation mode (training=False) needs running_mean and running_var, "
            f"received None."
        )
    channels = x.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None and value.shape != (channels,):
            raise ValueError(
                f"{where} expected {name} of shape ({channels},) for an input with {channels} "
                f"channels, received {value.shape} (input shape {x.shape})."
            )
    if training and norm_ops.values_per_channel(x.shape) <= 1:
        raise ValueError(
            f"{where} in training mode needs more than 1 value per channel to compute a "
            f"variance, received input shape {x.shape}."
        )

    y, cache = norm_ops.batch_norm_forward(
        x.data, running_mean, running_var, None if weight is None else weight.data,
        None if bias is None else bias.data, bool(training), float(momentum), float(eps))
    need = needs_grad(x, weight, bias)
    present = (True, weight is not None, bias is not None)
    parents = tuple(t for t, keep in zip((x, weight, bias), present) if keep)
    return record(y, parents, lambda dy: tuple(
        g for g, keep in zip(norm_ops.batch_norm_backward(dy, cache, *need), present) if keep))


def batch_norm(x, running_mean: np.ndarray | None, running_var: np.ndarray | None,
               weight=None, bias=None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalisation per channel (axis 1), exactly as ``torch.nn.functional.batch_norm``.

    ``y = γ · (x - μ) / √(σ² + ε) + β``. With ``training=True``, ``μ`` and the biased ``σ²`` are
    the batch's (over every axis but 1) and the running estimates, if given, are updated in
    place: ``running = (1 - momentum) · running + momentum · batch_stat``, using the unbiased
    variance for ``running_var``. With ``training=False`` the running estimates are used.

    Args:
        x: input ``(N, C)`` or ``(N, C, *S)``; Tensor or ndarray.
        running_mean, running_var: ``(C,)`` float ndarrays (updated in place when training);
            both may be ``None`` when ``training=True``.
        weight, bias: optional ``γ``, ``β`` of shape ``(C,)``.
        training: use batch statistics (and update the running ones).
        momentum: weight of the new batch statistic in the running update.
        eps: added to the variance before the square root.

    Shape:
        ``(N, C, *S) -> (N, C, *S)``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> mean, var = np.zeros(1), np.ones(1)
        >>> F.batch_norm(np.array([[1.0], [3.0]]), mean, var, training=True, eps=0.0).data
        array([[-1.],
               [ 1.]])
        >>> mean, var                      # 0.9·0 + 0.1·2,  0.9·1 + 0.1·2 (unbiased variance)
        (array([0.2]), array([1.1]))
    """
    return _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
