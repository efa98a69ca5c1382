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

The file is untrusted input, so it is streamed, never read whole: the header is read first, the
size it declares is checked against the file's length (uncompressed), against what a gzip file of
that length can hold at most, and against a cap (``max_bytes``, default :data:`MAX_IDX_BYTES`)
before the array is allocated; the values are then decompressed straight into the array, and a
file that goes on past the declared size is refused after reading at most 1 MiB more. An 8 GB
sparse file or a gzip bomb costs no more memory than the cap.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from typing import BinaryIO

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
#: the largest payload ``read_idx`` allocates by default (2 GiB; MNIST's training images: 47 MB)
MAX_IDX_BYTES = 2 << 30
_MAX_DEFLATE_RATIO = 1032          # deflate expands at most ~1032:1 (258-byte matches in 2 bits)
_CHUNK = 1 << 20


def read_idx(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed whatever its name) into a NumPy array.

    Every part of the header is checked against the file: the two zero bytes of the magic number,
    the type code, and that the sizes account for the payload's length exactly. A truncated,
    oversized or foreign file raises ``ValueError`` naming the file and what was wrong. The file
    is streamed (see the module doc): the declared size is checked before allocating.

    Args:
        path: an IDX file such as ``train-images-idx3-ubyte`` or ``t10k-labels-idx1-ubyte.gz``.
            Compression is recognised by the gzip magic bytes, not by the name.
        max_bytes: refuse a file whose header declares more bytes of values than this.

    Returns:
        A writable array in native byte order with the file's dtype (``uint8`` for MNIST) and
        shape (``(N, 28, 28)`` for MNIST images, ``(N,)`` for labels).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a well-formed IDX file, or declares more than ``max_bytes``
            (the message says how).

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "tiny-idx1-ubyte")
        >>> with open(path, "wb") as f:
        ...     _ = f.write(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9]))
        >>> read_idx(path)
        array([7, 8, 9], dtype=uint8)
    """
    return read_idx_file(path, max_bytes)


def read_idx_file(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES,
                  digest=None, source: str | None = None) -> np.ndarray:
    """``read_idx``, also feeding every decompressed byte to ``digest`` (a ``hashlib`` object);
    ``source`` names the file in errors (default: its path)."""
    path = os.fspath(path)
    name = source or path
    if os.path.isdir(path):
        raise IsADirectoryError(f"Expected an IDX file, received the directory {path}.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"IDX file not found: {path}.")
    with open(path, "rb") as raw:
        length = os.fstat(raw.fileno()).st_size
        if raw.read(2) != _GZIP_MAGIC:
            raw.seek(0)
            return read_stream(raw, name, max_bytes, length=length, digest=digest)
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return read_stream(stream, name, max_bytes, digest=digest,
                                   at_most=length * _MAX_DEFLATE_RATIO + 1024)
        except (EOFError, OSError, zlib.error) as error:
            raise ValueError(
                f"{name}: the gzip data is corrupt or truncated ({error}); "
                f"delete the file and fetch it again."
            ) from None


def parse_idx(data: bytes, source: str = "<bytes>", max_bytes: int = MAX_IDX_BYTES
              ) -> np.ndarray:
    """Decode an uncompressed IDX payload held in memory; ``source`` names it in errors."""
    return read_stream(io.BytesIO(data), source, max_bytes, length=len(data))


def read_stream(stream: BinaryIO, source: str, max_bytes: int = MAX_IDX_BYTES, *,
                length: int | None = None, at_most: int | None = None,
                digest=None) -> np.ndarray:
    """Decode the IDX file read from ``stream``, checking the size its header declares first.

    ``length``: the exact length of the (uncompressed) file, when known; ``at_most``: a bound on
    it (a gzip file's length times the largest deflate ratio); ``digest`` is fed every byte.
    """
    magic = _read(stream, 4, digest)
    if len(magic) < 4:
        raise ValueError(
            f"{source} is not an IDX file: it is {len(magic)} bytes long, shorter than the "
            f"4-byte magic number."
        )
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
        raise ValueError(
            f"{source} is not an IDX file: it starts with bytes {magic.hex(' ')}, expected "
            f"00 00, a type code ({', '.join(f'{c:02x}' for c in _IDX_TYPES)}) and the number "
            f"of dimensions."
        )
    dtype, ndim = _IDX_TYPES[magic[2]], magic[3]
    header = 4 + 4 * ndim
    sizes = _read(stream, 4 * ndim, digest)
    if len(sizes) < 4 * ndim:
        raise ValueError(
            f"{source}: the header of a {ndim}-dimensional IDX file needs {header} bytes, "
            f"found {4 + len(sizes):,} (the file is truncated)."
        )
    shape = tuple(int(s) for s in np.frombuffer(sizes, ">u4"))
    count = math.prod(shape)
    payload = count * dtype.itemsize
    expected = header + payload
    if length is not None and length != expected:
        raise _size_error(source, shape, dtype, expected, f"{length:,}")
    if payload > max_bytes:
        raise ValueError(
            f"{source}: the header declares {_describe(shape, dtype)} ({payload:,} bytes), "
            f"more than the limit of {max_bytes:,} bytes; refused before reading it."
        )
    if at_most is not None and expected > at_most:
        raise ValueError(
            f"{source}: the header declares {_describe(shape, dtype)} ({expected:,} bytes), "
            f"more than a gzip file of its length can hold (at most {at_most:,}): the file is "
            f"truncated or not IDX."
        )
    array = np.empty(count, dtype)
    buffer = memoryview(array.view(np.uint8))
    got = 0
    while got < payload:
        n = stream.readinto(buffer[got:got + _CHUNK])
        if not n:
            raise _size_error(source, shape, dtype, expected, f"{header + got:,}")
        if digest is not None:
            digest.update(buffer[got:got + n])
        got += n
    extra = len(_read(stream, _CHUNK + 1, digest))
    if extra:
        found = f"{expected + extra:,}" if extra <= _CHUNK else f"more than {expected + _CHUNK:,}"
        raise _size_error(source, shape, dtype, expected, found)
    if not dtype.isnative:                      # big-endian to native order, in place
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array.reshape(shape)


def _read(stream: BinaryIO, n: int, digest=None) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream)."""
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    data = b"".join(parts)
    if digest is not None:
        digest.update(data)
    return data


def _size_error(source: str, shape: tuple[int, ...], dtype: np.dtype, expected: int,
                found: str) -> ValueError:
    longer = found.startswith("more") or int(found.replace(",", "")) > expected
    what = "longer than its header says" if longer else "truncated"
    return ValueError(f"{source}: expected {expected:,} bytes for {_describe(shape, dtype)}, "
                      f"found {found} (the file is {what}).")


def _describe(shape: tuple[int, ...], dtype: np.dtype) -> str:
    """``(10000, 28, 28), uint8 -> "10,000×28×28 uint8 values"``."""
    sizes = fmt_size([f"{s:,}" for s in shape]) if shape else "a scalar of"
    return f"{sizes} {dtype.newbyteorder('=').name} values"
