"""The op API on Tensors (and plain ndarrays), with torch.nn.functional's names and arguments.

Every function checks its arguments, calls the NumPy pair in ``cnnlab.ops`` and records the
backward step. Submodules hold one op family each.
"""

from .activation import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .conv import (
    conv1d,
    conv2d,
    conv2d_relu,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)
from .dropout import dropout, dropout1d, dropout2d, dropout3d
from .linear import linear
from .loss import cross_entropy, mse_loss, nll_loss
from .norm import batch_norm
from .pad import pad
from .pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
)

__all__ = [
    "conv1d", "conv2d", "conv2d_relu", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d",
    "batch_norm", "dropout", "dropout1d", "dropout2d", "dropout3d", "linear",
    "leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "tanh",
    "cross_entropy", "mse_loss", "nll_loss", "pad",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
]
