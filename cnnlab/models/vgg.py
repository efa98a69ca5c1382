"""A small VGG-style network: blocks of 3×3 conv–BatchNorm–ReLU layers closed by max pooling."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from .._validate import _is_int, check_probability
from ..nn import BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential
from ..ops.shapes import pool_output_size
from ._common import check_channels, check_model_args, fits


def small_vgg(in_channels: int = 1, num_classes: int = 10, input_size: int = 28,
              channels: Sequence[int] = (32, 64), convs_per_block: int = 2, hidden: int = 256,
              dropout: float = 0.5) -> Sequential:
    """VGG in miniature: ``[conv 3×3 → BN → ReLU] × 2 → max-pool 2`` per block, then an MLP.

    With the defaults the feature extractor is ``[32, 32, pool, 64, 64, pool]`` (VGG notation)
    and the classifier ``flatten → FC 256 → ReLU → dropout 0.5 → FC num_classes``: 870,826
    parameters on 28×28 grayscale images (Fashion-MNIST), aimed at ≥ 93 % test accuracy there.
    The convolutions are padded by 1 (the map keeps its size) and have no bias, since the
    BatchNorm that follows has one. The model is ``Sequential(features=..., classifier=...)``,
    so ``state_dict`` keys (``features.0.weight``, ``features.1.running_mean``,
    ``classifier.1.weight``...) are those of the same ``torch.nn`` model.

    Args:
        in_channels: image channels (1 for grayscale, 3 for RGB).
        num_classes: outputs of the last layer.
        input_size: height = width of the input images; each block halves it, so it must be at
            least ``2 ** len(channels)``.
        channels: output channels of the convolutions of each block.
        convs_per_block: conv–BN–ReLU layers per block.
        hidden: width of the hidden fully connected layer.
        dropout: dropout probability before the last layer.

    Shape:
        ``(N, in_channels, input_size, input_size) -> (N, num_classes)`` (logits).

    Example:
        >>> from cnnlab import models
        >>> net = models.small_vgg()
        >>> net.num_parameters()
        870826
        >>> list(net.state_dict())[:3]
        ['features.0.weight', 'features.1.weight', 'features.1.bias']
    """
    check_model_args("small_vgg", in_channels, num_classes, input_size)
    channels = check_channels("small_vgg", channels)
    for name, value in (("convs_per_block", convs_per_block), ("hidden", hidden)):
        if not _is_int(value) or value <= 0:
            raise ValueError(f"small_vgg: {name} must be a positive int, received {value!r}.")
    try:
        dropout = check_probability(dropout, "dropout")
    except ValueError as error:
        raise ValueError(f"small_vgg: {error}") from None

    features: list = []
    size, c_in = input_size, in_channels
    for block, c_out in enumerate(channels, 1):
        for _ in range(convs_per_block):          # 3×3 with padding 1: the size is kept
            features += [Conv2d(c_in, c_out, 3, padding=1, bias=False), BatchNorm2d(c_out),
                         ReLU()]
            c_in = c_out
        size = fits("small_vgg", input_size,
                    f"features.{len(features)} (MaxPool2d 2×2 closing block {block})", size,
                    lambda n: pool_output_size(n, 2, 2))
        features.append(MaxPool2d(2))
    classifier = Sequential(
        Flatten(),                                  # 0: (N, C, s, s) -> (N, C·s·s)
        Linear(c_in * size * size, hidden),         # 1
        ReLU(),                                     # 2
        Dropout(dropout),                           # 3
        Linear(hidden, num_classes),                # 4
    )
    return Sequential(OrderedDict(features=Sequential(*features), classifier=classifier))
