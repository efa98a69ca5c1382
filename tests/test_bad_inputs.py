"""Many bad inputs through the whole command line, in-process: each must end with exit status 2
(1 for a wrong ``--check`` answer, as documented), exactly one line on stderr, and no traceback.

The table is the regression list of the probe in issue 12 (bad files, bad numbers, bad matrices,
missing arguments, files in the way). ``{d}`` is a folder of prepared files, ``{ck}`` a trained
checkpoint.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

M = "1 2 3; 4 5 6; 7 8 9"
C = ["explain", "conv2d", "--input", M, "--kernel", "1 0; 0 1"]
P = ["explain", "pool", "--input", "1 2 3 4; 5 6 7 8; 1 2 3 4; 5 6 7 8"]
F = ["filter", "{d}/good.png"]
O = ["--out", "{d}/o.png"]                                               # noqa: E741

BAD = [
    # the command itself
    ["nope"], ["--bogus"], ["train", "--bogus"],
    # train: numbers, names and data checked before any work
    ["train", "--model", "nope"], ["train", "--data", "nope"], ["train", "--epochs", "0"],
    ["train", "--epochs", "-1"], ["train", "--epochs", "x"], ["train", "--batch-size", "0"],
    ["train", "--lr", "abc"], ["train", "--lr", "-1"], ["train", "--lr", "inf"],
    ["train", "--lr", "nan"], ["train", "--optimizer", "rmsprop"],
    ["train", "--schedule", "step"], ["train", "--seed", "x"],
    ["train", "--data", "{d}/emptydir"], ["train", "--data", "{d}/notes.png"],
    # evaluate
    ["evaluate", "{d}/missing.npz"], ["evaluate", "{d}/garbage.npz"],
    ["evaluate", "{d}/notes.png"], ["evaluate", "{d}"], ["evaluate"],
    ["evaluate", "{ck}", "--data", "nope"],
    # predict
    ["predict", "{ck}", "{d}/missing.png"], ["predict", "{ck}", "{d}/notes.png"],
    ["predict", "{ck}", "{d}/empty.png"], ["predict", "{ck}", "{d}/bomb.png"],
    ["predict", "{ck}", "{d}/huge.png"], ["predict", "{ck}", "{d}/emptydir"],
    ["predict", "{ck}", "{d}/good.png", "--top", "0"],
    ["predict", "{ck}", "{d}/good.png", "--invert", "sometimes"],
    ["predict", "{ck}", "{d}/good.png", "--max-pixels", "0"],
    ["predict", "{ck}", "{d}/good.png", "--max-pixels", "10"],
    ["predict", "{d}/good.png", "{ck}"], ["predict", "{d}/garbage.npz", "{d}/good.png"],
    ["predict", "{ck}"], ["predict", "{d}/history.json", "{d}/good.png"],
    # summary
    ["summary", "nope"], ["summary"], ["summary", "lenet5", "--input-size", "8"],
    ["summary", "lenet5", "--input-size", "0"], ["summary", "lenet5", "--channels", "6,x"],
    ["summary", "lenet5", "--channels", "0,16"], ["summary", "lenet5", "--in-channels", "-1"],
    ["summary", "lenet5", "--num-classes", "0"],
    # explain conv2d
    ["explain", "conv2d", "--input", "", "--kernel", "1"],
    ["explain", "conv2d", "--input", "1 2; 3", "--kernel", "1"],
    ["explain", "conv2d", "--input", "a b", "--kernel", "1"],
    ["explain", "conv2d", "--input", M, "--kernel", "1/0"],
    ["explain", "conv2d", "--input", M, "--kernel", "1 0 -1, 1 0 -1, 1 0 -1"],
    ["explain", "conv2d", "--input", "1 2 3, 4 5 6", "--kernel", "1"],
    ["explain", "conv2d", "--input", "1 2; 3 4", "--kernel", M],
    [*C, "--stride", "0"], [*C, "--stride", "x"], [*C, "--padding", "-1"],
    [*C, "--padding", "foo"], [*C, "--dilation", "0"], [*C, "--at", "5,5"], [*C, "--at", "x"],
    [*C, "--at", "1,2,3,4"], [*C, "--at", "-1,0"], [*C, "--check", "1 2 3"],
    [*C, "--check", "a"], [*C, "--grad", "1 2 3"], [*C, "--bias", "1 2"], [*C, "--bias", "x"],
    ["explain", "conv2d", "--kernel", "1"], ["explain", "conv2d", "--input", M],
    ["explain", "conv2d", "--input", M, "--kernel", "1 2 | 3 4"],
    ["explain", "conv2d", "--input", "1 2; 3 4 | 5 6", "--kernel", "1"],
    ["explain", "nope"], ["explain"],
    # explain pool, relu, softmax, padding
    [*P, "--size", "0"], [*P, "--size", "5"], [*P, "--mode", "median"], [*P, "--padding", "-1"],
    [*P, "--at", "9,9"], [*P, "--check", "1"], ["explain", "pool", "--input", ""],
    [*P, "--stride", "0"],
    ["explain", "relu", "--input", "x"], ["explain", "relu", "--input", "1 2", "--check", "1"],
    ["explain", "softmax", "--input", ""], ["explain", "softmax", "--input", "1 2", "--target",
                                                 "5"],
    ["explain", "softmax", "--input", "1 2", "--target", "-1"],
    ["explain", "softmax", "--input", "1 2", "--target", "x"],
    ["explain", "padding", "--size", "0", "--kernel-size", "3"],
    ["explain", "padding", "--size", "5"],
    ["explain", "padding", "--size", "5", "--kernel-size", "3", "--stride", "0"],
    # explain model
    ["explain", "model", "{ck}", "{d}/good.png", "--layer", "nope", "--at", "0,0,0"],
    ["explain", "model", "{ck}", "{d}/good.png", "--layer", "0", "--at", "99,0,0"],
    ["explain", "model", "{ck}", "{d}/notes.png", "--layer", "0", "--at", "0,0,0"],
    ["explain", "model", "{d}/garbage.npz", "{d}/good.png", "--layer", "0", "--at", "0,0,0"],
    ["explain", "model", "{ck}", "{d}/good.png", "--layer", "0", "--at", "0,0,0,0"],
    # filter
    ["filter"], F, [*F, "-k", "box"], [*F, "-k", "nope", *O],
    [*F, "-k", "gaussian:sigma=-1", *O], [*F, "-k", "box:size=2", *O],
    [*F, "-k", "box:colour=3", *O],
    ["filter", "{d}/missing.png", "-k", "box", *O], ["filter", "{d}/notes.png", "-k", "box", *O],
    ["filter", "{d}/bomb.png", "-k", "box", *O], ["filter", "{d}/huge.png", "-k", "box", *O],
    ["filter", "{d}/empty.png", "-k", "box", *O], ["filter", "{d}", "-k", "box", *O],
    [*F, "-k", "box", "--out", "{d}/nodir/o.png"], [*F, "-k", "box", "--out", "{d}"],
    [*F, "-k", "box", "--grid", "{d}/nodir/g.png"],
    [*F, "-k", "box", "--stride", "0", *O], [*F, "-k", "box", "--border", "mirror", *O],
    [*F, "-k", "box", "--map", "weird", *O], ["filter", "--show-kernel"],
    [*F, "-k", "1 2; 3", *O], [*F, "-k", "1 0 -1, 1 0 -1", *O],
    [*F, "-k", "box", "--max-pixels", "10", *O], [*F, "-k", "box", "--max-pixels", "-5", *O],
    # viz
    ["viz", "curves", "{d}/garbage.npz", *O], ["viz", "curves", "{d}/missing", *O],
    ["viz", "curves", "{d}/empty.json", *O], ["viz", "curves", "{d}/list.json", *O],
    ["viz", "curves", "{d}/history.json"], ["viz", "filters", "{d}/garbage.npz", *O],
    ["viz", "filters", "{ck}", "--layer", "nope", *O],
    ["viz", "features", "{ck}", "{d}/notes.png", *O],
    ["viz", "features", "{ck}", "{d}/bomb.png", *O],
    ["viz", "confusion", "{ck}", "--data", "nope", *O], ["viz", "nope"],
    ["viz", "curves", "{d}/history.json", "--out", "{d}/nodir/c.png"],
    # bench
    ["bench", "--rounds", "0"], ["bench", "--only", "nope"], ["bench", "--batch-size", "x"],
]
WRONG_ANSWERS = [                                   # documented: exit 1, the report on stdout
    [*C, "--check", "6 8; 12 15"], [*P, "--check", "6 8; 6 9"],
    ["explain", "relu", "--input", "1 -2", "--check", "1 -2"],
]


def png_header_only(path, width: int, height: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from cnnlab.cli import main

    d = tmp_path_factory.mktemp("bad")
    Image.fromarray(np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1))).save(d / "good.png")
    (d / "notes.png").write_text("not a picture")
    (d / "empty.png").write_bytes(b"")
    png_header_only(d / "bomb.png", 30_000, 30_000)           # Pillow's bomb error
    png_header_only(d / "huge.png", 6_000, 6_000)             # our cap
    (d / "emptydir").mkdir()
    (d / "garbage.npz").write_bytes(np.random.default_rng(0).bytes(300))
    (d / "empty.json").write_text("{}")
    (d / "list.json").write_text("[1, 2]")
    (d / "history.json").write_text(json.dumps({"epochs": [{"epoch": 1, "loss": 1.0}]}))
    data = d / "shapes"
    for cls, value in (("dark", 30), ("light", 220)):
        (data / cls).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (16, 16), value + i).save(data / cls / f"{i}.png")
    assert main(["train", "--data", str(data), "--epochs", "1", "--batch-size", "4", "--quiet",
                 "--out", str(d / "run")]) == 0
    return d


def _fill(argv: list[str], files) -> list[str]:
    checkpoint = next(p for p in sorted((files / "run").glob("model.*")) if p.suffix != ".json")
    return [a.format(d=files, ck=checkpoint) for a in argv]


def test_the_table_is_large():
    assert len(BAD) + len(WRONG_ANSWERS) >= 90


@pytest.mark.parametrize("argv", BAD, ids=lambda argv: " ".join(argv)[:60])
def test_a_bad_input_is_one_line_and_exit_2(files, capsys, argv):
    code, _, err = run_cli(capsys, *_fill(argv, files))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error:" in lines[0]


@pytest.mark.parametrize("argv", WRONG_ANSWERS, ids=lambda argv: argv[1])
def test_a_wrong_answer_exits_1(files, capsys, argv):
    code, out, err = run_cli(capsys, *argv)
    assert code == 1 and err == "" and "correct is" in out
