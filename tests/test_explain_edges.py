"""explain's edges that the second mutation run found untested (tests/MUTATION.md)."""

from __future__ import annotations

import pytest

from cnnlab.tools import explain


def test_softmax_of_huge_scores_divides_the_shifted_exponentials():
    """exp(1000) overflows: the text shows exp(z - max z) and no raw exponentials."""
    e = explain.softmax("1000 999")
    assert "Exponentials:" not in e.text
    assert "  p0 = 1 / 1.3679 = 0.731059" in e.lines
    assert "  p1 = 0.3679 / 1.3679 = 0.268941" in e.lines
    assert e.numbers["probabilities"] == pytest.approx([0.731059, 0.268941], abs=1e-6)


def test_padding_warns_when_the_same_schemes_give_different_output_sizes():
    e = explain.padding(7, 4)
    assert e.kind == "padding"
    assert e.lines[-1] == ("Warning: and their output sizes differ: TensorFlow 'SAME' 7, "
                           "JAX 'SAME_LOWER' 7, PyTorch p = d·(k-1)//2 6, "
                           "PyTorch padding='same' 7.")
    assert "output sizes differ" not in explain.padding(8, 4, stride=2).text


@pytest.mark.parametrize("call", [lambda: explain.conv2d("1 2; 3", "1"),
                                  lambda: explain.pool("1 2; 3"),
                                  lambda: explain.relu("1 2; 3")])
def test_a_ragged_matrix_is_named_in_the_error(call):
    with pytest.raises(ValueError, match=r"^input: every row needs the same number of values, "
                                         r"received rows of 2, 1 in '1 2; 3'\.$"):
        call()
    with pytest.raises(ValueError, match=r"^kernel: every row needs"):
        explain.conv2d("1 2; 3 4", "1 2; 3")


def test_padding_names_each_scheme_that_pads_differently():
    assert explain.padding(7, 4).lines[-2] == (
        "Warning: these 'same' schemes pad differently here: TensorFlow 'SAME' 1+2; "
        "JAX 'SAME_LOWER' 2+1; PyTorch p = d·(k-1)//2 1+1; PyTorch padding='same' 1+2. "
        "A model moved between frameworks shifts its outputs by a pixel.")


def test_one_value_of_a_dilated_convolution_reads_every_other_pixel():
    import numpy as np

    from cnnlab import nn
    net = nn.Sequential(nn.Conv2d(1, 1, 2, dilation=2, bias=False))
    net[0].weight.data[...] = np.array([[[[1, 2], [3, 4]]]], np.float32)
    x = np.arange(25, dtype=np.float32).reshape(1, 5, 5)
    e = explain.model(net, x, "0", (0, 1, 2))
    assert "Window: rows 1..3, columns 2..4 of the input padded by 0,0 (rows) and 0,0 " \
           "(columns)" in e.lines
    assert "  7*1 + 9*2 + 17*3 + 19*4 = 152.0000" in e.lines
    assert e.numbers["value"] == 152 and e.numbers["bias"] == 0
