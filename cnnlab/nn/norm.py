"""Batch normalisation layers: one class body, the subclasses only fix the accepted input ranks."""

from __future__ import annotations

import numbers

import numpy as np

from .._validate import _is_int
from ..autograd.tensor import Tensor, as_tensor
from ..functional.norm import _batch_norm
from ..ops.norm import values_per_channel
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    ranks: tuple[int, ...] = ()      # accepted input ranks
    layout = ""                      # how those inputs read, for messages

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, *,
                 bias: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        if not _is_int(num_features) or num_features <= 0:
            raise ValueError(
                f"{name}: num_features must be a positive int, received {num_features!r}."
            )
        for arg, value in (("eps", eps), ("momentum", momentum)):
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, numbers.Real)):
                raise TypeError(f"{name}: {arg} must be a number, received {value!r}.")
        if eps is None:
            raise TypeError(f"{name}: eps must be a number, received None.")
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.empty(num_features, dtype=np.float32))
            if bias:
                self.bias = Parameter(np.empty(num_features, dtype=np.float32))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
            self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(buffer, None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def reset_parameters(self) -> None:
        """Running statistics to ``(0, 1)``, ``γ = 1``, ``β = 0`` (PyTorch's initial state)."""
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def _label(self) -> str:
        """Short name for messages, e.g. ``BatchNorm2d(16)``."""
        return f"{type(self).__name__}({self.num_features})"

    def _check_input(self, x: Tensor, batch_stats: bool) -> None:
        where = self._label()
        if x.ndim not in self.ranks:
            expected = " or ".join(f"{n}-D" for n in self.ranks)
            raise ValueError(
                f"{where} expected a {expected} input {self.layout}, received a {x.ndim}-D "
                f"input of shape {x.shape}."
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{where} expected input with {self.num_features} channels, received "
                f"{x.shape[1]} (input shape {x.shape})."
            )
        if batch_stats and values_per_channel(x.shape) <= 1:
            raise ValueError(
                f"{where} in training mode needs more than 1 value per channel to compute a "
                f"variance, received input shape {x.shape}."
            )

    def forward(self, x) -> Tensor:
        """PyTorch's rule: batch statistics in training mode (or when nothing is tracked),
        running statistics otherwise; ``momentum=None`` makes the running update the
        cumulative average ``1 / num_batches_tracked``."""
        x = as_tensor(x)
        batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        self._check_input(x, batch_stats)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_running = not self.training or self.track_running_stats
        return _batch_norm(x, self.running_mean if use_running else None,
                           self.running_var if use_running else None, self.weight, self.bias,
                           batch_stats, factor, self.eps, where=self._label())

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over ``(N, C)`` or ``(N, C, L)``; arguments as :class:`BatchNorm2d`.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.BatchNorm1d(3)(np.random.default_rng(0).normal(size=(4, 3))).shape
        (4, 3)
    """

    ranks, layout = (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of images, per channel: ``y = γ · (x - μ) / √(σ² + ε) + β``.

    In training mode ``μ`` and the biased ``σ²`` are the batch's (over N, H and W) and the
    running estimates are updated in place: ``running = (1 - momentum) · running +
    momentum · stat`` (the unbiased variance for ``running_var``; ``momentum=None`` gives the
    cumulative average over ``num_batches_tracked`` batches). In evaluation mode the running
    estimates are used. Parameters ``weight`` (γ, ones) and ``bias`` (β, zeros) and buffers
    ``running_mean``, ``running_var``, ``num_batches_tracked`` are PyTorch's state_dict keys.

    Args:
        num_features: the number of channels ``C``.
        eps: added to the variance before the square root.
        momentum: weight of each new batch in the running estimates, or ``None``.
        affine: learn ``weight`` and ``bias``.
        track_running_stats: keep running estimates; without them evaluation also uses the
            batch statistics.
        bias: (keyword only) learn ``bias`` when ``affine``.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> bn = nn.BatchNorm2d(3)
        >>> list(bn.state_dict())
        ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
        >>> bn(np.random.default_rng(0).normal(size=(4, 3, 5, 5))).shape
        (4, 3, 5, 5)
    """

    ranks, layout = (4,), "(N, C, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch normalisation over volumes ``(N, C, D, H, W)``; arguments as :class:`BatchNorm2d`.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.BatchNorm3d(3)(np.random.default_rng(0).normal(size=(2, 3, 2, 4, 4))).shape
        (2, 3, 2, 4, 4)
    """

    ranks, layout = (5,), "(N, C, D, H, W)"
