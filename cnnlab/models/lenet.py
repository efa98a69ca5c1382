"""LeNet-5 as in the lecture's table, in modern form (ReLU and max pooling)."""

from __future__ import annotations

from collections.abc import Sequence

from .._validate import _is_int
from ..nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from ..ops.shapes import conv_output_size, pool_output_size


def lenet5(in_channels: int = 1, num_classes: int = 10, input_size: int = 28,
           channels: Sequence[int] = (6, 16)) -> Sequential:
    """LeNet-5: conv 5×5 → ReLU → max-pool 2 → conv 5×5 → ReLU → max-pool 2 → FC 120 → FC 84 → FC.

    The first convolution is padded by 2 when ``input_size`` is 28 (so MNIST's 28×28 behaves like
    the original 32×32 input), otherwise unpadded. Layer indices (and so ``state_dict`` keys) match
    the equivalent ``torch.nn.Sequential``: ``0.weight``, ``3.weight``, ``7.weight``, ...

    Args:
        in_channels: image channels (1 for grayscale, 3 for RGB).
        num_classes: outputs of the last layer.
        input_size: height = width of the input images.
        channels: output channels of the two convolutions.

    Shape:
        ``(N, in_channels, input_size, input_size) -> (N, num_classes)`` (logits).

    Example:
        >>> from cnnlab import models
        >>> net = models.lenet5(in_channels=3, input_size=32, channels=(8, 16))
        >>> net.num_parameters()      # the lecture's table network
        62958
    """
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                        ("input_size", input_size)):
        if not _is_int(value) or value <= 0:
            raise ValueError(f"lenet5: {name} must be a positive int, received {value!r}.")
    if (not isinstance(channels, Sequence) or len(channels) != 2
            or not all(_is_int(c) and c > 0 for c in channels)):
        raise ValueError(f"lenet5: channels must be two positive ints, received {channels!r}.")
    c1, c2 = channels
    padding = 2 if input_size == 28 else 0
    size = input_size
    try:
        size = conv_output_size(size, 5, 1, padding)      # conv 1
        size = pool_output_size(size, 2, 2)                # pool 1
        size = conv_output_size(size, 5)                   # conv 2
        size = pool_output_size(size, 2, 2)                # pool 2
    except ValueError:
        raise ValueError(
            f"lenet5: input_size must be at least 16 (28 is padded) for two 5×5 convolutions "
            f"and two 2×2 poolings, received {input_size}."
        ) from None
    return Sequential(
        Conv2d(in_channels, c1, 5, padding=padding),       # 0
        ReLU(),                                             # 1
        MaxPool2d(2),                                       # 2
        Conv2d(c1, c2, 5),                                  # 3
        ReLU(),                                             # 4
        MaxPool2d(2),                                       # 5
        Flatten(),                                          # 6
        Linear(c2 * size * size, 120),                      # 7
        ReLU(),                                             # 8
        Linear(120, 84),                                    # 9
        ReLU(),                                             # 10
        Linear(84, num_classes),                            # 11
    )
