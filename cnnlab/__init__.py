"""cnnlab: convolutional neural networks from first principles on NumPy.

>>> import cnnlab
>>> from cnnlab import nn, optim, functional as F
"""

__version__ = "0.1.0"

from . import data, functional, memory, models, nn, optim, threads, tools, train
from .autograd import Tensor, enable_grad, gradcheck, is_grad_enabled, no_grad, tensor
from .random import manual_seed

__all__ = ["Tensor", "enable_grad", "functional", "gradcheck", "is_grad_enabled",
           "data", "manual_seed", "memory", "models", "nn", "no_grad", "optim", "tensor",
           "threads", "tools", "train", "__version__"]
