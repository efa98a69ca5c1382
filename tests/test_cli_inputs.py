"""What a new user hit on the command line: inversion that follows how the model was trained
(``--invert``), ``predict`` on a folder, the pixel cap option, messages and exit statuses, and
system errors (memory, disk, recursion) as one sentence."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

import cnnlab.functional as F
from cnnlab.cli import filter as filter_command
from cnnlab.data.images import read_image
from cnnlab.train.inference import load_trained, model_inputs


def shape_image(kind: str, light_background: bool, shift: int = 0) -> Image.Image:
    """A 16×16 square or bar, dark on white (or white on black)."""
    pixels = np.full((16, 16), 255 if light_background else 0, np.uint8)
    ink = 0 if light_background else 255
    if kind == "square":
        pixels[4 + shift:10 + shift, 4:10] = ink
    else:
        pixels[2:14, 7 + shift:9 + shift] = ink
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def light_run(tmp_path_factory):
    """A LeNet-5 trained one epoch on dark shapes on white: the checkpoint and the folder."""
    from cnnlab.cli import main

    root = tmp_path_factory.mktemp("shapes")
    for kind in ("bar", "square"):
        (root / "data" / kind).mkdir(parents=True)
        for i in range(5):
            shape_image(kind, True, i % 3).save(root / "data" / kind / f"{i}.png")
    out = root / "run"
    assert main(["train", "--data", str(root / "data"), "--epochs", "1", "--batch-size", "4",
                 "--quiet", "--out", str(out)]) == 0
    return root, checkpoint_in(out)


def checkpoint_in(out):
    """The last-epoch checkpoint of a run, whatever its format's suffix."""
    return next(p for p in sorted(out.glob("model.*")) if p.suffix != ".json")


def test_training_records_how_light_the_background_was(light_run):
    _, checkpoint = light_run
    ckpt, _, _ = load_trained(checkpoint)
    assert ckpt.config["border_mean"] == pytest.approx(1.0)


def test_inversion_follows_the_training_images(light_run, tmp_path):
    root, checkpoint = light_run
    ckpt, _, normalize = load_trained(checkpoint)
    light = root / "data" / "bar" / "0.png"
    shape_image("bar", False).save(tmp_path / "dark.png")
    raw = read_image(light, channels=1, size=16)
    # a light picture for a model trained on light pictures: used as it is
    np.testing.assert_array_equal(model_inputs(ckpt, normalize, [light])[0],
                                  normalize(raw[None])[0])
    np.testing.assert_array_equal(model_inputs(ckpt, normalize, [light], invert="always")[0],
                                  normalize(1 - raw[None])[0])
    # a dark one is inverted to match, unless told never to
    dark = read_image(tmp_path / "dark.png", channels=1, size=16)
    np.testing.assert_array_equal(model_inputs(ckpt, normalize, [tmp_path / "dark.png"])[0],
                                  normalize(1 - dark[None])[0])
    np.testing.assert_array_equal(
        model_inputs(ckpt, normalize, [tmp_path / "dark.png"], invert="never")[0],
        normalize(dark[None])[0])
    # an old checkpoint (no border_mean) keeps the old rule: light pictures are inverted
    del ckpt.config["border_mean"]
    np.testing.assert_array_equal(model_inputs(ckpt, normalize, [light])[0],
                                  normalize(1 - raw[None])[0])
    with pytest.raises(ValueError, match="invert must be one of auto, never, always"):
        model_inputs(ckpt, normalize, [light], invert="yes")


def test_predict_agrees_with_the_training_data_and_takes_a_folder(light_run, capsys):
    root, checkpoint = light_run
    code, out, err = run_cli(capsys, "predict", str(checkpoint), str(root / "data" / "square"))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [line.split(":")[0].rsplit("/", 1)[1] for line in lines] == \
        [f"{i}.png" for i in range(5)]                        # every image, sorted
    code, never, _ = run_cli(capsys, "predict", str(checkpoint), str(root / "data" / "square"),
                             "--invert", "never")
    assert never == out                                       # auto = never for these images
    code, always, _ = run_cli(capsys, "predict", str(checkpoint),
                              str(root / "data" / "square"), "--invert", "always")
    assert always != out
    (root / "empty").mkdir(exist_ok=True)
    code, _, err = run_cli(capsys, "predict", str(checkpoint), str(root / "empty"))
    assert code == 2 and "the folder" in err and "holds no image files" in err
    assert "Image file not found" not in err


def test_image_commands_take_max_pixels(light_run, capsys, tmp_path):
    root, checkpoint = light_run
    image = str(root / "data" / "bar" / "0.png")                    # 16×16 = 256 pixels
    for argv in (["predict", str(checkpoint), image],
                 ["viz", "features", str(checkpoint), image, "--out", str(tmp_path / "f.png")],
                 ["explain", "model", str(checkpoint), image, "--layer", "0", "--at", "0,0,0"],
                 ["filter", image, "-k", "box", "--out", str(tmp_path / "o.png")]):
        code, _, err = run_cli(capsys, *argv, "--max-pixels", "255")
        assert code == 2, argv
        assert "(16×16 = 256 pixels) is refused: more than the limit of 255 pixels" in err
        assert len(err.strip().splitlines()) == 1


