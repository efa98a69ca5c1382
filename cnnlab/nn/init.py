"""Weight initialisers (in place, on Parameters or arrays), with PyTorch's formulas.

``fan_in = C_in/groups * prod(kernel)`` and ``fan_out = C_out * prod(kernel)`` for a conv weight
``(C_out, C_in/groups, *kernel)``; ``(out_features, in_features)`` for a linear one.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd.tensor import Tensor
from ..random import default_generator


def _array(t: Tensor | np.ndarray) -> np.ndarray:
    return t.data if isinstance(t, Tensor) else t


def fan_in_and_fan_out(t: Tensor | np.ndarray) -> tuple[int, int]:
    shape = _array(t).shape
    if len(shape) < 2:
        raise ValueError(f"fan in/out needs a weight with at least 2 axes, received {shape}.")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """``relu``: √2, ``leaky_relu``: √(2 / (1 + a²)), ``tanh``: 5/3, linear/sigmoid/conv: 1."""
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + a * a))
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity in ("linear", "sigmoid", "conv1d", "conv2d", "conv3d"):
        return 1.0
    raise ValueError(f"unknown nonlinearity {nonlinearity!r} for calculate_gain.")


def _fill(t, values: np.ndarray):
    array = _array(t)
    array[...] = values.astype(array.dtype, copy=False)
    return t


def uniform_(t, a: float = 0.0, b: float = 1.0):
    return _fill(t, default_generator().uniform(a, b, _array(t).shape))


def normal_(t, mean: float = 0.0, std: float = 1.0):
    return _fill(t, default_generator().normal(mean, std, _array(t).shape))


def constant_(t, value: float):
    _array(t)[...] = value
    return t


def zeros_(t):
    return constant_(t, 0.0)


def ones_(t):
    return constant_(t, 1.0)


def kaiming_uniform_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He uniform: ``U(-b, b)``, ``b = gain · √(3 / fan)``, gain from :func:`calculate_gain`."""
    fan = fan_in_and_fan_out(t)[0 if mode == "fan_in" else 1]
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(t, -bound, bound)


def kaiming_normal_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He normal: ``N(0, σ²)``, ``σ = gain / √fan``."""
    fan = fan_in_and_fan_out(t)[0 if mode == "fan_in" else 1]
    return normal_(t, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def xavier_uniform_(t, gain: float = 1.0):
    """Glorot uniform: ``U(-b, b)``, ``b = gain · √(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fan_in_and_fan_out(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound)


def xavier_normal_(t, gain: float = 1.0):
    """Glorot normal: ``N(0, σ²)``, ``σ = gain · √(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = fan_in_and_fan_out(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def default_init_(weight, bias=None) -> None:
    """PyTorch's default for Linear and Conv layers: weight and bias ``U(±1/√fan_in)``.

    (That is ``kaiming_uniform_(weight, a=√5)``; the bias uses the same bound.)
    """
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1.0 / math.sqrt(fan_in_and_fan_out(weight)[0])
        uniform_(bias, -bound, bound)
