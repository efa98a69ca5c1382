"""safetensors weights with PyTorch's ``state_dict`` key names.

A ``.safetensors`` file is an 8-byte header length, a JSON header (each tensor's dtype, shape
and byte range) and the raw little-endian bytes: no pickle, nothing that runs. cnnlab's
``state_dict`` keys and shapes are PyTorch's, so ``safetensors.torch.save_file(
torch_model.state_dict(), path)`` loads straight into the matching cnnlab model, and a file saved
here loads into the torch model with ``safetensors.torch.load_file``.

Before the package parses a file, its header is read and checked here: its length against the
file, every tensor's byte range against the data that follows, and every shape against its
byte range — so a file whose header lies about sizes is refused with one sentence.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..nn.module import Module
from ._deps import require

#: bytes per element of the dtypes safetensors names.
_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
             "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
#: the largest header accepted (safetensors' own limit is 100 MB).
MAX_HEADER = 100 * 1024 * 1024


def check_safetensors(path: str | os.PathLike) -> dict[str, dict]:
    """The header of a ``.safetensors`` file, after checking it against the file's size.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the header is malformed or its sizes do not fit the file (one sentence).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"safetensors file {str(path)!r} does not exist.")
    size = path.stat().st_size
    where = f"{str(path)!r} is not a valid safetensors file"
    with path.open("rb") as file:
        head = file.read(8)
        if len(head) < 8:
            raise ValueError(f"{where}: it has {size} bytes, fewer than the 8 of the header "
                             f"length.")
        length = int.from_bytes(head, "little")
        if length > min(MAX_HEADER, size - 8):
            raise ValueError(f"{where}: its header claims {length:,} bytes but the file holds "
                             f"{size - 8:,} after the length.")
        try:
            header = json.loads(file.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError(f"{where}: its {length}-byte header is not JSON.") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: its header is not a JSON object.")
    data_size = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            count = math.prod(int(s) for s in shape)
            expected = count * _ITEMSIZE[dtype]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: the header entry of {name!r} is malformed.") from None
        if not (0 <= begin <= end <= data_size):
            raise ValueError(f"{where}: tensor {name!r} claims bytes {begin}..{end}, but the "
                             f"data holds {data_size:,} bytes.")
        if end - begin != expected:
            raise ValueError(f"{where}: tensor {name!r} of dtype {dtype} and shape "
                             f"{tuple(shape)} needs {expected:,} bytes, its header gives "
                             f"{end - begin:,}.")
    return header


def save_safetensors(model: Module, path: str | os.PathLike) -> Path:
    """Write ``model.state_dict()`` as a ``.safetensors`` file (PyTorch's key names).

    Example:
        >>> import tempfile, os
        >>> from cnnlab import models
        >>> from cnnlab.interop import load_safetensors, save_safetensors
        >>> path = save_safetensors(models.lenet5(), os.path.join(tempfile.mkdtemp(), "w.st"))
        >>> load_safetensors(models.lenet5(), path).num_parameters()
        61706
    """
    numpy_io = require("safetensors.numpy")
    if not isinstance(model, Module):
        raise TypeError(f"save_safetensors: model must be a cnnlab.nn.Module, received "
                        f"{type(model).__name__}.")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"save_safetensors: the directory {str(path.parent)!r} does "
                                f"not exist.")
    state = {key: np.asarray(value, order="C") for key, value in model.state_dict().items()}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        numpy_io.save_file(state, os.fspath(temporary), metadata={"format": "pt"})
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def load_safetensors(model: Module, path: str | os.PathLike, strict: bool = True) -> Module:
    """Load a ``.safetensors`` file (e.g. saved from a PyTorch model) into ``model``.

    Args:
        model: the cnnlab model with the same architecture (keys and shapes).
        path: the file.
        strict: the keys must be exactly the model's (the error lists the differences).

    Returns:
        ``model``, with the weights copied in.
    """
    numpy_io = require("safetensors.numpy")
    check_safetensors(path)
    try:
        state = numpy_io.load_file(os.fspath(path))
    except Exception as error:  # noqa: BLE001 (the package raises its own SafetensorError)
        raise ValueError(f"{str(path)!r} cannot be read as safetensors ({error}).") from None
    try:
        model.load_state_dict(state, strict=strict)
    except ValueError as error:
        raise ValueError(f"the weights in {str(path)!r} do not fit "
                         f"{type(model).__name__}: "
                         f"{str(error).removeprefix('load_state_dict: ')}") from None
    return model
