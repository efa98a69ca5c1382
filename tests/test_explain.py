"""Worked arithmetic: every lecture example with arithmetic, reproduced by ``explain``.

The examples (``tests/data/lecture_examples.json``, every value recomputed) include the places
where the notes are wrong; ``check=`` must flag exactly those entries.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import LECTURE_EXAMPLES, run_cli

from cnnlab.cli import main
from cnnlab.tools import explain
from cnnlab.tools.matrices import format_number

EXAMPLES = LECTURE_EXAMPLES
BY_ID = {e["id"]: e for e in EXAMPLES}


def of_kind(*kinds):
    return [pytest.param(e, id=e["id"]) for e in EXAMPLES if e["kind"] in kinds]


def lecture_sum(padded: np.ndarray, kernel: np.ndarray, i: int, j: int, stride: int = 1) -> str:
    """The notes' way of writing one output: ``a*k + b*(-k) + ... = total``."""
    def fmt(v):
        return f"({format_number(v)})" if v < 0 else format_number(v)
    kh, kw = kernel.shape
    window = padded[i * stride:i * stride + kh, j * stride:j * stride + kw]
    terms = " + ".join(f"{fmt(a)}*{fmt(k)}" for a, k in zip(window.ravel(), kernel.ravel()))
    return f"{terms} = {format_number((window * kernel).sum())}"


def padding_of(example) -> int | str:
    return 0 if example["padding"] == "valid" else example["padding"]


@pytest.mark.parametrize("example", of_kind("conv2d", "true_convolution"))
def test_conv2d_examples(example):
    x, k = np.array(example["input"], float), np.array(example["kernel"], float)
    flip = example["kind"] == "true_convolution"
    e = explain.conv2d(x, k, example["bias"] or None, stride=example["stride"],
                       padding=padding_of(example), flip=flip)
    expected = np.array(example["expected"], dtype=object)
    known = expected != None                                              # noqa: E711
    out = np.array(e.numbers["output"][0])
    np.testing.assert_allclose(out[known].astype(float), expected[known].astype(float),
                               atol=1e-3 if out.dtype.kind == "f" and x.dtype.kind == "f"
                               and not float(x.ravel()[0]).is_integer() else 1e-9)
    applied = k[::-1, ::-1] if flip else k
    padded = np.array(e.numbers["padded"][0])
    if out.size <= explain.SMALL:                       # every entry's sum is in the text
        for i, j in np.ndindex(out.shape):
            assert f"Z[{i},{j}] = {lecture_sum(padded, applied, i, j)}" in e.text
    else:
        assert f"Z[0,0] = {lecture_sum(padded, applied, 0, 0)}" in e.text


@pytest.mark.parametrize("example", [pytest.param(e, id=e["id"]) for e in EXAMPLES
                                     if e["kind"] == "conv2d" and e["matches_seed"] is False
                                     and e["id"] != "s002_sharpen_float_crop"])
def test_check_flags_exactly_the_notes_slips(example):
    x, k = np.array(example["input"], float), np.array(example["kernel"], float)
    seed = np.array(example["seed_states"], float)
    expected = np.array(example["expected"], float)
    answer = "; ".join(" ".join(format_number(v) for v in row) for row in seed)
    e = explain.conv2d(x, k, stride=example["stride"], padding=padding_of(example),
                       check=answer)
    slips = {tuple(int(v) for v in idx) for idx in np.argwhere(seed != expected)}
    assert {tuple(w["index"][1:]) for w in e.wrong} == slips and slips
    for w in e.wrong:
        i, j = w["index"][1:]
        assert w["given"] == seed[i, j] and w["correct"] == expected[i, j]
        assert f"entry ({i}, {j}): you have {format_number(seed[i, j])}, correct is " \
               f"{format_number(expected[i, j])}" in e.text
    assert f"Check: {seed.size - len(slips)} of {seed.size} entries right:" in e.text


def test_the_vertical_edge_slip_of_the_handwritten_notes():
    """Notes: top row 21, 0, -21; correct 19, 0, -19 (41 - 22)."""
    example = BY_ID["s000_conv2d_5x5_vertical_edge"]
    e = explain.conv2d(example["input"], example["kernel"], check="21 0 -21; 38 0 -38; 0 0 0")
    assert [w["index"] for w in e.wrong] == [[0, 0, 0], [0, 0, 2]]
    assert ("Z[0,0] = 1*1 + 20*0 + 20*(-1) + 20*1 + 1*0 + 1*(-1) + 20*1 + 1*0 + 1*(-1) = 19"
            in e.text)