def test_no_arguments_prints_usage(capsys):
    code, out, err = run_cli(capsys)
    assert code == 2 and out == ""
    assert err.startswith("usage: cnnlab") and "expected a command" in err


def test_help_shows_defaults_and_model_names(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    text = " ".join(out.split())
    for option, default in (("--epochs", 15), ("--batch-size", 64), ("--seed", 0)):
        assert f"(default {default}" in text.split(option, 2)[-1], option
    code, out, _ = run_cli(capsys, "summary", "--help")
    assert "lenet5" in out and "small_resnet" in out
    code, _, err = run_cli(capsys, "summary")
    assert code == 2 and "expected a MODEL, one of lenet5, small_vgg" in err


@pytest.mark.parametrize("what, argv", [
    ("conv2d", ["--input", "1 2 3; 4 5 6; 7 8 9", "--kernel", "1 0; 0 1"]),
    ("pool", ["--input", "1 2 3 4; 5 6 7 8; 1 2 3 4; 5 6 7 8"]),
    ("relu", ["--input", "1 -2; -3 4"]),
])
def test_check_exits_1_when_the_answer_is_wrong(capsys, what, argv):
    right = {"conv2d": "6 8; 12 14", "pool": "6 8; 6 8", "relu": "1 0; 0 4"}[what]
    code, out, _ = run_cli(capsys, "explain", what, *argv, "--check", right)
    assert code == 0 and "right" in out
    wrong = "7" + right[1:]
    code, out, _ = run_cli(capsys, "explain", what, *argv, "--check", wrong)
    assert code == 1 and "correct is" in out


def test_explain_at_must_lie_in_the_output(capsys):
    small = ["explain", "conv2d", "--input", "1 2 3; 4 5 6; 7 8 9", "--kernel", "1 0; 0 1"]
    code, _, err = run_cli(capsys, *small, "--at", "5,5")
    assert code == 2 and "at: (5, 5) is outside the output (2×2)" in err
    assert run_cli(capsys, *small, "--at", "1,1")[0] == 0
    code, _, err = run_cli(capsys, "explain", "pool", "--input", "1 2; 3 4", "--at", "3,0")
    assert code == 2 and "at: (3, 0) is outside the output (1×1)" in err
    big = " ; ".join(" ".join("1" for _ in range(9)) for _ in range(9))
    code, out, _ = run_cli(capsys, "explain", "conv2d", "--input", big, "--kernel", "1")
    assert code == 0 and "pick another with at=(row, column), --at R,C on the command line" in out


@pytest.mark.parametrize("argv", [
    ["filter", "x.png", "-k", "1 0 -1, 1 0 -1, 1 0 -1", "--out", "o.png"],
    ["filter", "--show-kernel", "-k", "1 0 -1, 1 0 -1, 1 0 -1"],
    ["explain", "conv2d", "--input", "1 2 3, 4 5 6, 7 8 9", "--kernel", "1"],
])
def test_commas_between_rows_are_refused(capsys, argv):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "rows are separated by ';'" in err
    assert len(err.strip().splitlines()) == 1
    code, out, _ = run_cli(capsys, "filter", "--show-kernel", "-k", "1, 0, -1; 2, 0, -2")
    assert code == 0 and "-2" in out                              # commas between values: fine


def test_a_zero_size_kernel_is_refused():
    with pytest.raises(ValueError, match=r"conv2d expected a weight .* at least one channel per "
                                         r"group and one kernel entry along every axis, received "
                                         r"shape \(1, 1, 0, 0\)"):
        F.conv2d(np.zeros((1, 1, 9, 9)), np.zeros((1, 1, 0, 0)))
    with pytest.raises(ValueError, match="received shape"):
        F.conv1d(np.zeros((1, 1, 9)), np.zeros((2, 1, 0)))


def test_viz_curves_on_a_model_file_says_what_it_needs(light_run, capsys, tmp_path):
    _, checkpoint = light_run
    code, _, err = run_cli(capsys, "viz", "curves", str(checkpoint), "--out",
                           str(tmp_path / "c.png"))
    assert code == 2 and "utf-8" not in err
    assert "is not a training history: expected a training folder or its history.json" in err
    assert "received a model file" in err


@pytest.mark.parametrize("error, sentence", [
    (MemoryError(), "ran out of memory"),
    (OSError(errno.ENOSPC, "No space left on device", "o.png"), "(o.png): the disk is full"),
    (OSError(errno.EROFS, "Read-only file system", "o.png"), "file system is read-only"),
    (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
    (IndexError("index 5 is out of bounds"), "index 5 is out of bounds (IndexError)"),
])
def test_system_errors_are_one_sentence(capsys, monkeypatch, tmp_path, error, sentence):
    Image.new("L", (8, 8)).save(tmp_path / "in.png")

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(filter_command, "save_image", fail)
    code, _, err = run_cli(capsys, "filter", str(tmp_path / "in.png"), "-k", "box", "--out",
                           str(tmp_path / "o.png"))
    assert code == 2
    assert err.startswith("cnnlab filter: error: ") and sentence in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_train_out_an_existing_file_is_one_sentence(capsys, tmp_path):
    (tmp_path / "taken").write_text("x")
    code, _, err = run_cli(capsys, "train", "--epochs", "1", "--quiet", "--out",
                           str(tmp_path / "taken"))
    assert code == 2 and "taken" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    json.dumps(err)
