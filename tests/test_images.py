"""cnnlab.data.images: the pixel cap (checked from the header, before decoding), bit depths (16-
and 32-bit integers scaled to their range, floats as floats), and the reader's errors."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from cnnlab.data import load_image_folder, read_image, read_pixels
from cnnlab.data.images import MAX_PIXELS, border_mean, pixel_cap


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width × height`` grey pixels but holds almost no data (a few
    hundred bytes): what a decompression bomb looks like before it is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [6_000, 30_000])
def test_too_many_pixels_are_refused_before_decoding(tmp_path, side):
    # 6,000² = 36 M pixels: over our cap, under Pillow's; 30,000²: Pillow's bomb error too
    path = png_header_only(tmp_path / "bomb.png", side, side)
    tracemalloc.start()
    with pytest.raises(ValueError) as info:
        read_image(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    message = str(info.value)
    assert "is refused: more than the limit of 25,000,000 pixels" in message
    assert "--max-pixels" in message and "$CNNLAB_MAX_PIXELS" in message
    if side == 6_000:
        assert "6,000×6,000 = 36,000,000 pixels" in message
    else:                                   # Pillow refused it at opening: no size to show
        assert message.startswith(f"The image {path} is refused: ")
    assert peak < 5_000_000                          # nothing of the image was allocated
    with pytest.raises(ValueError, match="is refused"):
        read_pixels(path)


def test_the_cap_can_be_raised_by_argument_and_environment(tmp_path, monkeypatch):
    path = png_header_only(tmp_path / "big.png", 6_000, 6_000)
    # past the cap, decoding starts and finds the data missing: a different sentence
    with pytest.raises(ValueError, match=r"Cannot read the image .*big.png"):
        read_image(path, max_pixels=40_000_000)
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "40_000_000")
    assert pixel_cap() == 40_000_000
    with pytest.raises(ValueError, match="Cannot read the image"):
        read_pixels(path)
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "100")
    small = tmp_path / "small.png"
    Image.new("L", (11, 10)).save(small)
    with pytest.raises(ValueError, match=r"11×10 = 110 pixels\) is refused: more than the "
                                         r"limit of 100 pixels"):
        read_image(small)
    assert read_image(small, max_pixels=110).shape == (1, 10, 11)   # the argument wins
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match=r"\$CNNLAB_MAX_PIXELS must be a positive integer"):
        read_image(small)
    monkeypatch.delenv("CNNLAB_MAX_PIXELS")
    assert pixel_cap() == MAX_PIXELS == 25_000_000
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        read_image(small, max_pixels=0)


def test_sixteen_bit_images_keep_their_levels(tmp_path):
    ramp = (np.arange(16 * 16).reshape(16, 16) * 256).astype(np.uint16)      # 0 ... 65280
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    x = read_image(tmp_path / "ramp.png")
    assert x.dtype == np.float32 and x.shape == (1, 16, 16)
    np.testing.assert_allclose(x[0], ramp / 65535, atol=1e-6)       # not clipped at 255
    assert len(np.unique(x)) == 256
    pixels = read_pixels(tmp_path / "ramp.png")
    assert pixels.dtype == np.float64 and pixels.shape == (16, 16)
    np.testing.assert_allclose(pixels, ramp / 65535 * 255, atol=1e-3)
    rgb = read_image(tmp_path / "ramp.png", channels=3, size=8)
    assert rgb.shape == (3, 8, 8) and np.all(rgb[0] == rgb[2]) and 0 < rgb.mean() < 1


def test_thirty_two_bit_and_float_images(tmp_path):
    ints = np.array([[0, 2 ** 30], [2 ** 31 - 1, -(2 ** 31) + 1]], np.int32)
    Image.fromarray(ints).save(tmp_path / "ints.tif")
    np.testing.assert_allclose(read_image(tmp_path / "ints.tif")[0],
                               ints / (2 ** 31 - 1), atol=1e-6)     # as skimage.img_as_float
    floats = np.array([[0.25, -1.5], [3.0, 0.125]], np.float32)
    Image.fromarray(floats).save(tmp_path / "floats.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "floats.tif")[0], floats)
    np.testing.assert_array_equal(read_pixels(tmp_path / "floats.tif"), floats * 255.0)
    bad = np.array([[np.nan, 1]], np.float32)
    Image.fromarray(bad).save(tmp_path / "nan.tif")
    with pytest.raises(ValueError, match="NaN or infinite"):
        read_image(tmp_path / "nan.tif")


def test_a_folder_of_sixteen_bit_images_trains_on_graded_values(tmp_path):
    for cls, level in (("dark", 10_000), ("light", 50_000)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((6, 6), level + 1000 * i, np.uint16)).save(
                tmp_path / cls / f"{i}.png")
    train, test = load_image_folder(tmp_path)
    values = np.unique(np.concatenate([train.images.ravel(), test.images.ravel()]))
    assert len(values) == 6                                 # six levels, not 0 and 1
    assert 0.1 < values.min() < values.max() < 0.9


def test_filter_on_a_sixteen_bit_image_is_not_binarised(tmp_path, capsys):
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (8, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    code, out, err = run_cli(capsys, "filter", str(tmp_path / "ramp.png"), "-k", "box",
                             "--out", str(tmp_path / "out.png"), "--grid",
                             str(tmp_path / "grid.png"))
    assert code == 0, err
    result = np.asarray(Image.open(tmp_path / "out.png"))
    assert len(np.unique(result)) > 20                      # a ramp, not two levels


def test_border_mean_and_reader_errors(tmp_path):
    x = np.zeros((1, 5, 5))
    x[0, 0, :] = 1
    # the four edges, 20 values, corners counted in a row and a column: 5 + 1 + 1 are light
    assert border_mean(x) == pytest.approx(7 / 20)
    assert border_mean(np.stack([x, x])) == pytest.approx(7 / 20)
    with pytest.raises(IsADirectoryError, match="Expected an image file, received the folder"):
        read_image(tmp_path)
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match=r"Cannot read the image .*notes.png: cannot identify"):
        read_pixels(tmp_path / "notes.png")


def test_thirty_two_bit_levels_are_scaled_before_rounding_to_float32(tmp_path):
    # levels above 2**24 are not float32 numbers: scaled in float64, then rounded once
    ints = np.array([[2 ** 24 + 1, 2 ** 24 + 5, 2 ** 30 + 3]], np.int32)
    Image.fromarray(ints).save(tmp_path / "fine.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "fine.tif")[0],
                                  (ints / (2 ** 31 - 1)).astype(np.float32))


def test_a_grey_image_with_varied_columns_stays_grey(tmp_path):
    ramp = np.tile(np.arange(0, 250, 50, dtype=np.uint8), (3, 1))       # (3, 5), mode L
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    assert read_image(tmp_path / "ramp.png").shape == (1, 3, 5)
    np.testing.assert_array_equal(read_pixels(tmp_path / "ramp.png"), ramp)


def test_a_colour_image_keeps_its_three_channels(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 128, np.arange(3) * 100   # (H, W, RGB)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    x = read_image(tmp_path / "colour.png")
    assert x.shape == (3, 2, 3)
    np.testing.assert_array_equal(x, rgb.transpose(2, 0, 1) / np.float32(255))
    pixels = read_pixels(tmp_path / "colour.png")
    assert pixels.shape == (2, 3, 3) and pixels.flags.c_contiguous
    np.testing.assert_array_equal(pixels, rgb)
    with pytest.raises(ValueError, match=r"^channels must be 1 or 3, received 2\.$"):
        read_pixels(tmp_path / "colour.png", channels=2)


def test_a_sixteen_bit_image_resizes_to_a_non_square_size(tmp_path):
    ramp = (np.arange(8 * 8).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    x = read_image(tmp_path / "ramp.png", size=(4, 6))
    assert x.shape == (1, 4, 6) and 0 < x.min() < x.max() < 1


def test_border_mean_reads_every_edge_and_sums_in_float64():
    for edge in ((..., -1, slice(None)), (..., slice(None), -1)):      # the bottom, the right
        x = np.zeros((1, 5, 5))
        x[edge] = 1
        assert border_mean(x) == pytest.approx(7 / 20)
    # 20,000 images of 0.1: float32 sums would drift in the 8th digit
    assert border_mean(np.full((20_000, 1, 8, 8), 0.1, np.float32)) == float(np.float32(0.1))


def test_grey_with_alpha_is_composited_onto_white(tmp_path):
    la = np.array([[[0, 255], [0, 0]]], np.uint8)          # (1, 2, LA): opaque black, clear
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_pixels(tmp_path / "la.png"), [[0, 255]])


def test_a_bad_size_is_one_sentence(tmp_path):
    Image.new("L", (4, 4)).save(tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"^size must be a positive int or a pair \(H, W\) of "
                                         r"them, received \(0, 4\)\.$"):
        read_image(tmp_path / "x.png", size=(0, 4))


def test_a_one_bit_image_is_grey(tmp_path):
    bits = np.zeros((3, 4), bool)
    bits[:, 0] = True                                          # a white first column
    Image.fromarray(bits).save(tmp_path / "bits.png")          # mode "1"
    x = read_image(tmp_path / "bits.png")
    assert x.shape == (1, 3, 4)
    np.testing.assert_array_equal(x[0], bits.astype(np.float32))


def test_sixteen_bit_folder_images_round_to_the_nearest_8_bit_level(tmp_path):
    for cls, level in (("black", 0), ("grey", 39321)):          # 39321 / 65535 = 0.6 -> 153
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((2, 2), level, np.uint16)).save(tmp_path / cls / f"{i}.png")
    train, test = load_image_folder(tmp_path)
    values = np.concatenate([train.images.ravel(), test.images.ravel()]) * 255
    assert sorted(set(np.rint(values).tolist())) == [0, 153]


def test_float_folder_images_above_1_saturate_at_white(tmp_path):
    for cls, value in (("dark", 0.0), ("bright", 3.0)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((2, 2), value, np.float32)).save(tmp_path / cls / f"{i}.tif")
    train, test = load_image_folder(tmp_path)
    values = np.concatenate([train.images.ravel(), test.images.ravel()])
    assert sorted(set(values.tolist())) == [0.0, 1.0]