def test_the_sharpen_example_with_zero_padding_in_the_notes_words():
    e = explain.conv2d(BY_ID["s002_sharpen_same"]["input"], "0 -1 0; -1 5 -1; 0 -1 0",
                       padding=1)
    assert "Z[0,0] = 0*0 + 0*(-1) + 0*0 + 0*(-1) + 105*5 + 102*(-1) + 0*0 + 103*(-1) + 99*0 " \
           "= 320" in e.text
    assert "Padding: top 1, bottom 1, left 1, right 1 (zeros)" in e.text
    assert "rows:     floor((5 + 1 + 1 - 1·(3-1) - 1) / 1) + 1 = 5" in e.text


def test_the_float_crop_example_checks_the_entries_the_notes_fix():
    """The notes' sharpened crop: only the entries the printed input determines are checked."""
    example = BY_ID["s002_sharpen_float_crop"]
    e = explain.conv2d(example["input"], example["kernel"], padding=1)
    expected = np.array(example["expected"], dtype=object)
    known = expected != None                                              # noqa: E711
    np.testing.assert_allclose(np.array(e.numbers["output"][0])[known].astype(float),
                               expected[known].astype(float), atol=5e-5)


@pytest.mark.parametrize("example", of_kind("conv1d"))
def test_conv1d_examples_as_one_row(example):
    k = np.array(example["kernel"], float)
    if isinstance(example["input"], dict):                  # the notes' windows, one by one
        for window, value in zip(example["input"]["windows"], example["expected"].values()):
            e = explain.conv2d([window], [k])
            assert e.numbers["output"] == [[[value]]]
            assert any(line.strip().startswith("Z[0,0] =") and line.endswith(f"= {value}")
                       for line in e.text.splitlines())
        e = explain.conv2d([example["input"]["windows"][0]], [k],
                           check=str(list(example["seed_states"].values())[0]))
        assert len(e.wrong) == 1                            # the notes' filter (1 -1 -1) slip
        return
    e = explain.conv2d(example["input"], example["kernel"])
    assert e.numbers["output"][0][0] == example["expected"]


@pytest.mark.parametrize("example", of_kind("conv3d_multichannel"))
def test_multichannel_examples_show_per_channel_sums_and_bias(example):
    x = np.array(example["input"], float).transpose(2, 0, 1)                # HWC -> CHW
    k = np.array(example["kernel"], float).transpose(3, 2, 0, 1)            # -> F, C, kh, kw
    e = explain.conv2d(x, k, example["bias"], stride=example["stride"],
                       padding=example["padding"])
    out = np.array(e.numbers["output"])                                      # (F, H, W)
    expected = example["expected"]
    if isinstance(expected, dict):
        np.testing.assert_array_equal(out[0], expected["feature_map"])
    else:
        np.testing.assert_array_equal(out.transpose(1, 2, 0), expected)
    first = e.numbers["entries"][0]
    assert len(first["channels"]) == x.shape[0]
    assert sum(c["sum"] for c in first["channels"]) + first["bias"] == first["value"]
    name = "Z0[0,0]" if k.shape[0] > 1 else "Z[0,0]"
    sums = " + ".join(f"({format_number(c['sum'])})" if c["sum"] < 0 else
                      format_number(c["sum"]) for c in first["channels"])
    assert f"{name} = {sums} + bias {format_number(first['bias'])} = " \
           f"{format_number(first['value'])}" in e.text
    assert "channel 2: " in e.text


def test_backprop_identities():
    example = BY_ID["s000_conv2d_backprop_identities"]
    grad = example["params"]["dL_dz"]
    e = explain.conv2d(example["input"], example["kernel"], example["bias"], grad=grad)
    want = example["expected"]
    assert e.numbers["output"][0] == want["z"]
    assert e.numbers["grad_kernel"][0] == want["dL_dK"]
    assert e.numbers["grad_bias"] == want["dL_dB"]
    assert e.numbers["grad_input"][0] == want["dL_dX"]
    assert e.numbers["rot180_kernel"] == want["rot180_K"]
    assert "dL/dB = Σ dL/dZ = 1 + (-1) + 2 + 3 = 5" in e.text


@pytest.mark.parametrize("example", of_kind("maxpool"))
def test_maxpool_examples(example):
    window = example["params"]["window"]
    e = explain.pool(example["input"], tuple(window), stride=example["stride"],
                     padding=example["padding"] or 0)
    assert e.numbers["output"][0] == example["expected"]
    x = np.pad(np.array(example["input"], float), example["padding"] or 0,
               constant_values=-np.inf)
    s = example["stride"]
    top_left = x[:window[0], :window[1]].ravel()
    values = ", ".join("-∞" if v == -np.inf else format_number(v) for v in top_left)
    assert f"Z[0,0] = max({values}) = {format_number(example['expected'][0][0])}" in e.text
    assert e.numbers["stride"] == [s, s]


