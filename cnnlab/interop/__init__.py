"""Models in and out: ONNX export and import, an ONNX backend, safetensors weights.

The ``onnx`` and ``safetensors`` packages are optional (``pip install "cnnlab[interop]"``);
they are imported when a function here first needs them.
"""

from .onnx_export import to_onnx
from .onnx_import import from_onnx
from .safetensors_io import load_safetensors, save_safetensors

__all__ = ["from_onnx", "load_safetensors", "save_safetensors", "to_onnx"]
