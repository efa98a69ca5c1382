"""explain's worked arithmetic in the cases the mutation test found untested (tests/MUTATION.md).

One bias value shared by several filters; the worked ``dK[u,v]`` lines of the gradients;
pooling with non-square outputs and with outputs larger than the "show all" limit (with and
without ``at``); the entries of ``check`` that name their filter or channel.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.tools import explain
from cnnlab.tools.matrices import format_number


def worked_lines(e: explain.Explanation, prefix: str) -> list[str]:
    return [line.strip() for line in e.lines if line.strip().startswith(prefix)]


# ----------------------------------------------------------------------------- bias
@pytest.mark.parametrize("bias", [10, 10.0, "10", [10], np.array([10.0])])
def test_one_bias_value_is_shared_by_every_filter(bias):
    e = explain.conv2d("1 2; 3 4", ["1", "2"], bias)                # two 1×1 filters
    assert e.numbers["bias"] == [10.0, 10.0]
    assert e.numbers["output"] == [[[11, 12], [13, 14]], [[12, 14], [16, 18]]]
    assert "Bias: 10, 10" in e.text
    assert "Z0[0,0] = 1*1 + bias 10 = 11" in e.text
    assert "Z1[1,1] = 4*2 + bias 10 = 18" in e.text
    assert "2 filters 1×1" in e.text


def test_one_bias_per_filter_and_a_wrong_count():
    e = explain.conv2d("1 2; 3 4", ["1", "2"], "1 -1")
    assert e.numbers["bias"] == [1.0, -1.0]
    assert "Z1[0,1] = 2*2 + bias -1 = 3" in e.text
    with pytest.raises(ValueError, match=r"bias: expected one value per filter \(2\), "
                                         r"received 3\."):
        explain.conv2d("1 2; 3 4", ["1", "2"], "1 2 3")


def test_a_zero_bias_is_not_written_out():
    e = explain.conv2d("1 2; 3 4", ["1", "2"], 0)
    assert "Z1[0,0] = 1*2 = 2" in e.text and "bias 0 =" not in e.text
    assert "Bias: 0, 0" in e.text


# ----------------------------------------------------------------------------- gradients
def test_the_worked_kernel_gradient_lines():
    e = explain.conv2d("1 2 3; 4 5 6; 7 8 9", "1 0; 0 -1", grad="1 -1; 2 0")
    assert worked_lines(e, "dK[") == [
        "dK[0,0] = 1*1 + 2*(-1) + 4*2 + 5*0 = 7",
        "dK[0,1] = 2*1 + 3*(-1) + 5*2 + 6*0 = 9",
        "dK[1,0] = 4*1 + 5*(-1) + 7*2 + 8*0 = 13",
        "dK[1,1] = 5*1 + 6*(-1) + 8*2 + 9*0 = 15",
    ]
    assert e.numbers["grad_kernel"] == [[[7, 9], [13, 15]]]              # (C, kh, kw)
    assert "dL/dB = Σ dL/dZ = 1 + (-1) + 2 + 0 = 2" in e.text
    assert e.numbers["grad_bias"] == 2
    # dX = dZ fully convolved with K: dX[p,q] = dZ[p,q]·1 + dZ[p-1,q-1]·(-1)
    assert e.numbers["grad_input"] == [[[1, -1, 0], [2, -1, 1], [0, -2, 0]]]
    assert e.numbers["rot180_kernel"] == [[-1, 0], [0, 1]]
    assert "rot180(K) =" in e.text and "dL/dX =" in e.text


def test_the_worked_kernel_gradient_reads_the_padded_input():
    x, dz = np.array([[1.0, -2.0], [3.0, 4.0]]), np.arange(9.0).reshape(3, 3) - 4
    e = explain.conv2d(x, "1 2; 3 4", grad=dz, padding=1)
    xp = np.pad(x, 1)
    lines = worked_lines(e, "dK[")
    assert len(lines) == 4
    for (u, v), line in zip(np.ndindex(2, 2), lines):
        window = xp[u:u + 3, v:v + 3]
        terms = " + ".join(f"{explain._signed(a)}*{explain._signed(g)}"
                           for a, g in zip(window.ravel(), dz.ravel()))
        value = (window * dz).sum()
        assert line == f"dK[{u},{v}] = {terms} = {format_number(value)}"
        assert e.numbers["grad_kernel"][0][u][v] == value


def test_the_worked_kernel_gradient_of_a_non_square_output():
    e = explain.conv2d("1 2 3 4; 5 6 7 8", "1 -1", grad="1 0 2; -1 1 0")        # Z is 2×3
    assert worked_lines(e, "dK[") == ["dK[0,0] = 1*1 + 2*0 + 3*2 + 5*(-1) + 6*1 + 7*0 = 8",
                                      "dK[0,1] = 2*1 + 3*0 + 4*2 + 6*(-1) + 7*1 + 8*0 = 11"]
    assert e.numbers["grad_kernel"] == [[[8, 11]]]


@pytest.mark.parametrize("options", [{"stride": 2}, {"dilation": 2}, {"flip": True}])
def test_the_kernel_gradient_is_worked_entry_by_entry_only_for_the_plain_case(options):
    x = np.arange(25.0).reshape(5, 5)
    shape = explain.conv2d(x, "1 0; 0 1", **options).numbers["output"]
    grad = np.ones(np.array(shape).shape[1:])
    e = explain.conv2d(x, "1 0; 0 1", grad=grad, **options)
    assert worked_lines(e, "dK[") == [] and "dL/dK = X ⋆ dL/dZ" in e.text
    assert ("then rotated 180°" in e.text) == bool(options.get("flip"))


def test_several_channels_get_the_gradient_matrix_but_no_worked_lines():
    e = explain.conv2d("1 2; 3 4 | 5 6; 7 8", "1 | 2", grad="1 1; 1 1")
    assert worked_lines(e, "dK[") == []
    assert e.numbers["grad_kernel"] == [[[10]], [[26]]]
    assert e.numbers["grad_input"] == [[[1, 1], [1, 1]], [[2, 2], [2, 2]]]


def test_gradient_mistakes():
    with pytest.raises(ValueError, match="grad: the gradients are worked out for one filter; "
                                         "received 2"):
        explain.conv2d("1 2; 3 4", ["1", "2"], grad="1 1; 1 1")
    with pytest.raises(ValueError, match=r"grad: expected dL/dZ of the output's shape 2×2, "
                                         r"received 2×2×2"):
        explain.conv2d("1 2; 3 4", "1", grad="1 1; 1 1 | 1 1; 1 1")
    with pytest.raises(ValueError, match=r"received 1×2×3"):
        explain.conv2d("1 2; 3 4", "1", grad="1 1 1; 1 1 1")


# ----------------------------------------------------------------------------- pooling
RECT = "1 5 2 0 3; 4 2 8 1 1; 0 6 3 7 2"                              # 3×5


def test_max_pool_with_a_non_square_output_works_out_every_entry():
    e = explain.pool(RECT, 2, stride=1)
    assert e.numbers["output"] == [[[5, 8, 8, 3], [6, 8, 8, 7]]]
    assert worked_lines(e, "Z[") == [
        "Z[0,0] = max(1, 5, 4, 2) = 5", "Z[0,1] = max(5, 2, 2, 8) = 8",
        "Z[0,2] = max(2, 0, 8, 1) = 8", "Z[0,3] = max(0, 3, 1, 1) = 3",
        "Z[1,0] = max(4, 2, 0, 6) = 6", "Z[1,1] = max(2, 8, 6, 3) = 8",
        "Z[1,2] = max(8, 1, 3, 7) = 8", "Z[1,3] = max(1, 1, 7, 2) = 7",
    ]
    assert "  rows:     floor((3 + 2·0 - 2) / 1) + 1 = 2" in e.text
    assert "  columns:  floor((5 + 2·0 - 2) / 1) + 1 = 4" in e.text
    assert "Output Z (2×4):" in e.text and "showing" not in e.text
    assert "max pooling: input 3×5, window 2, stride 1, padding 0" in e.text


def test_average_pool_with_a_non_square_window_and_stride():
    e = explain.pool(RECT, (1, 2), stride=(1, 2), mode="avg")
    assert e.numbers["output"] == [[[3, 1], [3, 4.5], [3, 5]]]
    assert e.numbers["size"] == [1, 2] and e.numbers["stride"] == [1, 2]
    assert worked_lines(e, "Z[1,")[1] == "Z[1,1] = (8 + 1) / 2 = 4.5"
    assert "avg pooling: input 3×5, window 1×2, stride 1×2, padding 0" in e.text


def test_average_pool_with_padding_counts_the_zeros():
    e = explain.pool("-4 2; 6 8", 2, stride=1, padding=(1, 0), mode="avg")
    assert e.numbers["padding"] == [1, 0]
    assert worked_lines(e, "Z[0,0]") == ["Z[0,0] = (0 + 0 + (-4) + 2) / 4 = -0.5"]
    assert "Padded input (4×2):" in e.text


def test_the_show_all_limit_is_36_entries():
    assert explain.SMALL == 36
    e = explain.pool(np.arange(36.0).reshape(6, 6), 1)
    assert len(worked_lines(e, "Z[")) == 36 and "showing" not in e.text
    e = explain.conv2d(np.arange(49.0).reshape(7, 7), "1 0; 0 1")        # 6×6 outputs
    assert len(worked_lines(e, "Z[")) == 36 and "showing" not in e.text
    e = explain.conv2d(np.arange(64.0).reshape(8, 8), "1 0; 0 1")        # 7×7
    assert worked_lines(e, "Z[") == ["Z[0,0] = 0*1 + 1*0 + 8*0 + 9*1 = 9"]
    assert ("(49 entries: showing Z[0,0]; pick another with at=(row, column), "
            "--at R,C on the command line)") in e.text


@pytest.mark.parametrize("mode, line", [("max", "Z[3,5] = max(32, 33, 41, 42) = 42"),
                                        ("avg", "Z[3,5] = (32 + 33 + 41 + 42) / 4 = 37")])
def test_a_large_pooling_output_works_out_the_entry_asked_for(mode, line):
    x = np.arange(81.0).reshape(9, 9)                                    # 8×8 outputs
    e = explain.pool(x, 2, stride=1, mode=mode, at=(3, 5))
    assert worked_lines(e, "Z[") == [line]
    assert ("(64 entries: showing Z[3,5]; pick another with at=(row, column), "
            "--at R,C on the command line)") in e.text
    assert np.array(e.numbers["output"]).shape == (1, 8, 8)
    assert explain.pool(x, 2, stride=1, mode=mode, at="3, 5").text == e.text


def test_a_large_non_square_pooling_output_without_at_shows_the_first_entry():
    x = np.arange(63.0).reshape(7, 9)
    e = explain.pool(x, 1)
    assert worked_lines(e, "Z[") == ["Z[0,0] = max(0) = 0"]
    assert "(63 entries: showing Z[0,0];" in e.text and "Output Z (7×9):" in e.text
    assert worked_lines(explain.pool(x, 1, at=(6, 8)), "Z[") == ["Z[6,8] = max(62) = 62"]


def test_a_large_pooling_output_of_several_channels():
    x = np.arange(72.0).reshape(2, 6, 6)
    e = explain.pool(x, 1, at=(1, 2, 3))
    assert worked_lines(e, "Z1[") == ["Z1[2,3] = max(51) = 51"]
    assert "(72 entries: showing Z1[2,3];" in e.text
    assert worked_lines(explain.pool(x, 1), "Z0[") == ["Z0[0,0] = max(0) = 0"]


@pytest.mark.parametrize("call, message", [
    (lambda: explain.pool(np.zeros((9, 9)), 1, at=(9, 0)),
     r"at: \(9, 0\) is outside the output \(9×9\)\."),
    (lambda: explain.pool(np.zeros((9, 9)), 1, at=(-1, -1)),
     r"at: \(-1, -1\) is outside the output \(9×9\)\."),
    (lambda: explain.pool(np.zeros((2, 6, 6)), 1, at=(2, 0, 0)),
     r"at: \(2, 0, 0\) is outside the output \(6×6, 2 channels\)\."),
    (lambda: explain.conv2d(np.zeros((8, 8)), np.ones((2, 1, 2, 2)), at=(0, 7, 0)),
     r"at: \(0, 7, 0\) is outside the output \(7×7, 2 filters\)\."),
    (lambda: explain.pool("1 2; 3 4", 2, padding=(1, True)),
     r"padding must be a non-negative int or a pair of them, received \(1, True\)\."),
    (lambda: explain.pool("1 2; 3 4", 2, padding=True), "padding must be a non-negative int"),
    (lambda: explain.pool("1 2; 3 4", 2, padding=-1), "padding must be a non-negative int"),
    (lambda: explain.pool("1 2; 3 4", 2, padding=(1, 2, 3)), "padding must be"),
    (lambda: explain.pool("1 2; 3 4", 2, stride=(1, True)),
     r"stride must be a positive int or a pair of them, received \(1, True\)\."),
    (lambda: explain.pool("1 2; 3 4", (2, 0)), r"size must be a positive int"),
    (lambda: explain.conv2d("1 2; 3 4", "1", dilation=True), "dilation must be a positive"),
])
def test_pooling_and_position_mistakes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------- check
def test_check_names_the_filter_when_there_are_several():
    e = explain.conv2d("1 2; 3 4", ["1", "2"], check="1 2; 3 4 | 2 4; 6 0")
    assert [w["index"] for w in e.wrong] == [[1, 1, 1]]
    assert "entry (1, 1, 1): you have 0, correct is 8" in e.text
    assert "Check: 7 of 8 entries right:" in e.text
    assert "    Z1[1,1] = 4*2 = 8" in e.text


def test_check_names_the_channel_of_pooling_and_relu():
    e = explain.pool("1 2; 3 4 | 5 6; 7 8", 1, check="1 2; 3 4 | 5 6; 7 0")
    assert "entry (1, 1, 1): you have 0, correct is 8" in e.text
    assert "    Z1[1,1] = max(8) = 8" in e.text
    e = explain.relu("-1 2 | 3 -4", check="0 2 | 3 4")
    assert [w["index"] for w in e.wrong] == [[1, 0, 1]]
    assert "entry (1, 0, 1): you have 4, correct is 0" in e.text
    one = explain.pool("1 2; 3 4", 1, check="1 2; 3 0")
    assert "entry (1, 1): you have 0, correct is 4" in one.text
    assert "Check: 3 of 4 entries right:" in one.text


def test_a_right_answer_and_a_rounded_one():
    assert explain.pool("1 2; 3 4", 2, mode="avg", check="2.5").wrong == []
    assert "Check: 1 of 1 entries right." in explain.pool("1 2; 3 4", 2, check="4").text
    rounded = explain.pool("1 2; 3 5", 2, mode="avg", check="2.8")           # 2.75 to 1 decimal
    assert rounded.wrong == []
    assert explain.pool("1 2; 3 5", 2, mode="avg", check="2.6").wrong[0]["correct"] == 2.75
