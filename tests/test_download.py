"""mnist / fashion-mnist: the lookup order, checksums of local files, and downloads served by a
local HTTP server on 127.0.0.1 (success, checksum mismatch, HTTP 404, corrupt gzip, no server).

Every test runs with $HOME, $CNNLAB_DATA, $CNNLAB_MIRROR and /usr/share/datasets redirected into
a temporary folder, so nothing reaches the network or the real caches.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import logging
import re
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import download, load_dataset
from cnnlab.data.download import FILES, SOURCES

# a mirror address where nothing listens (port 9, "discard", is closed on test machines)
NO_SERVER = "http://127.0.0.1:9/"


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_payloads(marker: int) -> dict[str, bytes]:
    """Small stand-ins for the four files: 6 training and 3 test images; label 0 = marker."""
    rng = np.random.default_rng(marker)
    payloads = {}
    for split, n in (("train", 6), ("t10k", 3)):
        labels = np.arange(n) % 10
        labels[0] = marker
        payloads[f"{split}-images-idx3-ubyte"] = idx_bytes(rng.integers(0, 256, (n, 28, 28)))
        payloads[f"{split}-labels-idx1-ubyte"] = idx_bytes(labels)
    return payloads


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def put(directory: Path, payloads: dict[str, bytes], gz: bool = True,
        only: tuple[str, ...] = FILES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for file in only:
        data = payloads[file]
        (directory / (f"{file}.gz" if gz else file)).write_bytes(gzip.compress(data) if gz
                                                                  else data)
    return directory


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Private HOME, no $CNNLAB_DATA, a dead mirror, and a temporary /usr/share/datasets."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setenv("CNNLAB_MIRROR", NO_SERVER)
    monkeypatch.setattr(download, "SYSTEM_DATA_DIR", tmp_path / "system")
    monkeypatch.setattr(download, "TIMEOUT_S", 5.0)
    return tmp_path


@pytest.fixture
def official(monkeypatch):
    """Make the marker-7 fake files the 'official' mnist: their MD5s replace the real ones."""
    payloads = fake_payloads(7)
    for file in FILES:
        monkeypatch.setitem(SOURCES["mnist"].md5, file, md5(payloads[file]))
    return payloads


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/served; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def marker_of(name: str = "mnist", **kwargs) -> int:
    train, test = load_dataset(name, **kwargs)
    assert test.labels[0] == train.labels[0]
    return int(train.labels[0])


# ---------------------------------------------------------------------------- the lookup order


def test_lookup_order_cnnlab_data_then_cache_then_system(isolated, monkeypatch):
    payloads = {}
    for marker in (1, 2, 3):
        payloads[marker] = fake_payloads(marker)
    data = put(isolated / "mine" / "mnist", payloads[1], gz=False)
    cache = put(isolated / "home" / ".cache" / "cnnlab" / "mnist", payloads[2])
    system = put(isolated / "system" / "mnist", payloads[3])
    for file in FILES:           # no checksum: the three sets differ, each must be readable
        monkeypatch.setitem(SOURCES["mnist"].md5, file, None)
    monkeypatch.setenv("CNNLAB_DATA", str(isolated / "mine"))
    assert download.search_dirs("mnist") == [data, cache, system]
    assert marker_of() == 1
    monkeypatch.delenv("CNNLAB_DATA")
    assert marker_of() == 2
    for f in cache.iterdir():
        f.unlink()
    assert marker_of() == 3


def test_an_incomplete_folder_is_skipped(isolated, official, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(isolated / "mine"))
    put(isolated / "mine" / "mnist", fake_payloads(1), only=FILES[:3])     # one file missing
    put(isolated / "system" / "mnist", official, gz=False)
    assert marker_of() == 7


def test_found_files_are_checked_against_the_checksums(isolated, official):
    put(isolated / "system" / "mnist", official)
    train, test = load_dataset("mnist")
    assert (len(train), len(test)) == (6, 3) and train.classes[:2] == ["0", "1"]
    assert train.images.dtype == np.float32 and train.images.shape == (6, 1, 28, 28)
    put(isolated / "system" / "mnist", fake_payloads(1), only=FILES[:1])  # a different file
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz is not the official "
                                         r"mnist file train-images-idx3-ubyte: the MD5"):
        load_dataset("mnist")


def test_a_label_file_that_is_not_the_official_one_is_refused(isolated, official):
    put(isolated / "system" / "mnist", official)
    put(isolated / "system" / "mnist", fake_payloads(1), only=("train-labels-idx1-ubyte",))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz is not the official "
                                         r"mnist file train-labels-idx1-ubyte: the MD5"):
        load_dataset("mnist")


def test_root_is_searched_alone(isolated, official):
    put(isolated / "system" / "mnist", fake_payloads(3))
    mine = put(isolated / "here", official, gz=False)
    assert marker_of(root=mine) == 7


# ---------------------------------------------------------------------------- downloads


def serve(folder: Path, payloads: dict[str, bytes], name: str = "mnist") -> None:
    put(folder / name, payloads)


def test_download_from_the_local_server(isolated, official, server, monkeypatch):
    folder, url = server
    serve(folder, official)
    monkeypatch.setenv("CNNLAB_MIRROR", url)
    assert marker_of() == 7
    cache = isolated / "home" / ".cache" / "cnnlab" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{f}.gz" for f in FILES)
    for p in (folder / "mnist").iterdir():
        p.unlink()                                  # the server has nothing any more...
    assert marker_of() == 7                         # ...and the cache answers


def test_locate_downloads_by_default_through_a_part_file_beside_the_target(isolated, official,
                                                                           server, monkeypatch,
                                                                           caplog):
    folder, url = server
    serve(folder, official)
    parts = []
    fetch = download._fetch

    def recording(url, out, tmp, *args):
        parts.append(tmp)
        return fetch(url, out, tmp, *args)

    monkeypatch.setattr(download, "_fetch", recording)
    caplog.set_level(logging.INFO, logger=download._logger.name)
    paths = download.locate("mnist", mirror=url)
    assert f"downloading {url}/mnist/train-images-idx3-ubyte.gz" in caplog.messages
    cache = isolated / "home" / ".cache" / "cnnlab" / "mnist"
    assert paths == {file: cache / f"{file}.gz" for file in FILES}
    # each download went to a hidden .part file in the cache folder (one rename from done)
    for file, part in zip(FILES, parts, strict=True):
        assert part.parent == cache and part.name.startswith(f".{file}.")
        assert part.suffix == ".part" and not part.exists()


def test_download_keeps_files_already_in_the_cache(isolated, official, server):
    folder, url = server
    cache = put(isolated / "home" / ".cache" / "cnnlab" / "mnist", official, only=FILES[:2])
    serve(folder, official)
    for file in FILES[:2]:
        (folder / "mnist" / f"{file}.gz").unlink()
    assert marker_of(mirror=url + "/") == 7
    assert len(list(cache.iterdir())) == 4


def test_download_into_root(isolated, official, server):
    folder, url = server
    serve(folder, official)
    target = isolated / "elsewhere"
    assert marker_of(root=target, mirror=url) == 7
    assert len(list(target.iterdir())) == 4
    assert not (isolated / "home" / ".cache").exists()


def assert_nothing_left(isolated: Path) -> None:
    cache = isolated / "home" / ".cache" / "cnnlab" / "mnist"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_checksum_mismatch_leaves_nothing_behind(isolated, official, server):
    folder, url = server
    serve(folder, fake_payloads(8))                 # not the official files
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mnist", mirror=url)
    message = str(info.value)
    assert f"{url}/mnist/train-images-idx3-ubyte.gz: checksum mismatch" in message
    assert message.startswith("The mnist dataset is not on this machine (looked in ")
    assert "could not be downloaded" in message
    assert_nothing_left(isolated)


def test_http_404_names_the_url(isolated, official, server):
    folder, url = server
    with pytest.raises(FileNotFoundError, match=rf"{url}/mnist/train-images-idx3-ubyte.gz: "
                                                r"HTTP 404"):
        load_dataset("mnist", mirror=url)
    assert_nothing_left(isolated)


def test_truncated_gzip_download_leaves_nothing_behind(isolated, official, server):
    folder, url = server
    serve(folder, official)
    path = folder / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.gz: the download is "
                                                r"not valid gzip data \(truncated or corrupt\)"):
        load_dataset("mnist", mirror=url)
    assert_nothing_left(isolated)


def test_zlib_data_under_a_gz_name_is_not_gzip(isolated, official, server):
    folder, url = server
    serve(folder, official)
    for file in FILES:                      # the same bytes, deflated with a zlib header
        (folder / "mnist" / f"{file}.gz").write_bytes(zlib.compress(official[file]))
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.gz: the download is "
                                                r"not valid gzip data"):
        load_dataset("mnist", mirror=url)
    assert_nothing_left(isolated)


def test_a_deadline_already_passed_downloads_nothing(isolated, official, server, monkeypatch):
    folder, url = server
    serve(folder, official)
    monkeypatch.setattr(download, "DEADLINE_S", 0.0)
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.gz: the download "
                                                r"deadline of 0 s had passed"):
        load_dataset("mnist", mirror=url)
    assert_nothing_left(isolated)


def test_without_a_checksum_the_idx_structure_is_verified(isolated, server, monkeypatch):
    folder, url = server
    payloads = fake_payloads(5)
    payloads["t10k-labels-idx1-ubyte"] = payloads["t10k-labels-idx1-ubyte"][:-1]   # one short
    serve(folder, payloads)
    for file in FILES:
        monkeypatch.setitem(SOURCES["mnist"].md5, file, None)
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte.gz: "
                                                r"t10k-labels-idx1-ubyte: expected 11 bytes"):
        load_dataset("mnist", mirror=url)
    cache = isolated / "home" / ".cache" / "cnnlab" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{f}.gz" for f in FILES[:3])


def test_no_server_and_no_files_explains_how_to_get_the_data(isolated):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fashion-mnist")
    message = str(info.value)
    assert f"{NO_SERVER}fashion-mnist/train-images-idx3-ubyte.gz" in message
    assert "apt-get install dataset-fashion-mnist" in message and "$CNNLAB_DATA" in message
    # the reason itself, not urllib's "<urlopen error ...>" wrapping of it
    assert re.search(r"train-images-idx3-ubyte\.gz: \[Errno \d+\] Connection refused", message)
    assert str(isolated / "system" / "fashion-mnist") in message
    assert_nothing_left(isolated)


def test_download_false_fails_at_once(isolated):
    with pytest.raises(FileNotFoundError, match=r"The mnist dataset is not on this machine "
                                                r"\(looked in .*\)\. Put its four IDX files "
                                                r"\(train-images-idx3-ubyte\[\.gz\], "
                                                r"train-labels-idx1-ubyte\[\.gz\], "):
        load_dataset("MNIST", download=False)


def test_fashion_mnist_classes(isolated, monkeypatch):
    payloads = fake_payloads(4)
    for file in FILES:
        monkeypatch.setitem(SOURCES["fashion-mnist"].md5, file, md5(payloads[file]))
    put(isolated / "system" / "fashion-mnist", payloads)
    train, _ = load_dataset("fashion_mnist")
    assert train.classes[0] == "T-shirt/top" and train.classes[-1] == "Ankle boot"
    assert train.name == "fashion-mnist" and len(train.classes) == 10


# ---------------------------------------------------------------------------- the table


def test_sources_table_is_complete_and_matches_the_embedded_files():
    for name, source in SOURCES.items():
        assert set(source.md5) == set(FILES) == set(source.sizes), name
        assert all(len(v) == 32 and int(v, 16) >= 0 for v in source.md5.values()), name
        assert source.mirrors and all(m.startswith(("https://", "http://")) and m.endswith("/")
                                      for m in source.mirrors)
    from importlib import resources

    embedded = resources.files("cnnlab.data") / "_embedded"
    for file in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        payload = gzip.decompress((embedded / f"{file}.gz").read_bytes())
        assert md5(payload) == SOURCES["mnist"].md5[file]
        assert len(payload) == SOURCES["mnist"].sizes[file]
