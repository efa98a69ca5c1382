"""Convolution layers: one class for every dimension, the subclasses only fix ``nd``."""

from __future__ import annotations

import numpy as np

from .._validate import _is_int, as_tuple, check_positive, fmt_size, located
from ..functional.conv import (
    _check_groups,
    _conv,
    _conv_transpose,
    conv_arguments,
    conv_transpose_arguments,
)
from . import init
from .module import Module
from .parameter import Parameter


class _ConvNd(Module):
    nd = 0
    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding,
                 dilation, groups: int, bias: bool, padding_mode: str, output_padding) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name}: {arg} must be a positive int, received {value!r}.")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.groups = _check_groups(groups, in_channels, out_channels, name)
        with located(name):
            self.kernel_size = check_positive(as_tuple(kernel_size, self.nd, "kernel_size"),
                                              "kernel_size")
        self._where = (f"{name}({in_channels}→{out_channels}, kernel "
                       f"{fmt_size(self.kernel_size)})")     # names the layer in messages
        with located(self._where):
            if self.transposed:
                self.stride, pads, self.output_padding, self.dilation = \
                    conv_transpose_arguments(self.nd, stride, padding, output_padding, dilation)
            else:
                self.stride, pads, self.dilation = conv_arguments(self.nd, stride, padding,
                                                                  dilation, padding_mode)
        self.padding = _display_padding(pads)
        self.padding_mode = padding_mode
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


def _display_padding(pads):
    """Padding as PyTorch shows it: a name, one int per axis, or explicit pairs if asymmetric."""
    if isinstance(pads, str) or any(pb != pe for pb, pe in pads):
        return pads
    return tuple(pb for pb, _ in pads)


class _Conv(_ConvNd):
    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int | tuple[int, ...], stride: int | tuple[int, ...] = 1,
                 padding=0, dilation: int | tuple[int, ...] = 1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros") -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, 0)

    def forward(self, x):
        return _conv(self.nd, x, self.weight, self.bias, self.stride, self.padding,
                     self.dilation, self.groups, self.padding_mode, False, where=self._where)


class Conv1d(_Conv):
    """1-D convolution layer over ``(N, C_in, L)``; arguments as :class:`Conv2d`."""

    nd = 1


class Conv2d(_Conv):
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


class Conv3d(_Conv):
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

    def forward(self, x):
        return _conv_transpose(self.nd, x, self.weight, self.bias, self.stride, self.padding,
                               self.output_padding, self.groups, self.dilation,
                               where=self._where)


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
