"""Convolution layers: one class for every dimension, the subclasses only fix ``nd``."""

from __future__ import annotations

import numpy as np

from .._validate import _is_int, as_tuple, check_choice, check_positive, fmt_size
from ..functional.conv import PADDING_MODES, _conv, _conv_transpose
from . import init
from .module import Module
from .parameter import Parameter


class _ConvNd(Module):
    nd = 0
    transposed = False

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int | tuple[int, ...], stride: int | tuple[int, ...] = 1,
                 padding=0, dilation: int | tuple[int, ...] = 1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros",
                 output_padding: int | tuple[int, ...] = 0) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels),
                           ("groups", groups)):
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name}: {arg} must be a positive int, received {value!r}.")
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value % groups:
                raise ValueError(
                    f"{name}: {arg} ({value}) must be divisible by groups ({groups})."
                )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = check_positive(as_tuple(kernel_size, self.nd, "kernel_size"),
                                          "kernel_size")
        self.stride = check_positive(as_tuple(stride, self.nd, "stride"), "stride")
        self.dilation = check_positive(as_tuple(dilation, self.nd, "dilation"), "dilation")
        self.padding = padding if isinstance(padding, str) else _normalise_padding(padding,
                                                                                   self.nd)
        self.padding_mode = check_choice(padding_mode, PADDING_MODES, "padding_mode")
        self.output_padding = as_tuple(output_padding, self.nd, "output_padding")
        if self.transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=np.float32))
        self.bias = Parameter(np.empty(out_channels, dtype=np.float32)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_init_(self.weight, self.bias)

    def _label(self) -> str:
        """Short name for messages, e.g. ``Conv2d(3→8, kernel 3×3)``."""
        return (f"{type(self).__name__}({self.in_channels}→{self.out_channels}, kernel "
                f"{fmt_size(self.kernel_size)})")

    def forward(self, x):
        if self.transposed:
            return _conv_transpose(self.nd, x, self.weight, self.bias, self.stride, self.padding,
                                   self.output_padding, self.groups, self.dilation,
                                   where=self._label())
        return _conv(self.nd, x, self.weight, self.bias, self.stride, self.padding,
                     self.dilation, self.groups, self.padding_mode, False, where=self._label())

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}", f"kernel_size={self.kernel_size}",
                 f"stride={self.stride}"]
        if self.padding != (0,) * self.nd:
            parts.append(f"padding={self.padding!r}")
        if self.dilation != (1,) * self.nd:
            parts.append(f"dilation={self.dilation}")
        if self.transposed and self.output_padding != (0,) * self.nd:
            parts.append(f"output_padding={self.output_padding}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        if self.padding_mode != "zeros":
            parts.append(f"padding_mode={self.padding_mode!r}")
        return ", ".join(parts)


def _normalise_padding(padding, nd: int):
    if _is_int(padding):
        return (int(padding),) * nd
    return tuple(tuple(p) if isinstance(p, (tuple, list)) else p for p in padding)


class Conv1d(_ConvNd):
    """1-D convolution layer over ``(N, C_in, L)``; arguments as :class:`Conv2d`."""

    nd = 1


class Conv2d(_ConvNd):
    """2-D convolution layer: ``y = conv2d(x, weight, bias)`` with learned kernels.

    Args:
        in_channels, out_channels: channel counts; ``weight`` is
            ``(out_channels, in_channels/groups, kh, kw)``.
        kernel_size, stride, dilation: int or one per axis.
        padding: int, per-axis, per-side pairs, ``"valid"`` or ``"same"`` (any stride).
        groups: channel groups (``groups=in_channels`` gives a depthwise convolution).
        bias: learn an additive bias per output channel.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``,
        ``H_out = floor((H + p_top + p_bottom - d*(kh-1) - 1) / s) + 1``.

    Example:
        >>> from cnnlab import nn
        >>> import numpy as np
        >>> nn.Conv2d(3, 8, 3, padding=1)(np.zeros((2, 3, 9, 9), np.float32)).shape
        (2, 8, 9, 9)
    """

    nd = 2


class Conv3d(_ConvNd):
    """3-D convolution layer over ``(N, C_in, D, H, W)``; arguments as :class:`Conv2d`."""

    nd = 3


class _ConvTransposeNd(_ConvNd):
    transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros") -> None:
        if padding_mode != "zeros":
            raise ValueError(
                f"{type(self).__name__} only supports padding_mode='zeros', received "
                f"{padding_mode!r}."
            )
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding)


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution; arguments as :class:`ConvTranspose2d`."""

    nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution layer (upsampling by ``stride``).

    ``weight`` is ``(in_channels, out_channels/groups, kh, kw)`` as in PyTorch.

    Shape:
        ``H_out = (H - 1)*s - 2p + d*(kh - 1) + output_padding + 1``.

    Example:
        >>> from cnnlab import nn
        >>> import numpy as np
        >>> nn.ConvTranspose2d(4, 2, 2, stride=2)(np.zeros((1, 4, 5, 5), np.float32)).shape
        (1, 2, 10, 10)
    """

    nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution; arguments as :class:`ConvTranspose2d`."""

    nd = 3
