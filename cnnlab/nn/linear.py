"""Fully connected and shape layers: ``Linear``, ``Identity``, ``Flatten``, ``Unflatten``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._validate import _is_int
from ..autograd.tensor import Tensor, as_tensor
from ..functional.linear import _linear
from . import init
from .module import Module
from .parameter import Parameter


class Linear(Module):
    """Fully connected layer: ``y = x Wᵀ + b`` over the last axis.

    ``weight`` is ``(out_features, in_features)`` and ``bias`` ``(out_features,)``, both
    initialised as in PyTorch: ``U(-1/√in_features, 1/√in_features)``.

    Args:
        in_features: size of the input's last axis.
        out_features: size of the output's last axis.
        bias: learn an additive bias.

    Shape:
        ``(..., in_features) -> (..., out_features)``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.Linear(400, 120)(np.zeros((64, 400), np.float32)).shape
        (64, 120)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        for arg, value in (("in_features", in_features), ("out_features", out_features)):
            if not _is_int(value) or value <= 0:
                raise ValueError(f"Linear: {arg} must be a positive int, received {value!r}.")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_init_(self.weight, self.bias)

    def _label(self) -> str:
        """Short name for messages, e.g. ``Linear(120→84)``."""
        return f"Linear({self.in_features}→{self.out_features})"

    def forward(self, x) -> Tensor:
        return _linear(x, self.weight, self.bias, where=self._label())

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for a removed layer).

    Extra arguments are accepted and ignored, as in PyTorch.

    Shape:
        ``(*) -> (*)``.

    Example:
        >>> from cnnlab import nn
        >>> nn.Identity()(3.0)
        3.0
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, x):
        return x


def _dim(dim: int, ndim: int, name: str, where: str) -> int:
    """A possibly negative axis index, checked against ``ndim`` axes."""
    if not -ndim <= dim < ndim:
        raise ValueError(
            f"{where}: {name} {dim} is out of range for a {ndim}-D input (expected "
            f"{-ndim} to {ndim - 1})."
        )
    return dim % ndim


class Flatten(Module):
    """Merge the axes ``start_dim..end_dim`` into one, e.g. ``(N, C, H, W) -> (N, C·H·W)``.

    Args:
        start_dim: first axis to merge (default 1: keep the batch axis).
        end_dim: last axis to merge (inclusive; negative counts from the end).

    Shape:
        ``(N, *S) -> (N, prod(S))`` with the defaults.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.Flatten()(np.zeros((64, 16, 4, 4), np.float32)).shape
        (64, 256)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not _is_int(value):
                raise TypeError(f"Flatten: {name} must be an int, received {value!r}.")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x) -> Tensor:
        x = as_tensor(x)
        ndim = max(x.ndim, 1)               # a scalar flattens to one entry, as in PyTorch
        start = _dim(self.start_dim, ndim, "start_dim", "Flatten")
        end = _dim(self.end_dim, ndim, "end_dim", "Flatten")
        if start > end:
            raise ValueError(
                f"Flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim} for a "
                f"{x.ndim}-D input of shape {x.shape}."
            )
        shape = x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:]
        return x.reshape(shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split axis ``dim`` into ``unflattened_size``, e.g. ``(N, 256) -> (N, 16, 4, 4)``.

    Args:
        dim: the axis to split (negative counts from the end).
        unflattened_size: the new sizes; their product must equal the axis' size. One entry may
            be ``-1`` (inferred).

    Shape:
        ``(*, S, *) -> (*, *unflattened_size, *)``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.Unflatten(1, (16, 4, 4))(np.zeros((64, 256), np.float32)).shape
        (64, 16, 4, 4)
    """

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        if not _is_int(dim):
            raise TypeError(f"Unflatten: dim must be an int, received {dim!r}.")
        sizes = tuple(unflattened_size) if isinstance(unflattened_size, Sequence) else None
        if (not sizes or not all(_is_int(s) and (s > 0 or s == -1) for s in sizes)
                or sizes.count(-1) > 1):
            raise ValueError(
                f"Unflatten: unflattened_size must be a non-empty tuple of positive ints (at "
                f"most one -1), received {unflattened_size!r}."
            )
        self.dim, self.unflattened_size = int(dim), tuple(int(s) for s in sizes)

    def forward(self, x) -> Tensor:
        x = as_tensor(x)
        dim = _dim(self.dim, x.ndim, "dim", "Unflatten")
        size, sizes = x.shape[dim], self.unflattened_size
        known = math.prod(s for s in sizes if s != -1)
        if (size != known) if -1 not in sizes else (size % known):
            raise ValueError(
                f"Unflatten: unflattened_size {sizes} does not fit axis {self.dim} of size "
                f"{size} (input shape {x.shape})."
            )
        return x.reshape(x.shape[:dim] + sizes + x.shape[dim + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
