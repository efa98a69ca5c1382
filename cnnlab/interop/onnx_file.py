"""Reading an ``.onnx`` file safely: its size checked before it is read, parsed as a protocol
buffer (no code runs), weights kept in external files refused, and every weight's declared size
checked against the bytes it holds before it becomes an array."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._deps import require

#: the largest file read by default (2 GiB, protobuf's own limit).
MAX_BYTES = 2 * 1024 ** 3


def read_onnx(path: str | os.PathLike, max_bytes: int = MAX_BYTES):
    """Parse an ``.onnx`` file after checking its size; refuse weights kept in other files."""
    onnx = require("onnx")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {str(path)!r} does not exist.")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"ONNX file {str(path)!r} has {size:,} bytes, more than the "
                         f"{max_bytes:,} bytes accepted.")
    data = path.read_bytes()
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as error:  # noqa: BLE001 (protobuf raises its own DecodeError)
        raise ValueError(f"{str(path)!r} is not a readable ONNX model ({type(error).__name__}: "
                         f"{error}).") from None
    if not proto.HasField("graph"):
        raise ValueError(f"{str(path)!r} is not an ONNX model (it has no graph).")
    return proto


def attributes(node) -> dict[str, Any]:
    from onnx import helper

    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        values[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return values


def tensor_array(tensor, where: str) -> np.ndarray:
    """An ONNX tensor as an ndarray, its declared size checked against its bytes first."""
    from onnx import TensorProto, helper, numpy_helper

    if tensor.data_location == TensorProto.EXTERNAL:
        raise ValueError(f"{where} {tensor.name!r} keeps its values in an external file, which "
                         f"cnnlab does not read; save the model as one file.")
    count = math.prod(tensor.dims)
    if tensor.HasField("raw_data"):
        try:
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
        except (KeyError, TypeError):
            raise ValueError(f"{where} {tensor.name!r} has an unsupported data type "
                             f"{tensor.data_type}.") from None
        if count * itemsize != len(tensor.raw_data):
            raise ValueError(f"{where} {tensor.name!r} declares shape {tuple(tensor.dims)} "
                             f"({count * itemsize:,} bytes) but holds {len(tensor.raw_data):,} "
                             f"bytes.")
    try:
        return np.array(numpy_helper.to_array(tensor))
    except (ValueError, TypeError) as error:
        raise ValueError(f"{where} {tensor.name!r} cannot be read ({error}).") from None
