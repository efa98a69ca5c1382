"""Ready-made architectures, and a registry to build them by name.

>>> from cnnlab import models
>>> models.available()
['lenet5', 'small_vgg', 'small_resnet', 'lecture_convnet']
>>> net = models.get("small_resnet", in_channels=3, input_size=32)
"""

from .graph import GraphNet
from .lecture import lecture_convnet
from .lenet import lenet5
from .registry import available, get, get_builder, register, unregister
from .resnet import BasicBlock, small_resnet
from .vgg import small_vgg

__all__ = ["BasicBlock", "GraphNet", "available", "get", "get_builder", "lecture_convnet", "lenet5",
           "register", "small_resnet", "small_vgg", "unregister"]
