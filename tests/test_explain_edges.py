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
