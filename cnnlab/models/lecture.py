"""The lecture's "simple ConvNet": three unpadded convolutions that shrink a 64×64×3 image."""

from __future__ import annotations

from collections.abc import Sequence

from ..nn import Conv2d, Flatten, Linear, ReLU, Sequential
from ..ops.shapes import conv_output_size
from ._common import check_channels, check_model_args, fits

# (kernel, stride) of the three convolutions, as on the slide; none is padded.
_CONVS = ((3, 1), (5, 2), (7, 2))


def lecture_convnet(in_channels: int = 3, num_classes: int = 10, input_size: int = 64,
                    channels: Sequence[int] = (8, 16, 32)) -> Sequential:
    """The lecture's stack: 64×64×3 → 62×62×8 → 29×29×16 → 12×12×32 → flatten → FC.

    Convolutions 3×3 stride 1, 5×5 stride 2 and 7×7 stride 2, unpadded, each followed by ReLU;
    the 12·12·32 = 4,608 values are flattened into one fully connected layer. Sizes follow
    ``floor((n - f) / s) + 1``: 62 = 64 - 3 + 1, 29 = floor((62 - 5) / 2) + 1,
    12 = floor((29 - 7) / 2) + 1. Parameters: 224 + 3,216 + 25,120 + 46,090 = 74,650 with the
    defaults. Layer indices (``0.weight``, ``2.weight``, ``4.weight``, ``7.weight``) are those of
    the same ``torch.nn.Sequential``.

    Args:
        in_channels: image channels.
        num_classes: outputs of the last layer.
        input_size: height = width of the input images; at least 19 for the three kernels.
        channels: output channels of the three convolutions.

    Shape:
        ``(N, in_channels, input_size, input_size) -> (N, num_classes)`` (logits).

    Example:
        >>> import numpy as np
        >>> from cnnlab import models
        >>> net = models.lecture_convnet()
        >>> net[:4](np.zeros((1, 3, 64, 64), np.float32)).shape      # after CONV2 and ReLU
        (1, 16, 29, 29)
        >>> net.num_parameters()
        74650
    """
    check_model_args("lecture_convnet", in_channels, num_classes, input_size)
    channels = check_channels("lecture_convnet", channels, count=len(_CONVS))
    layers: list = []
    size, c_in = input_size, in_channels
    for (kernel, stride), c_out in zip(_CONVS, channels):
        size = fits("lecture_convnet", input_size,
                    f"{len(layers)} (Conv2d {kernel}×{kernel}, stride {stride})", size,
                    lambda n, k=kernel, s=stride: conv_output_size(n, k, s))
        layers += [Conv2d(c_in, c_out, kernel, stride=stride), ReLU()]
        c_in = c_out
    layers += [Flatten(), Linear(c_in * size * size, num_classes)]     # 6, 7
    return Sequential(*layers)
