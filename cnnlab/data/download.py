"""Finding MNIST and Fashion-MNIST on this machine, or downloading them with verification.

The four IDX files of a dataset (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or ``.gz``) are looked up in

1. ``$CNNLAB_DATA/<name>`` (when the variable is set),
2. ``~/.cache/cnnlab/<name>`` (where downloads go),
3. ``/usr/share/datasets/<name>`` (Debian/Ubuntu: ``apt-get install dataset-fashion-mnist``),

and the first folder that holds all four is used. Otherwise the missing files are downloaded
from the mirrors of ``SOURCES`` into ``~/.cache/cnnlab/<name>``; ``$CNNLAB_MIRROR`` (or the
``mirror`` argument) replaces the mirrors with one base URL that serves ``<name>/<file>.gz``, the
layout of the cache folder, so a shared cache can be served with ``python -m http.server``.

Every file, found or downloaded, is checked against the MD5 of its *decompressed* payload:
Debian recompresses the ``.gz`` files, so the checksums of the archives differ between copies
while the IDX payload is the same. The MNIST training-set values are the ones published with
the dataset's mirrors; the test-set values and all Fashion-MNIST values were also measured here
on verified copies. A download is written to a temporary file in the target folder, verified,
then renamed into place (``os.replace``), so a failed or corrupt download leaves nothing behind.

A server is untrusted: the whole lookup has a deadline (``DEADLINE_S``, checked between reads,
so a server that sends one byte every few seconds is cut off); a download is cut off once it is
larger than the known file could be compressed (``sizes``), and is decompressed and checksummed
while it arrives, so a gzip bomb stops at the known decompressed size instead of filling memory
or disk. Local files are streamed into the array the same way (:func:`cnnlab.data.idx.read_stream`).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .idx import MAX_IDX_BYTES, read_idx_file, read_stream

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
TIMEOUT_S = 60.0          # one network read may wait this long
DEADLINE_S = 1800.0       # the whole download of a dataset (four files) ends by then

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from and what its files must contain."""

    mirrors: tuple[str, ...]          # base URLs, tried in order; each serves <file>.gz
    md5: dict[str, str | None]        # file -> MD5 of the decompressed IDX payload (None:
                                      # unknown, check the IDX structure only)
    sizes: dict[str, int]             # file -> length of the decompressed payload in bytes
    how_to_get: str = ""              # one extra hint for the "not found" message


