"""A small ResNet: a 3×3 stem, stages of residual basic blocks, global average pooling, FC."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from .._validate import _is_int
from ..nn import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, Module, ReLU, Sequential
from ..ops.shapes import conv_output_size
from ._common import check_channels, check_model_args, fits


class BasicBlock(Module):
    """ResNet's basic block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Both convolutions are 3×3 with padding 1 and no bias (BatchNorm follows); ``conv1`` has the
    block's stride. The shortcut is the identity when the shape is kept, otherwise
    ``downsample``: a 1×1 convolution with the stride and a BatchNorm, as in torchvision (whose
    attribute names, and so ``state_dict`` keys, these are).

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: stride of ``conv1`` and of the shortcut (2 halves the map).

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.

    Example:
        >>> import numpy as np
        >>> from cnnlab.models import BasicBlock
        >>> block = BasicBlock(16, 32, stride=2)
        >>> block(np.zeros((1, 16, 7, 7), np.float32)).shape
        (1, 32, 4, 4)
        >>> list(dict.fromkeys(k.split(".")[0] for k in block.state_dict()))
        ['conv1', 'bn1', 'conv2', 'bn2', 'downsample']
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if not _is_int(stride) or stride <= 0:
            raise ValueError(f"BasicBlock: stride must be a positive int, received {stride!r}.")
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.relu = ReLU()
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.downsample = Sequential(
                Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                BatchNorm2d(out_channels),
            )
        else:
            self.downsample = None
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))         # (N, C_out, H/s, W/s)
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def small_resnet(in_channels: int = 1, num_classes: int = 10, input_size: int = 28,
                 channels: Sequence[int] = (32, 64, 128), blocks: int = 1) -> Sequential:
    """A ResNet for small images: stem, one stage per entry of ``channels``, pooling, FC.

    The stem is ``conv 3×3 (padding 1) → BN → ReLU``; stage ``i`` (``layer1``, ``layer2``, ...)
    holds ``blocks`` :class:`BasicBlock` s, the first of which halves the map (stride 2) in every
    stage but the first. ``AdaptiveAvgPool2d(1)`` then averages each channel (global average
    pooling) and a fully connected layer gives the logits, so any ``input_size`` works. Names
    follow torchvision's ResNet (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample``,
    ``fc``), and so do the ``state_dict`` keys. Defaults: 308,074 parameters.

    Args:
        in_channels: image channels (1 for grayscale, 3 for RGB).
        num_classes: outputs of the last layer.
        input_size: height = width of the input images (the output size does not depend on it).
        channels: output channels of the stem and first stage, then of each further stage.
        blocks: basic blocks per stage.

    Shape:
        ``(N, in_channels, input_size, input_size) -> (N, num_classes)`` (logits).

    Example:
        >>> import numpy as np
        >>> from cnnlab import models
        >>> net = models.small_resnet()
        >>> net.num_parameters()
        308074
        >>> net(np.zeros((2, 1, 28, 28), np.float32)).shape
        (2, 10)
    """
    check_model_args("small_resnet", in_channels, num_classes, input_size)
    channels = check_channels("small_resnet", channels)
    if not _is_int(blocks) or blocks <= 0:
        raise ValueError(f"small_resnet: blocks must be a positive int, received {blocks!r}.")

    layers: OrderedDict = OrderedDict(
        conv1=Conv2d(in_channels, channels[0], 3, padding=1, bias=False),
        bn1=BatchNorm2d(channels[0]),
        relu=ReLU(),
    )
    size, c_in = input_size, channels[0]
    for stage, c_out in enumerate(channels, 1):
        stride = 1 if stage == 1 else 2
        size = fits("small_resnet", input_size, f"layer{stage}.0.conv1 (Conv2d 3×3, stride "
                    f"{stride})", size, lambda n, s=stride: conv_output_size(n, 3, s, 1))
        stage_blocks = [BasicBlock(c_in, c_out, stride)]
        stage_blocks += [BasicBlock(c_out, c_out) for _ in range(blocks - 1)]
        layers[f"layer{stage}"] = Sequential(*stage_blocks)
        c_in = c_out
    layers["avgpool"] = AdaptiveAvgPool2d(1)                # (N, C, 1, 1)
    layers["flatten"] = Flatten()                           # (N, C)
    layers["fc"] = Linear(c_in, num_classes)
    return Sequential(layers)
