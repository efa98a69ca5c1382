"""Pooling layers: one class body per kind for every dimension, the subclasses only fix ``nd``.

Constructor arguments, their order and ``repr`` are ``torch.nn``'s; the arguments are checked
when the layer is built, and errors name the layer.
"""

from __future__ import annotations

from .._validate import _is_int, fmt_size
from ..functional.pool import (
    _adaptive_avg_pool,
    _avg_pool,
    _max_pool,
    _output_size,
    _pool_geometry,
    pool_pads,
)
from .module import Module


def _label(name: str, kernel: tuple[int, ...], stride: tuple[int, ...]) -> str:
    """Short name for messages, e.g. ``MaxPool2d(kernel 2×2, stride 2×2)``."""
    return f"{name}(kernel {fmt_size(kernel)}, stride {fmt_size(stride)})"


class _WindowPool(Module):
    """What max and average pooling share: a sliding window of fixed kernel, stride, dilation."""

    nd = 0

    def window(self, in_sizes) -> tuple[tuple[int, ...], tuple[int, ...],
                                        tuple[tuple[int, int], ...], tuple[int, ...]]:
        """``(kernel, stride, pads, dilation)`` per axis for spatial input sizes ``in_sizes``;
        ``pads`` as ``(before, after)`` pairs (every padding form resolved)."""
        kernel, stride, padding, dilation = _pool_geometry(
            self.nd, self.kernel_size, self.stride, self.padding, self.dilation,
            type(self).__name__)
        return kernel, stride, pool_pads(padding, in_sizes, kernel, stride, dilation), dilation


class _MaxPoolNd(_WindowPool):

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode
        geometry = _pool_geometry(self.nd, kernel_size, stride, padding, dilation,
                                  type(self).__name__)
        self._where = _label(type(self).__name__, *geometry[:2])

    def forward(self, x):
        return _max_pool(self.nd, x, self.kernel_size, self.stride, self.padding, self.dilation,
                         self.ceil_mode, self.return_indices, where=self._where)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling layer over ``(N, C, L)``; arguments as :class:`MaxPool2d`."""

    nd = 1


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling layer: ``y = max_pool2d(x, ...)``; no parameters.

    Args:
        kernel_size: window size, int or ``(kh, kw)``.
        stride: window step; ``None`` (the default) means ``kernel_size``.
        padding: implicit -inf padding on both sides, at most ``kernel_size // 2``; or ONNX's
            per-side pairs ``((top, bottom), (left, right))`` (any size), ``"same"``, ``"valid"``.
        dilation: spacing between window elements.
        return_indices: also return the flat index of each maximum (an int64 ndarray).
        ceil_mode: round the output size up (a last partial window).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``,
        ``H_out = floor((H + 2p - d*(kh - 1) - 1) / s) + 1`` (``ceil`` with ``ceil_mode``).

    Example:
        >>> from cnnlab import nn
        >>> import numpy as np
        >>> nn.MaxPool2d(2)(np.zeros((2, 6, 28, 28), np.float32)).shape
        (2, 6, 14, 14)
    """

    nd = 2


class MaxPool3d(_MaxPoolNd):
    """3-D max pooling layer over ``(N, C, D, H, W)``; arguments as :class:`MaxPool2d`."""

    nd = 3


class _AvgPoolNd(_WindowPool):

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None, *,
                 dilation=1) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override
        geometry = _pool_geometry(self.nd, kernel_size, stride, padding, dilation,
                                  type(self).__name__)
        self._where = _label(type(self).__name__, *geometry[:2])
        if divisor_override is not None and (not _is_int(divisor_override)
                                             or divisor_override == 0):
            raise ValueError(
                f"{type(self).__name__}: divisor_override must be a non-zero int or None, "
                f"received {divisor_override!r}."
            )

    def forward(self, x):
        return _avg_pool(self.nd, x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                         self.count_include_pad, self.divisor_override, where=self._where,
                         dilation=self.dilation)

    def extra_repr(self) -> str:
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        return text if self.dilation == 1 else f"{text}, dilation={self.dilation}"


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling layer over ``(N, C, L)``; arguments as :class:`AvgPool2d` (without
    ``divisor_override``, as in PyTorch, which also stores the sizes as 1-tuples)."""

    nd = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, *, dilation=1) -> None:
        def single(v):
            return (v,) if _is_int(v) else v

        super().__init__(single(kernel_size), None if stride is None else single(stride),
                         single(padding), ceil_mode, count_include_pad, dilation=dilation)


class AvgPool2d(_AvgPoolNd):
    """2-D average pooling layer: ``y = avg_pool2d(x, ...)``; no parameters.

    Args:
        kernel_size: window size, int or ``(kh, kw)``.
        stride: window step; ``None`` (the default) means ``kernel_size``.
        padding: implicit zero padding on both sides, at most ``kernel_size // 2``; or ONNX's
            per-side pairs ``((top, bottom), (left, right))`` (any size), ``"same"``, ``"valid"``.
        ceil_mode: round the output size up (a last partial window).
        count_include_pad: whether padded zeros count in each window's divisor.
        divisor_override: a non-zero int used as the divisor of every window.
        dilation: (keyword only, ONNX's; PyTorch has none) spacing between window elements.

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``,
        ``H_out = floor((H + 2p - kh) / s) + 1`` (``ceil`` with ``ceil_mode``).

    Example:
        >>> from cnnlab import nn
        >>> import numpy as np
        >>> nn.AvgPool2d(3, stride=2, padding=1)(np.zeros((1, 8, 9, 9), np.float32)).shape
        (1, 8, 5, 5)
    """

    nd = 2


class AvgPool3d(_AvgPoolNd):
    """3-D average pooling layer over ``(N, C, D, H, W)``; arguments as :class:`AvgPool2d`."""

    nd = 3


class _AdaptiveAvgPoolNd(Module):
    nd = 0

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size
        _output_size(self.nd, output_size, type(self).__name__)

    def forward(self, x):
        sizes = _output_size(self.nd, self.output_size, type(self).__name__)
        label = "×".join("_" if s is None else str(s) for s in sizes)
        return _adaptive_avg_pool(self.nd, x, self.output_size,
                                  where=f"{type(self).__name__}(output {label})")

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """1-D adaptive average pooling layer; arguments as :class:`AdaptiveAvgPool2d`."""

    nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling to a fixed output size, whatever the input size (PyTorch's bins).

    Args:
        output_size: ``m`` or ``(m_h, m_w)``; ``None`` keeps that axis' input size.
            ``AdaptiveAvgPool2d(1)`` is global average pooling.

    Shape:
        ``(N, C, H, W) -> (N, C, m_h, m_w)``.

    Example:
        >>> from cnnlab import nn
        >>> import numpy as np
        >>> nn.AdaptiveAvgPool2d((None, 3))(np.zeros((2, 4, 7, 9), np.float32)).shape
        (2, 4, 7, 3)
    """

    nd = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """3-D adaptive average pooling layer; arguments as :class:`AdaptiveAvgPool2d`."""

    nd = 3
