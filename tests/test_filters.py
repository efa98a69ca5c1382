"""Image filters: named kernels on synthetic edges and blobs, borders, pixel mappings, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import LECTURE_EXAMPLES, run_cli
from PIL import Image

from cnnlab import functional as F
from cnnlab.tools import filters
from cnnlab.tools.matrices import format_matrix, parse_channels, parse_matrix

LECTURE = {e["id"]: e for e in LECTURE_EXAMPLES}
SINGLE = [n for n in filters.names() if len(filters.kernels(n)) == 1]


def step(axis: int, low: float = 10, high: float = 100, size: int = 8) -> np.ndarray:
    """Dark first half, bright second half, along ``axis`` (1: left to right)."""
    image = np.full((size, size), low, dtype=np.float64)
    image[(slice(None), slice(size // 2, None))[::1 if axis == 1 else -1]] = high
    return image


def test_the_step_images_are_what_the_tests_say():
    assert step(1)[0].tolist() == [10] * 4 + [100] * 4
    assert step(0)[:, 0].tolist() == [10] * 4 + [100] * 4


@pytest.mark.parametrize("name, scale", [("sobel-x", 4), ("prewitt-x", 3), ("scharr-x", 16),
                                         ("vertical-edge", -3)])
def test_horizontal_derivatives_fire_on_a_vertical_edge_only(name, scale):
    """Brighter to the right: +scale·90 on the two columns beside the edge, 0 elsewhere."""
    response = filters.apply(step(1), name, border="replicate")
    expected = np.zeros((8, 8))
    expected[:, 3:5] = scale * 90
    np.testing.assert_allclose(response, expected, atol=1e-12)
    y_name = {"vertical-edge": "horizontal-edge"}.get(name, name.replace("-x", "-y"))
    np.testing.assert_allclose(filters.apply(step(1), y_name, border="replicate"), 0, atol=1e-12)


@pytest.mark.parametrize("name, scale", [("sobel-y", 4), ("prewitt-y", 3), ("scharr-y", 16),
                                         ("horizontal-edge", -3)])
def test_vertical_derivatives_fire_on_a_horizontal_edge(name, scale):
    response = filters.apply(step(0), name, border="replicate")
    expected = np.zeros((8, 8))
    expected[3:5, :] = scale * 90
    np.testing.assert_allclose(response, expected, atol=1e-12)


def test_sobel_is_the_gradient_magnitude():
    image = np.random.default_rng(0).uniform(0, 255, (9, 7))
    gx, gy = (filters.apply(image, n) for n in ("sobel-x", "sobel-y"))
    np.testing.assert_allclose(filters.apply(image, "sobel"), np.hypot(gx, gy))
    diagonal = np.tril(np.full((8, 8), 90.0))        # an edge at 45°: both derivatives answer
    assert filters.apply(diagonal, "sobel", border="replicate")[4, 4] > 0


@pytest.mark.parametrize("name", SINGLE)
def test_a_bright_dot_shows_the_kernel_rotated_180_degrees(name):
    """Cross-correlation of an impulse: output[i, j] = K[c - i, c - j], the flipped kernel."""
    k = filters.kernels(name)[0]
    size = k.shape[0] + 4
    dot = np.zeros((size, size))
    dot[size // 2, size // 2] = 1
    response = filters.apply(dot, name, border="zeros")
    r = k.shape[0] // 2
    centre = response[size // 2 - r:size // 2 + r + 1, size // 2 - r:size // 2 + r + 1]
    np.testing.assert_allclose(centre, k[::-1, ::-1], atol=1e-15)
    assert np.abs(response).sum() == pytest.approx(np.abs(k).sum())


@pytest.mark.parametrize("name, total", [("identity", 1), ("box", 1), ("gaussian", 1),
                                         ("sharpen", 1), ("emboss", 1), ("sobel-x", 0),
                                         ("laplacian", 0), ("edge", 0), ("high-pass", 0),
                                         ("vertical-edge", 0)])
def test_blurs_keep_flat_areas_and_detectors_ignore_them(name, total):
    assert filters.kernels(name)[0].sum() == pytest.approx(total, abs=1e-12)
    flat = np.full((7, 9), 50.0)
    np.testing.assert_allclose(filters.apply(flat, name, border="replicate"), 50.0 * total,
                               atol=1e-12)


def test_laplacians_are_zero_on_a_ramp_and_answer_a_blob():
    ramp = np.add.outer(np.arange(6.0) * 3, np.arange(7.0) * 5)
    for neighbours in (4, 8):
        np.testing.assert_allclose(filters.apply(ramp, f"laplacian:neighbours={neighbours}",
                                                 border="valid"), 0, atol=1e-12)
    blob = np.zeros((9, 9))
    blob[3:6, 3:6] = 100
    response = filters.apply(blob, "laplacian", border="zeros")
    assert response[4, 4] == 0 and response[3, 3] == -200 and response[2, 4] == 100


def test_gaussian_size_rule_symmetry_and_parameters():
    g = filters.kernels("gaussian:sigma=1.5")[0]
    assert g.shape == (11, 11) and g.sum() == pytest.approx(1)           # 2·ceil(4.5) + 1
    np.testing.assert_allclose(g, g.T)
    np.testing.assert_allclose(g, g[::-1, ::-1])
    assert g.argmax() == g.size // 2
    assert filters.kernels("gaussian", sigma=1, size=5)[0].shape == (5, 5)
    assert filters.kernels("box:size=5")[0].tolist() == [[0.04] * 5] * 5


def test_the_lecture_examples_come_out_of_the_named_filters():
    sharpen = LECTURE["s002_sharpen_same"]
    np.testing.assert_array_equal(
        filters.apply(np.array(sharpen["input"]), "sharpen", border="zeros"),
        sharpen["expected"])
    vertical = LECTURE["s002_vertical_edge_8x8"]
    np.testing.assert_array_equal(filters.apply(np.array(vertical["input"]), "prewitt-x",
                                                border="valid"), vertical["expected"])
    sobel = LECTURE["s001_conv2d_sobel_valid"]
    np.testing.assert_array_equal(
        filters.apply(np.array(sobel["input"]), "1 0 -1; 2 0 -2; 1 0 -1", border="valid"),
        sobel["expected"])


def test_borders_stride_and_dilation():
    dot = np.zeros((5, 5))
    dot[0, 0] = 9
    wrapped = filters.apply(dot, "box", border="circular")
    assert wrapped[4, 4] == wrapped[0, 0] == wrapped[4, 0] == 1 and wrapped[2, 2] == 0
    assert filters.apply(dot, "box", border="zeros")[4, 4] == 0
    image = np.arange(49.0).reshape(7, 7)
    np.testing.assert_allclose(filters.apply(image, "identity", border="reflect"), image)
    assert filters.apply(image, "box", border="valid").shape == (5, 5)
    assert filters.apply(image, "box", stride=2).shape == (4, 4)                  # ceil(7 / 2)
    assert filters.apply(image, "box", border="valid", dilation=2).shape == (3, 3)
    direct = F.conv2d(image[None, None], np.ones((1, 1, 3, 3)) / 9, padding=2,
                      dilation=2).data[0, 0]
    np.testing.assert_allclose(filters.apply(image, "box", border="zeros", dilation=2), direct)


def test_colour_images_are_filtered_channel_by_channel():
    rgb = np.random.default_rng(1).uniform(0, 255, (6, 8, 3))
    out = filters.apply(rgb, "sharpen")
    assert out.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_allclose(out[..., c], filters.apply(rgb[..., c], "sharpen"))


def test_signed_responses_to_pixels():
    r = np.array([-300.0, -20.4, 0, 99.5, 400])
    assert filters.to_pixels(r, "clip").tolist() == [0, 0, 0, 100, 255]
    assert filters.to_pixels(r, "abs").tolist() == [255, 20, 0, 100, 255]
    assert filters.to_pixels(r, "normalize").tolist() == [0, 102, 109, 146, 255]
    assert filters.to_pixels(np.full(3, 7.0), "normalize").tolist() == [0, 0, 0]
    assert filters.to_pixels(r).dtype == np.uint8


def test_equalize_spreads_grey_levels_and_keeps_hues():
    grey = np.repeat(np.array([100, 101, 102, 103], np.uint8), 4).reshape(4, 4)
    assert sorted(set(filters.equalize(grey).ravel().tolist())) == [0, 85, 170, 255]
    constant = np.full((3, 3), 42, np.uint8)
    np.testing.assert_array_equal(filters.equalize(constant), constant)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0], rgb[1, 1] = (100, 50, 0), (40, 20, 0)
    out = filters.equalize(rgb)
    np.testing.assert_allclose(out[0, 0], [255, 127.5, 0], atol=0.5)   # V 100 -> 255
    assert out[1, 1, 0] == 2 * out[1, 1, 1]                        # the hue (R = 2G) is kept
    with pytest.raises(ValueError, match="equalize expects uint8 pixels"):
        filters.equalize(np.zeros((2, 2)))


def test_specs_and_matrices():
    assert filters.parse_spec("gaussian:sigma=2,size=9") == ("gaussian", {"sigma": 2, "size": 9})
    assert filters.parse_spec("gaussian:sigma=0.5")[1] == {"sigma": 0.5}
    np.testing.assert_allclose(filters.kernels("-1/9 -1/9; 8/9 0")[0],
                               [[-1 / 9, -1 / 9], [8 / 9, 0]])
    assert parse_channels("1 2; 3 4 | 5 6; 7 8")[1].tolist() == [[5, 6], [7, 8]]
    assert format_matrix(parse_matrix("1 -0.5; 10 0")) == " 1  -0.5\n10     0"
    for spec, message in [("blur", "unknown filter 'blur'; expected one of identity"),
                          ("box:size=4", "size must be an odd positive integer, received 4"),
                          ("box:sides=3", "unknown parameter sides"),
                          ("gaussian:sigma", "expected parameters as key=value"),
                          ("laplacian:neighbours=6", "neighbours must be 4 or 8, received 6"),
                          ("1 2; 3", "every row needs the same number of values"),
                          ("1 x; 3 4", "expected a number, received 'x'"),
                          ("1/0 1", "division by zero")]:
        with pytest.raises(ValueError, match=message):
            filters.kernels(spec)
    with pytest.raises(ValueError, match="border must be one of zeros"):
        filters.apply(np.zeros((4, 4)), "box", border="mirror")
    with pytest.raises(ValueError, match=r"expected an image \(H, W\) or \(H, W, C\)"):
        filters.apply(np.zeros(4), "box")


def test_grid_lays_out_titled_panels():
    panels = [("original", np.zeros((20, 30), np.uint8)),
              ("strided", np.full((10, 15, 3), 200, np.uint8))] * 3
    sheet = filters.grid(panels)
    assert sheet.mode == "RGB" and sheet.width > 4 * 30 and sheet.height > 2 * 20
    assert np.asarray(sheet).max() == 224                    # background; panels 0 and 200


# ----------------------------------------------------------------------------- the command
def photo(tmp_path: Path) -> Path:
    pixels = np.zeros((24, 32, 3), np.uint8)
    pixels[:, 16:] = 180
    pixels[6:12, 4:10] = (250, 30, 30)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return path



def test_filter_command_writes_what_the_api_computes(tmp_path, capsys):
    image, out = photo(tmp_path), tmp_path / "edges.png"
    code, text, _ = run_cli(capsys, "filter", str(image), "-k", "gaussian:sigma=1", "-k", "sobel",
                        "--border", "replicate", "--out", str(out))
    assert code == 0 and "gaussian:sigma=1 then sobel, border replicate, mapping abs" in text
    pixels = np.asarray(Image.open(image))
    blurred = filters.apply(pixels.astype(float), "gaussian:sigma=1", border="replicate")
    expected = filters.to_pixels(filters.apply(blurred, "sobel", border="replicate"), "abs")
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)


def test_filter_command_grid_list_and_show_kernel(tmp_path, capsys):
    grid = tmp_path / "grid.png"
    code, text, _ = run_cli(capsys, "filter", str(photo(tmp_path)), "-k", "sobel-x", "-k", "box",
                        "--equalize", "--gray", "--grid", str(grid))
    assert code == 0 and "original and 2 results" in text and Image.open(grid).width > 64
    code, text, _ = run_cli(capsys, "filter", "--list")
    assert code == 0 and all(name in text for name in filters.names())
    code, text, _ = run_cli(capsys, "filter", "--show-kernel", "-k", "sharpen")
    assert code == 0 and text == "sharpen:\n 0  -1   0\n-1   5  -1\n 0  -1   0\n"


@pytest.mark.parametrize("argv, message", [
    (["-k", "edge", "--out", "X"], "expected an IMAGE to filter"),
    (["IMG", "--out", "X"], "expected at least one --kernel SPEC"),
    (["IMG", "-k", "edge"], "expected --out OUT.png, --grid OUT.png or both"),
    (["IMG", "-k", "fuzzy", "--out", "X"], "unknown filter 'fuzzy'"),
    (["IMG", "-k", "edge", "--out", "missing-dir/x.png"], "the directory"),
    (["--show-kernel"], "--show-kernel needs at least one --kernel"),
])
def test_filter_command_mistakes_get_one_line(argv, message, tmp_path, capsys):
    argv = [str(photo(tmp_path)) if a == "IMG" else str(tmp_path / "out.png") if a == "X"
            else str(tmp_path / a) if a.startswith("missing") else a for a in argv]
    code, _, err = run_cli(capsys, "filter", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
