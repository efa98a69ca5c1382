"""The safetensors file layout, written and read with NumPy alone (no dependency).

A safetensors file is::

    8 bytes     N, the header's length (unsigned little-endian 64-bit)
    N bytes     a JSON object: for each tensor {"dtype": "F32", "shape": [2, 3],
                "data_offsets": [begin, end]} (byte offsets into the data that follows), and
                "__metadata__": {str: str}; padded with spaces to a multiple of 8 bytes
    the rest    the tensors' raw little-endian bytes, back to back, in offset order

so the ``safetensors`` package (``safetensors.numpy.load_file``, ``safetensors.torch``) and
PyTorch users open cnnlab checkpoints without cnnlab. Reading never trusts the file: the header's
length, every declared shape and offset are checked against the file's size and an element cap
before anything is allocated, the JSON's nesting depth is bounded, and the tensors must tile the
data exactly (no gaps, no overlaps), as the reference implementation requires.

>>> import io, numpy as np
>>> data = b"".join(encode({"w": np.arange(3, dtype=np.float32)}, {"note": "hi"}))
>>> header = read_header(io.BytesIO(data), len(data), "x", max_elements=10**6)
>>> header.metadata, header.tensors["w"].shape
({'note': 'hi'}, (3,))
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

#: safetensors dtype names <-> NumPy little-endian dtypes (the ones cnnlab writes and reads).
DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
          "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
          "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?")}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}

MAX_HEADER_BYTES = 16 << 20          # 16 MiB of JSON: far above any checkpoint's description
MAX_JSON_DEPTH = 32                  # cnnlab's own metadata nests 6 deep
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')


class FormatError(ValueError):
    """The bytes are not a well-formed safetensors file (the message says why, in one line)."""


def _dtype_name(array: np.ndarray) -> str:
    name = _NAMES.get(array.dtype.newbyteorder("<"))
    if name is None:
        raise TypeError(f"safetensors cannot store dtype {array.dtype}; use float, int or bool.")
    return name


def encode(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]
           ) -> Iterator[memoryview | bytes]:
    """The file's bytes as chunks: length, header, then each tensor's buffer (no copy of it)."""
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    buffers, offset = [], 0
    for name, value in tensors.items():
        if name == "__metadata__":
            raise ValueError("a tensor cannot be named '__metadata__'.")
        array = np.asarray(value)
        dtype_name = _dtype_name(array)
        array = np.asarray(array, dtype=DTYPES[dtype_name])              # little-endian
        if not array.flags.c_contiguous:
            array = array.copy(order="C")
        header[name] = {"dtype": dtype_name, "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
        buffers.append(array)
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    yield len(text).to_bytes(8, "little") + text
    for array in buffers:
        if array.nbytes:
            yield memoryview(array.reshape(-1)).cast("B")


def _check_depth(text: bytes, where: str) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH before ``json.loads`` recurses into it."""
    skeleton = np.frombuffer(_STRINGS.sub(b'""', text), dtype=np.uint8)
    opens = (skeleton == ord("[")) | (skeleton == ord("{"))
    brackets = opens | (skeleton == ord("]")) | (skeleton == ord("}"))
    steps = opens[brackets].astype(np.int32) * 2 - 1                # +1 opens, -1 closes
    depth = int(np.cumsum(steps, dtype=np.int32).max(initial=0))
    if depth > MAX_JSON_DEPTH:
        raise FormatError(f"{where} nests {depth} levels deep; at most {MAX_JSON_DEPTH} are "
                          f"accepted.")


