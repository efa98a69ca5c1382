"""The op API on Tensors (and plain ndarrays), with torch.nn.functional's names and arguments.

Every function checks its arguments, calls the NumPy pair in ``cnnlab.ops`` and records the
backward step. Submodules hold one op family each.
"""

from .conv import (
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)

__all__ = [
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
]
