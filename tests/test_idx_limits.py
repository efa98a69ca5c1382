"""Untrusted data files and servers: IDX headers checked against the file and a cap before any
allocation (sparse multi-GB files, gzip bombs), and downloads with a deadline, size caps and
streaming decompression (a slow server, an endless one, a bomb), served from 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import download, load_dataset, read_idx
from cnnlab.data.download import FILES, SOURCES
from cnnlab.data.idx import MAX_IDX_BYTES, parse_idx, read_idx_file


def header(shape: tuple[int, ...], code: int = 0x08) -> bytes:
    return struct.pack(">BBBB", 0, 0, code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)


def idx_bytes(array: np.ndarray) -> bytes:
    return header(array.shape) + array.astype(np.uint8).tobytes()


def peak_memory(function) -> int:
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# ---------------------------------------------------------------------------- the header

def test_a_nonzero_first_magic_byte_is_refused(tmp_path):
    # bytes 1-3 are valid (00, uint8, 1 dimension): only byte 0 is wrong
    path = tmp_path / "x"
    path.write_bytes(bytes([0x01, 0, 0x08, 1, 0, 0, 0, 2, 5, 6]))
    with pytest.raises(ValueError, match=r"is not an IDX file: it starts with bytes 01 00 08 01"):
        read_idx(path)
    path.write_bytes(bytes([0x80, 0, 0x08, 1, 0, 0, 0, 2, 5, 6]))
    with pytest.raises(ValueError, match="bytes 80 00 08 01"):
        read_idx(path)


def test_an_unknown_type_code_is_refused_with_the_known_ones_listed(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 5]))           # 0x0a is no IDX type
    with pytest.raises(ValueError, match=r"x is not an IDX file: it starts with bytes 00 00 0a 01, "
                                         r"expected 00 00, a type code \(08, 09, 0b, 0c, 0d, 0e\) "
                                         r"and the number of dimensions\.$"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", [(0,), (0, 28, 28), (5, 0)])
def test_an_empty_array_is_read(tmp_path, gz, shape):
    data = header(shape)
    path = tmp_path / "empty"
    path.write_bytes(gzip.compress(data) if gz else data)
    array = read_idx(path)
    assert array.shape == shape and array.dtype == np.uint8 and array.size == 0
    path.write_bytes(data + b"\x07")                     # one value too many
    with pytest.raises(ValueError, match=rf"expected {len(data)} bytes .* found {len(data) + 1}"):
        read_idx(path)


def test_int32_values_come_back_in_native_order_and_feed_the_digest(tmp_path):
    values = np.array([[1, -2, 2 ** 31 - 1]], np.int32)
    data = header(values.shape, 0x0C) + values.astype(">i4").tobytes()
    (tmp_path / "v.gz").write_bytes(gzip.compress(data))
    digest = hashlib.md5()
    array = read_idx_file(tmp_path / "v.gz", digest=digest)
    np.testing.assert_array_equal(array, values)
    assert array.dtype.isnative and array.flags.writeable
    assert digest.hexdigest() == hashlib.md5(data).hexdigest()


def test_a_zero_dimensional_file_holds_one_value(tmp_path):
    path = tmp_path / "scalar"
    path.write_bytes(header(()) + bytes([7]))
    array = read_idx(path)
    assert array.shape == () and array == 7
    path.write_bytes(header(()))                         # the value is missing
    with pytest.raises(ValueError, match=r"scalar: expected 5 bytes for a scalar of uint8 values, "
                                         r"found 4 \(the file is truncated\)\.$"):
        read_idx(path)


def test_int32_values_are_swapped_in_place_not_copied(tmp_path):
    values = np.arange(2_000_000, dtype=np.int32)                   # 8 MB
    (tmp_path / "v").write_bytes(header(values.shape, 0x0C) + values.astype(">i4").tobytes())
    holder = {}
    peak = peak_memory(lambda: holder.setdefault("array", read_idx(tmp_path / "v")))
    np.testing.assert_array_equal(holder["array"], values)
    assert peak < 12_000_000                                        # one array, not two


def test_bytes_in_memory_are_checked_against_their_length_first():
    # a header declaring 8 GB in front of no values: truncated, not "over the limit"
    with pytest.raises(ValueError, match=r"labels: expected 8,000,000,012 bytes for "
                                         r"100,000×80,000 uint8 values, found 12 \(the file is "
                                         r"truncated\)\.$"):
        parse_idx(header((100_000, 80_000)), "labels")


def test_an_uncompressed_file_feeds_the_digest_too(tmp_path):
    data = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
    (tmp_path / "v").write_bytes(data)
    digest = hashlib.md5()
    read_idx_file(tmp_path / "v", digest=digest)
    assert digest.hexdigest() == hashlib.md5(data).hexdigest()


def test_a_gzip_stream_shorter_than_its_header_is_named_truncated(tmp_path):
    data = header((2, 50)) + bytes(60)                   # declares 100 values, holds 60
    (tmp_path / "short.gz").write_bytes(gzip.compress(data))
    with pytest.raises(ValueError, match=r"short.gz: expected 112 bytes for 2×50 uint8 values, "
                                         r"found 72 \(the file is truncated\)\.$"):
        read_idx(tmp_path / "short.gz")


# ---------------------------------------------------------------------------- sizes and caps

def test_a_sparse_8_gb_file_is_refused_by_the_cap_without_reading_it(tmp_path):
    path = tmp_path / "huge-idx2-ubyte"
    shape = (100_000, 80_000)                                  # 8,000,000,000 bytes of values
    with open(path, "wb") as f:
        f.write(header(shape))
        f.truncate(len(header(shape)) + 8_000_000_000)         # sparse: no disk used
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        read_idx(path)
    assert time.perf_counter() - start < 2
    message = str(info.value)
    assert "declares 100,000×80,000 uint8 values (8,000,000,000 bytes)" in message
    assert f"more than the limit of {MAX_IDX_BYTES:,} bytes" in message
    # a header that does not match the file's length is refused before reading, too
    with open(path, "wb") as f:
        f.write(header((10, 10)))
        f.truncate(8_000_000_012)
    with pytest.raises(ValueError, match=r"expected 112 bytes for 10×10 uint8 values, found "
                                         r"8,000,000,012 \(the file is longer"):
        read_idx(path)
    assert time.perf_counter() - start < 4


def test_max_bytes_is_the_caller_s_cap(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(np.zeros((10, 10), np.uint8)))
    assert read_idx(path, max_bytes=100).shape == (10, 10)
    with pytest.raises(ValueError, match="100 bytes\\), more than the limit of 99 bytes"):
        read_idx(path, max_bytes=99)


def test_a_gzip_bomb_stops_at_the_declared_size(tmp_path):
    # declares 100 values, then 50 MB of zeros compressed to ~50 KB
    bomb = gzip.compress(header((100,)) + bytes(50_000_000), compresslevel=9)
    path = tmp_path / "bomb.gz"
    path.write_bytes(bomb)
    holder = {}

    def read():
        with pytest.raises(ValueError) as info:
            read_idx(path)
        holder["message"] = str(info.value)

    start = time.perf_counter()
    peak = peak_memory(read)
    assert time.perf_counter() - start < 5
    assert peak < 10_000_000                                  # not 50 MB
    assert "found more than 1,048,684 (the file is longer than its header says)" in \
        holder["message"]


def test_a_gzip_file_cannot_declare_more_than_it_can_hold(tmp_path):
    path = tmp_path / "liar.gz"
    path.write_bytes(gzip.compress(header((60_000, 28, 28)) + bytes(100)))
    with pytest.raises(ValueError, match=r"liar.gz: the header declares 60,000×28×28 uint8 "
                                         r"values \(47,040,016 bytes\), more than a gzip file "
                                         r"of its length can hold"):
        read_idx(path)


def test_a_cached_file_larger_than_the_dataset_s_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setattr(download, "SYSTEM_DATA_DIR", tmp_path / "system")
    folder = tmp_path / "system" / "mnist"
    folder.mkdir(parents=True)
    for file in FILES:
        monkeypatch.setitem(SOURCES["mnist"].md5, file, None)
        n = 2 if "labels" in file else 1
        shape = (n,) if "labels" in file else (n, 28, 28)
        (folder / f"{file}.gz").write_bytes(gzip.compress(header(shape) + bytes(
            int(np.prod(shape)))))
    # the training images declare 70,000 images: more than MNIST's 47,040,016 bytes
    (folder / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(header((70_000, 28, 28)) + bytes(1000)))       # refused from the header
    with pytest.raises(ValueError, match="more than the limit of 47,040,016 bytes"):
        load_dataset("mnist")


# ---------------------------------------------------------------------------- downloads

class Misbehaving(http.server.BaseHTTPRequestHandler):
    """``/slow/...``: one byte every 0.2 s; ``/endless/...``: zeros without end; ``/liar/...``:
    announces a huge Content-Length; ``/bomb/...``: a gzip bomb; ``/stall/...``: headers, then
    nothing for 5 s."""

    bomb = b""

    def log_message(self, *args):
        pass

    def do_GET(self):
        kind = self.path.strip("/").split("/")[0]
        self.send_response(200)
        if kind == "liar":
            self.send_header("Content-Length", str(10 ** 12))
        if kind == "bomb":
            self.send_header("Content-Length", str(len(self.bomb)))
        self.end_headers()
        try:
            if kind == "slow":                      # a valid gzip file, one byte at a time
                for byte in gzip.compress(np.random.default_rng(0).bytes(1000))[:100]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            elif kind == "endless":                 # valid gzip members, one after another
                member = gzip.compress(np.random.default_rng(0).bytes(1 << 16), compresslevel=0)
                for _ in range(10_000):
                    self.wfile.write(member)
            elif kind == "bomb":
                self.wfile.write(self.bomb)
            elif kind == "stall":                   # headers, then silence
                time.sleep(5)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def misbehaving(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setattr(download, "SYSTEM_DATA_DIR", tmp_path / "system")
    monkeypatch.setattr(download, "TIMEOUT_S", 2.0)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def cache_is_empty(tmp_path: Path) -> bool:
    cache = tmp_path / "home" / ".cache" / "cnnlab" / "mnist"
    return not cache.exists() or list(cache.iterdir()) == []


def test_a_server_sending_a_byte_every_0_2_s_meets_the_deadline(misbehaving, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr(download, "DEADLINE_S", 1.5)
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=r"slow/mnist/train-images-idx3-ubyte.gz: too "
                                                r"slow: \d bytes within the download deadline "
                                                r"of 1.5 s"):
        load_dataset("mnist", mirror=f"{misbehaving}/slow")
    assert time.perf_counter() - start < 4
    assert cache_is_empty(tmp_path)


def test_a_server_that_stalls_times_out_before_the_deadline(misbehaving, tmp_path):
    start = time.perf_counter()                   # the fixture's timeout: 2 s per read
    with pytest.raises(FileNotFoundError, match=r"stall/mnist/train-images-idx3-ubyte.gz: "
                                                r"timed out"):
        load_dataset("mnist", mirror=f"{misbehaving}/stall")
    assert time.perf_counter() - start < 4.5
    assert cache_is_empty(tmp_path)


def test_an_endless_server_is_cut_off_at_the_known_size(misbehaving, tmp_path, monkeypatch):
    monkeypatch.setitem(SOURCES["mnist"].sizes, "train-images-idx3-ubyte", 100_000)
    with pytest.raises(FileNotFoundError, match=r"endless/mnist/train-images-idx3-ubyte.gz: it "
                                                r"decompresses to more than 100,016 bytes"):
        load_dataset("mnist", mirror=f"{misbehaving}/endless")
    assert cache_is_empty(tmp_path)


def test_a_huge_content_length_is_refused_before_downloading(misbehaving, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the server announces 1,000,000,000,000 bytes"):
        load_dataset("mnist", mirror=f"{misbehaving}/liar")
    assert cache_is_empty(tmp_path)


def test_a_download_that_decompresses_too_far_is_stopped(misbehaving, tmp_path, monkeypatch):
    # 50 MB of zeros (~50 KB compressed) for a file known to hold 1,000,000 bytes
    monkeypatch.setitem(SOURCES["mnist"].sizes, "train-images-idx3-ubyte", 1_000_000)
    Misbehaving.bomb = gzip.compress(header((60_000, 28, 28)) + bytes(50_000_000),
                                     compresslevel=9)
    holder = {}

    def fetch():
        with pytest.raises(FileNotFoundError) as info:
            load_dataset("mnist", mirror=f"{misbehaving}/bomb")
        holder["message"] = str(info.value)

    peak = peak_memory(fetch)
    assert ("it decompresses to more than 1,000,016 bytes, the size of the file; stopped"
            in holder["message"])
    assert peak < 10_000_000                                 # chunks, never the 50 MB
    assert cache_is_empty(tmp_path)