def parse_json(text: bytes | str, where: str) -> object:
    """``json.loads`` with the depth bounded first; any error becomes one FormatError line."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    _check_depth(data, where)
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as error:      # bad UTF-8, bad JSON, a 5,000-digit int
        raise FormatError(f"{where} is not valid JSON ({error}).") from None


@dataclass
class TensorInfo:
    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass
class Header:
    metadata: dict[str, str]
    tensors: dict[str, TensorInfo]
    data_start: int                       # file offset of the first tensor byte


def read_header(file: BinaryIO, size: int, where: str, max_elements: int) -> Header:
    """Read and check the header of the safetensors file ``file`` of ``size`` bytes.

    Raises:
        FormatError: a length, shape or offset that does not fit the file or the cap, an
            unknown dtype, tensors that do not tile the data exactly, or bad JSON.
    """
    if size < 8:
        raise FormatError(f"{where} has {size} bytes, too few for a safetensors file (its "
                          f"first 8 bytes give the header's length).")
    length = int.from_bytes(file.read(8), "little")
    if length > size - 8:
        raise FormatError(f"{where} declares a {length:,}-byte header, but the file has only "
                          f"{size - 8:,} bytes after the length field.")
    if length > MAX_HEADER_BYTES:
        raise FormatError(f"{where} declares a {length:,}-byte header; at most "
                          f"{MAX_HEADER_BYTES:,} are accepted.")
    raw = file.read(length)
    if not raw.lstrip().startswith(b"{"):
        raise FormatError(f"{where} is not a safetensors file (its header is not a JSON object).")
    document = parse_json(raw, f"the header of {where}")
    if not isinstance(document, dict):
        raise FormatError(f"the header of {where} is not a JSON object.")
    metadata = document.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        raise FormatError(f"the __metadata__ of {where} must map strings to strings.")
    data_size = size - 8 - length
    tensors, total = {}, 0
    for name, entry in document.items():
        info = _tensor_info(name, entry, where, data_size)
        total += math.prod(info.shape)
        if total > max_elements:
            raise FormatError(f"{where} declares more than {max_elements:,} tensor elements in "
                              f"all (at {name!r}); that is more than any cnnlab model holds.")
        tensors[name] = info
    covered = 0
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if info.begin != covered:
            raise FormatError(f"the tensors of {where} do not tile its data: {name!r} starts at "
                              f"byte {info.begin:,}, expected {covered:,}.")
        covered = info.end
    if covered != data_size:
        raise FormatError(f"{where} holds {data_size:,} bytes of tensor data, but its header "
                          f"declares {covered:,} (the file was cut short or extended).")
    return Header(metadata, tensors, 8 + length)


def _tensor_info(name: str, entry: object, where: str, data_size: int) -> TensorInfo:
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise FormatError(f"tensor {name!r} of {where} needs dtype, shape and data_offsets.")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPES:
        raise FormatError(f"tensor {name!r} of {where} has dtype {dtype!r}; cnnlab reads "
                          f"{', '.join(DTYPES)}.")
    if (not isinstance(shape, list) or len(shape) > 8
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise FormatError(f"tensor {name!r} of {where} has shape {shape!r}; expected a list of "
                          f"at most 8 non-negative ints.")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(n) is int for n in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size):
        raise FormatError(f"tensor {name!r} of {where} has data_offsets {offsets!r}, outside "
                          f"the {data_size:,} bytes of data the file holds (was it cut short?).")
    needed = math.prod(shape) * DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != needed:
        raise FormatError(f"tensor {name!r} of {where} declares shape {tuple(shape)} of {dtype} "
                          f"({needed:,} bytes) but data_offsets span "
                          f"{offsets[1] - offsets[0]:,} bytes.")
    return TensorInfo(DTYPES[dtype], tuple(shape), offsets[0], offsets[1])


def read_tensors(file: BinaryIO, header: Header, digest) -> dict[str, np.ndarray]:
    """Read every tensor (checked by :func:`read_header`) in file order, feeding ``digest``
    (a ``hashlib`` object) the data bytes; arrays come back in the machine's byte order."""
    arrays = {}
    file.seek(header.data_start)
    for name, info in sorted(header.tensors.items(), key=lambda item: item[1].begin):
        array = np.empty(info.shape, dtype=info.dtype)
        view = memoryview(array.reshape(-1)).cast("B")
        if file.readinto(view) != info.end - info.begin:
            raise FormatError(f"tensor {name!r} is cut short.")
        digest.update(view)
        arrays[name] = array.astype(info.dtype.newbyteorder("="), copy=False)
    return arrays