@pytest.mark.parametrize("example", of_kind("relu"))
def test_relu_examples(example):
    e = explain.relu(example["input"])
    np.testing.assert_allclose(e.numbers["output"][0], example["expected"])
    x = np.array(example["input"], float)
    assert f"Negative entries set to 0 ({int((x < 0).sum())} of {x.size}):" in e.text


def test_relu_then_maxpool_exercise():
    example = BY_ID["s002_exercise_b_relu_maxpool"]
    rectified = explain.relu(example["input"])
    assert rectified.numbers["output"][0] == example["expected"]["rectified"]
    pooled = explain.pool(rectified.numbers["output"], 2, stride=1)
    assert pooled.numbers["output"][0] == example["expected"]["pooled"]


def test_softmax_example():
    example = BY_ID["s002_softmax"]
    e = explain.softmax(example["input"], target=1)
    np.testing.assert_allclose(e.numbers["probabilities"], example["expected"], atol=1e-6)
    assert "p0 = 148.4132 / 561.9493 = 0.264104" in e.text
    assert e.numbers["loss"] == pytest.approx(-np.log(example["expected"][1]), abs=1e-5)


@pytest.mark.parametrize("example", of_kind("pad"))
def test_zero_padding_examples(example):
    e = explain.conv2d(example["input"], "1", padding=example["padding"])
    assert e.numbers["padded"][0] == example["expected"]
    assert f"Padded input ({len(example['expected'])}×{len(example['expected'][0])}):" in e.text


@pytest.mark.parametrize("example_id, n, f, s, p, expected", [
    ("s001_output_shape_stride2", 5, 3, 2, 0, 2),
    ("s002_output_shape_5x5_f3", 5, 3, 1, 0, 3),
    ("s002_output_shape_stride2", 5, 3, 2, 0, 2),
    ("s001_output_shape_valid", 4, 3, 1, 0, 2),
    ("s001_output_shape_same", 4, 3, 1, 1, 4),
    ("s002_output_shape_edge_images", 128, 3, 1, 0, 126),
    ("s002_output_shape_edge_images", 256, 3, 1, 0, 254),
])
def test_output_shape_examples(example_id, n, f, s, p, expected):
    assert example_id in BY_ID
    e = explain.padding(n, f, s, pad=p)
    row = next(r for r in e.numbers["schemes"] if r["scheme"] == f"padding {p}")
    assert row["output"] == expected
    assert f"O = floor(({n} + {p} + {p} - {f - 1} - 1) / {s}) + 1 = {expected}" in e.text


@pytest.mark.parametrize("f, p", [(3, 1), (5, 2), (7, 3)])
def test_the_same_padding_rule_p_is_f_minus_1_over_2(f, p):
    """The notes: n + 2p - f + 1 = n gives p = (f-1)/2 (s002_same_padding_rule, s000)."""
    schemes = {r["scheme"]: r for r in explain.padding(6, f).numbers["schemes"]}
    assert schemes["PyTorch p = d·(k-1)//2"]["before"] == p
    assert all(r["output"] == 6 for name, r in schemes.items() if name != "'valid'")


def test_padding_warns_when_frameworks_disagree():
    even = explain.padding(7, 4)
    assert "Warning: these 'same' schemes pad differently here" in even.text
    assert "JAX 'SAME_LOWER' 2+1" in even.text
    assert "Warning" not in explain.padding(7, 3).text
    strided = explain.padding(6, 3, stride=2)
    assert "refused by PyTorch for stride 2" in strided.text


def test_large_outputs_work_out_the_entry_asked_for():
    x = np.arange(100.0).reshape(10, 10)
    e = explain.conv2d(x, "1 0; 0 1", at=(3, 4))
    assert "81 entries: showing Z[3,4]" in e.text
    assert "Z[3,4] = 34*1 + 35*0 + 44*0 + 45*1 = 79" in e.text
    assert "Z[0,0] =" not in e.text
    with pytest.raises(ValueError, match=r"at: \(9, 9\) is outside the output \(9×9\)"):
        explain.conv2d(x, "1 0; 0 1", at="9,9")


def test_stride_dilation_and_several_filters():
    x = np.arange(25.0).reshape(5, 5)
    e = explain.conv2d(x, np.ones((2, 1, 2, 2)), [1, -1], stride=2, dilation=2)
    out = np.array(e.numbers["output"])
    assert out.shape == (2, 2, 2)
    assert out[0, 0, 0] == 0 + 2 + 10 + 12 + 1 and out[1, 1, 1] == 12 + 14 + 22 + 24 - 1
    assert "Z1[1,1] = 12*1 + 14*1 + 22*1 + 24*1 + bias -1 = 71" in e.text


