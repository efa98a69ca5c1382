"""Models in and out: ONNX export and import, an ONNX backend, safetensors weights.

The ``onnx`` and ``safetensors`` packages are optional (``pip install "cnnlab[interop]"``);
they are imported when a function here first needs them.
"""

from .onnx_export import to_onnx

__all__ = ["to_onnx"]