SOURCES: dict[str, Source] = {
    "mnist": Source(
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        md5={"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
             "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
             "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
             "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"},
        sizes={"train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
               "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008},
    ),
    "fashion-mnist": Source(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
                 "data/fashion/"),
        md5={"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
             "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
             "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
             "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"},
        sizes={"train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
               "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008},
        how_to_get="on Debian or Ubuntu, `apt-get install dataset-fashion-mnist` puts them in "
                   "/usr/share/datasets/fashion-mnist",
    ),
}


def search_dirs(name: str) -> list[Path]:
    """The folders searched for dataset ``name``, in order (see the module docstring)."""
    dirs = []
    if os.environ.get("CNNLAB_DATA"):
        dirs.append(Path(os.environ["CNNLAB_DATA"]).expanduser() / name)
    dirs.append(cache_dir(name))
    dirs.append(SYSTEM_DATA_DIR / name)
    return dirs


def cache_dir(name: str) -> Path:
    """``~/.cache/cnnlab/<name>``: where downloads go."""
    return Path.home() / ".cache" / "cnnlab" / name


def locate(name: str, root: str | os.PathLike | None = None, *, download: bool = True,
           mirror: str | None = None) -> dict[str, Path]:
    """The paths of the four IDX files of ``name``, found on this machine or downloaded.

    Args:
        name: a key of ``SOURCES`` (``"mnist"`` or ``"fashion-mnist"``).
        root: look only in this folder, and download into it, instead of the search order.
        download: fetch missing files (when ``False``, missing files raise at once).
        mirror: a base URL serving ``<name>/<file>.gz``; default ``$CNNLAB_MIRROR``, else the
            dataset's own mirrors.

    Raises:
        FileNotFoundError: the files are in none of the folders and could not be downloaded;
            the message lists where it looked, every URL tried and why it failed, and how to get
            the files.
    """
    source = SOURCES[name]
    dirs = [Path(root).expanduser()] if root is not None else search_dirs(name)
    for directory in dirs:
        found = {file: _find(directory, file) for file in FILES}
        if all(found.values()):
            return found
    target = dirs[0] if root is not None else cache_dir(name)
    if not download:
        raise FileNotFoundError(_not_found(name, dirs, source, []))
    mirror = mirror or os.environ.get("CNNLAB_MIRROR") or None
    bases = (f"{mirror.rstrip('/')}/{name}/",) if mirror else source.mirrors
    paths, failures = {}, []
    deadline = time.monotonic() + DEADLINE_S
    for file in FILES:
        paths[file] = (_find(target, file)
                       or _download(file, bases, target, source, failures, deadline))
        if paths[file] is None:
            raise FileNotFoundError(_not_found(name, dirs, source, failures))
    return paths


def read_verified(path: Path, name: str, file: str) -> np.ndarray:
    """Read one IDX file of dataset ``name``, streamed, and check its payload's MD5."""
    digest = hashlib.md5(usedforsecurity=False)
    array = read_idx_file(path, _payload_cap(SOURCES[name], file), digest)
    expected = SOURCES[name].md5.get(file)
    if expected is not None and digest.hexdigest() != expected:
        raise ValueError(
            f"{path} is not the official {name} file {file}: the MD5 of its decompressed "
            f"content is {digest.hexdigest()}, expected {expected} ({array.nbytes:,} bytes of "
            f"values, expected {SOURCES[name].sizes.get(file, 0):,} with the header); delete "
            f"it and load the dataset again."
        )
    return array


def _payload_cap(source: Source, file: str) -> int:
    """The most bytes of values a file may declare: its known size, else the general cap."""
    return source.sizes.get(file, MAX_IDX_BYTES)


def _find(directory: Path, file: str) -> Path | None:
    for candidate in (directory / file, directory / f"{file}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download(file: str, bases: tuple[str, ...], target: Path, source: Source,
              failures: list[str], deadline: float) -> Path | None:
    """Try each mirror for ``file``; the verified ``.gz`` path, or ``None`` (see failures)."""
    import urllib.error

    for base in bases:
        url = f"{base}{file}.gz"
        try:
            target.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{file}.", suffix=".part")
        except OSError as error:
            failures.append(f"cannot write in the folder {target} ({error.strerror or error})")
            return None
        _logger.info("downloading %s", url)
        try:
            with os.fdopen(fd, "wb") as out:
                problem = _fetch(url, out, Path(tmp), file, source, deadline)
            if problem is None:
                final = target / f"{file}.gz"
                os.replace(tmp, final)
                return final
            failures.append(f"{url}: {problem}")
        except urllib.error.HTTPError as error:
            failures.append(f"{url}: HTTP {error.code} {error.reason}")
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            failures.append(f"{url}: {reason}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return None


def _fetch(url: str, out, tmp: Path, file: str, source: Source, deadline: float
           ) -> str | None:
    """Stream ``url`` into ``out`` (the file ``tmp``), decompressing and checksumming as it
    arrives; what is wrong with it, or ``None`` when it is the expected file (written in full)."""
    import urllib.request

    payload_cap = _payload_cap(source, file) + 16      # the known length (+ a header's slack)
    # deflate's worst case: stored blocks, 5 bytes per 64 KiB, plus gzip's header and trailer
    download_cap = payload_cap + payload_cap // 1000 + (1 << 16)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return f"the download deadline of {DEADLINE_S:g} s had passed"
    unpack = zlib.decompressobj(wbits=31)
    digest = hashlib.md5(usedforsecurity=False)
    received = unpacked = 0
    with urllib.request.urlopen(url, timeout=min(TIMEOUT_S, remaining)) as response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > download_cap:
            return (f"the server announces {int(declared):,} bytes, more than the file can be "
                    f"({download_cap:,}); not downloaded")
        read = getattr(response, "read1", response.read)     # read1: what has arrived
        while True:
            if time.monotonic() > deadline:
                return (f"too slow: {received:,} bytes within the download deadline of "
                        f"{DEADLINE_S:g} s; stopped")
            chunk = read(1 << 20)
            if not chunk:
                break
            received += len(chunk)
            if received > download_cap:
                return (f"the download goes on past {download_cap:,} bytes, more than the file "
                        f"can be; stopped")
            out.write(chunk)
            try:
                while chunk:              # inflate at most one byte past the known size
                    data = unpack.decompress(chunk, min(1 << 20, payload_cap - unpacked + 1))
                    digest.update(data)
                    unpacked += len(data)
                    if unpacked > payload_cap:
                        return (f"it decompresses to more than {payload_cap:,} bytes, the size "
                                f"of the file; stopped (not the expected file)")
                    chunk = unpack.unconsumed_tail
                    if unpack.eof and unpack.unused_data:      # a further gzip member
                        chunk, unpack = unpack.unused_data, zlib.decompressobj(wbits=31)
            except zlib.error:
                return "the download is not valid gzip data (truncated or corrupt)"
    if not unpack.eof:
        return "the download is not valid gzip data (truncated or corrupt)"
    out.flush()
    expected = source.md5.get(file)
    if expected is not None:
        actual = digest.hexdigest()
        if actual != expected:
            return (f"checksum mismatch (MD5 of the decompressed file {actual}, expected "
                    f"{expected})")
        return None
    try:                           # no published checksum: at least the IDX structure
        with open(tmp, "rb") as raw, gzip.GzipFile(fileobj=raw) as stream:
            read_stream(stream, file, _payload_cap(source, file), length=unpacked)
    except (ValueError, OSError, EOFError) as error:
        return str(error)
    return None


def _not_found(name: str, dirs: list[Path], source: Source, failures: list[str]) -> str:
    looked = ", ".join(str(d) for d in dirs)
    files = ", ".join(f"{f}[.gz]" for f in FILES)
    message = f"The {name} dataset is not on this machine (looked in {looked})"
    if failures:
        message += " and could not be downloaded: " + "; ".join(failures)
    hint = f"; {source.how_to_get}" if source.how_to_get else ""
    return (f"{message}. Put its four IDX files ({files}) in one of those folders, or set "
            f"$CNNLAB_DATA to a folder holding {name}/ with them{hint}.")
