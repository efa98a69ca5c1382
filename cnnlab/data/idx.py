"""The IDX file format of MNIST and Fashion-MNIST: ``read_idx`` for raw or gzip-compressed files.

An IDX file is a header and a payload, all big-endian::

    bytes 0-1    0x00 0x00        magic: two zero bytes
    byte  2      type code        0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                  0x0D float32, 0x0E float64
    byte  3      ndim             the number of dimensions
    4 * ndim     sizes            one unsigned 32-bit integer per dimension
    the rest     the values       prod(sizes) values of the type, in C (row-major) order

The file's length must be exactly ``4 + 4 * ndim + prod(sizes) * itemsize``; anything else means
a truncated download or a file that is not IDX at all, and is reported as such.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

from .._validate import fmt_size

# IDX type code -> the big-endian dtype of the values
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed whatever its name) into a NumPy array.

    Every part of the header is checked against the file: the two zero bytes of the magic number,
    the type code, and that the sizes account for the payload's length exactly. A truncated,
    oversized or foreign file raises ``ValueError`` naming the file and what was wrong.

    Args:
        path: an IDX file such as ``train-images-idx3-ubyte`` or ``t10k-labels-idx1-ubyte.gz``.
            Compression is recognised by the gzip magic bytes, not by the name.

    Returns:
        A writable array in native byte order with the file's dtype (``uint8`` for MNIST) and
        shape (``(N, 28, 28)`` for MNIST images, ``(N,)`` for labels).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a well-formed IDX file (the message says how).

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "tiny-idx1-ubyte")
        >>> with open(path, "wb") as f:
        ...     _ = f.write(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9]))
        >>> read_idx(path)
        array([7, 8, 9], dtype=uint8)
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"Expected an IDX file, received the directory {path}.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"IDX file not found: {path}.")
    with open(path, "rb") as f:
        data = f.read()
    return parse_idx(decompress(data, path), path)


def decompress(data: bytes, source: str) -> bytes:
    """The IDX payload of ``data``: gunzipped when it starts with the gzip magic bytes."""
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as error:
        raise ValueError(
            f"{source}: the gzip data is corrupt or truncated ({error}); "
            f"delete the file and fetch it again."
        ) from None


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode an uncompressed IDX payload; ``source`` names it in error messages."""
    if len(data) < 4:
        raise ValueError(
            f"{source} is not an IDX file: it is {len(data)} bytes long, shorter than the "
            f"4-byte magic number."
        )
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(
            f"{source} is not an IDX file: it starts with bytes {data[:4].hex(' ')}, expected "
            f"00 00, a type code ({', '.join(f'{c:02x}' for c in _IDX_TYPES)}) and the number "
            f"of dimensions."
        )
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{source}: the header of a {ndim}-dimensional IDX file needs {header} bytes, "
            f"found {len(data):,} (the file is truncated)."
        )
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(
            f"{source}: expected {expected:,} bytes for {_describe(shape, dtype)}, "
            f"found {len(data):,} (the file is {what})."
        )
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))    # native order, and a writable copy


def _describe(shape: tuple[int, ...], dtype: np.dtype) -> str:
    """``(10000, 28, 28), uint8 -> "10,000×28×28 uint8 values"``."""
    sizes = fmt_size([f"{s:,}" for s in shape]) if shape else "a scalar of"
    return f"{sizes} {dtype.newbyteorder('=').name} values"