def test_markdown_and_mistakes():
    e = explain.conv2d("1 2; 3 4", "1")
    assert "**Output Z (2×2)**" in e.markdown and "```text" in e.markdown
    for call, message in [
        (lambda: explain.conv2d("1 2; 3 4", "1 2 3 4 5"), "larger than the padded input"),
        (lambda: explain.conv2d("1 2; 3 4 | 5 6; 7 8", "1"), "the kernel has 1 channel"),
        (lambda: explain.conv2d("1 2; 3 4", "1", check="1 2 3"), "expected an answer of shape"),
        (lambda: explain.pool("1 2; 3 4", 2, mode="min"), "mode must be 'max' or 'avg'"),
        (lambda: explain.softmax("3"), "softmax needs at least 2 scores"),
        (lambda: explain.padding(0, 3), "size must be a positive int"),
        (lambda: explain.conv2d("1 2; 3 4", "1", grad="1 2"), "grad: expected dL/dZ"),
        (lambda: explain.conv2d("1 2; 3 4", "1", bias="1 2"),
         r"bias: expected one value per filter \(1\), received 2"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()


# ----------------------------------------------------------------------------- the command

def test_explain_command(capsys):
    code, out, _ = run_cli(capsys, "explain", "conv2d", "--input", "1 2 3; 4 5 6; 7 8 9",
                       "--kernel", "1 0; 0 -1", "--bias", "1", "--check", "-3 -3; -3 -4")
    assert code == 1 and "Z[0,0] = 1*1 + 2*0 + 4*0 + 5*(-1) + bias 1 = -3" in out   # wrong: 1
    assert "entry (1, 1): you have -4, correct is -3" in out
    code, out, _ = run_cli(capsys, "explain", "pool", "--input", "1 5; 3 2", "--mode", "avg")
    assert code == 0 and "Z[0,0] = (1 + 5 + 3 + 2) / 4 = 2.75" in out
    code, out, _ = run_cli(capsys, "explain", "softmax", "--input", "1 1", "--markdown")
    assert code == 0 and "**Probabilities**" in out
    code, out, _ = run_cli(capsys, "explain", "padding", "--size", "5", "--kernel-size", "3",
                       "--stride", "2")
    assert code == 0 and "TensorFlow 'SAME'" in out
    code, out, _ = run_cli(capsys, "explain", "relu", "--input", "-1 2")
    assert code == 0 and "X[0,0] = max(0, -1) = 0" in out
    code, _, err = run_cli(capsys, "explain", "conv2d", "--input", "1 2; 3", "--kernel", "1")
    assert code == 2 and "every row needs the same number of values" in err
    code, _, err = run_cli(capsys, "explain", "conv2d", "--input", "1 2", "--kernel", "1",
                       "--stride", "0")
    assert code == 2 and "expected an integer ≥ 1 or two (R,C), received '0'" in err


def test_model_explains_one_value_of_your_own_network():
    import cnnlab
    from cnnlab import models, nn
    from cnnlab.tools.viz import activations

    cnnlab.manual_seed(0)
    net = models.lenet5()
    x = np.random.default_rng(0).standard_normal((1, 28, 28)).astype(np.float32)
    e = explain.model(net, x, "3", (5, 2, 7))
    maps = {name: a for name, _, a in activations(net, x)}
    assert e.numbers["value"] == pytest.approx(float(maps["3"][0, 5, 2, 7]))
    assert e.numbers["next"] == {"layer": "4", "value": pytest.approx(max(0.0, float(
        maps["3"][0, 5, 2, 7])))}
    assert len(e.numbers["channel_sums"]) == 6                    # the filter reads 6 channels
    assert "Its input: 14×14×6, the output of layer 2 MaxPool2d(2×2)" in e.text
    assert "Window: rows 2..6, columns 7..11" in e.text
    depthwise = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.ReLU())
    e = explain.model(depthwise, np.ones((4, 6, 6), np.float32), "0", "2,0,0")
    assert len(e.numbers["channel_sums"]) == 1 and "Input channel 2," in e.text
    with pytest.raises(ValueError, match="layer '1' is not a 2-D convolution of this model"):
        explain.model(net, x, "1", (0, 0, 0))
    with pytest.raises(ValueError, match=r"at: \(0, 10, 0\) is outside the layer's output"):
        explain.model(net, x, "3", (0, 10, 0))


@pytest.mark.slow
def test_explain_model_command(tmp_path, capsys):
    from PIL import Image
    trained = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--quiet", "--out", str(trained)]) == 0
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(tmp_path / "line.png")
    capsys.readouterr()
    code, out, _ = run_cli(capsys, "explain", "model", str(trained / "model.safetensors"),
                       str(tmp_path / "line.png"), "--layer", "0", "--at", "1,5,5")
    assert code == 0 and "output channel 1, row 5, column 5" in out and "Then layer 1 ReLU" in out
