"""The one shape module: sizes against a counting definition, TensorFlow/PyTorch padding rules."""

import itertools
import math

import pytest
from reference import output_size_table

from cnnlab.ops.shapes import (
    conv_output_size,
    conv_transpose_output_size,
    padding_pairs,
    pool_output_size,
    resolve_padding,
    same_padding,
)

GRID = list(itertools.product(range(1, 12), range(1, 6), range(1, 4), range(0, 3), range(1, 3)))


@pytest.mark.parametrize("n,k,s,p,d", GRID)
def test_conv_output_size_counts_window_positions(n, k, s, p, d):
    if n + 2 * p < d * (k - 1) + 1:
        with pytest.raises(ValueError, match="larger than the padded input"):
            conv_output_size(n, k, s, p, d)
    else:
        assert conv_output_size(n, k, s, p, d) == output_size_table(n, k, s, p, p, d)


@pytest.mark.parametrize("n,k,s,d", [(n, k, s, d) for n, k, s, _, d in GRID])
def test_same_padding_gives_ceil_n_over_s(n, k, s, d):
    before, after = same_padding(n, k, s, d)
    assert before <= after <= before + 1
    assert conv_output_size(n, k, s, (before, after), d) == math.ceil(n / s)


@pytest.mark.parametrize("n,k,s,expected", [
    (5, 3, 1, (1, 1)),       # the lecture's 'same' 3×3
    (6, 3, 2, (0, 1)),       # TensorFlow: odd pixel at the end
    (7, 3, 2, (1, 1)),
    (28, 5, 1, (2, 2)),      # LeNet on MNIST
    (4, 2, 1, (0, 1)),       # even kernel: extra pixel at the end, as PyTorch's 'same'
    (224, 7, 2, (2, 3)),     # ResNet stem under TF rules
])
def test_same_padding_literal_cases(n, k, s, expected):
    assert same_padding(n, k, s) == expected


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_pytorch_same_matches_tensorflow_rule_for_stride_one():
    torch = pytest.importorskip("torch")
    for n, k, d in itertools.product(range(3, 9), range(1, 6), range(1, 3)):
        x = torch.zeros(1, 1, n)
        x[0, 0, 0] = 1.0           # locate the first output's window start
        w = torch.zeros(1, 1, k)
        w[0, 0, 0] = 1.0
        y = torch.nn.functional.conv1d(x, w, padding="same", dilation=d)
        before, after = same_padding(n, k, 1, d)
        if before >= n:
            continue
        assert y.shape[-1] == n
        # Output i reads input i - before at kernel tap 0: the 1 lands at output index `before`.
        assert int(torch.nonzero(y[0, 0])[0]) == before, (n, k, d)
        assert before + after == d * (k - 1)


@pytest.mark.parametrize("padding,expected", [
    (1, ((1, 1), (1, 1))),
    ((1, 2), ((1, 1), (2, 2))),
    (((0, 1), (2, 3)), ((0, 1), (2, 3))),
    ("valid", ((0, 0), (0, 0))),
    ("same", ((1, 1), (2, 2))),
])
def test_resolve_padding_forms(padding, expected):
    assert resolve_padding(padding, (8, 8), (3, 5), (1, 1), (1, 1)) == expected


@pytest.mark.parametrize("bad,error,match", [
    ("full", ValueError, "'valid' or 'same', received 'full'"),
    ((1, 2, 3), TypeError, r"padding must be an int, a tuple of 2 ints"),
    (-1, ValueError, "padding must be non-negative, received"),
    (1.5, TypeError, "received 1.5"),
])
def test_resolve_padding_rejects(bad, error, match):
    with pytest.raises(error, match=match):
        resolve_padding(bad, (8, 8), (3, 3), (1, 1), (1, 1))


def test_padding_pairs_rejects_negative_pair():
    with pytest.raises(ValueError, match=r"padding must be non-negative, received \(\(0, -1\),\)"):
        padding_pairs(((0, -1),), 1)


@pytest.mark.parametrize("n,k,s,p,d", GRID)
def test_pool_output_size_matches_torch(n, k, s, p, d):
    torch = pytest.importorskip("torch")
    for ceil_mode in (False, True):
        try:
            y = torch.nn.functional.max_pool1d(torch.zeros(1, 1, n), k, s, p, d,
                                               ceil_mode=ceil_mode)
        except RuntimeError:
            continue                                # torch refuses this configuration
        assert pool_output_size(n, k, s, p, d, ceil_mode) == y.shape[-1], (n, k, s, p, d)


def test_pool_ceil_mode_drops_window_starting_in_padding():
    # n=5, k=2, s=2, p=1: ceil((5+2-2)/2)+1 = 4, but window 3 would start at 6 >= n + p.
    assert pool_output_size(5, 2, 2, 1, ceil_mode=True) == 3
    assert pool_output_size(5, 2, 2, 0, ceil_mode=True) == 3
    assert pool_output_size(5, 2, 2, 0, ceil_mode=False) == 2


@pytest.mark.parametrize("n,k,s,p,d,op", [(3, 3, 2, 1, 1, 1), (4, 4, 2, 1, 1, 0),
                                          (5, 3, 1, 0, 2, 0), (2, 2, 3, 0, 1, 2)])
def test_conv_transpose_output_size_inverts_conv(n, k, s, p, d, op):
    size = conv_transpose_output_size(n, k, s, p, d, op)
    assert size == (n - 1) * s - 2 * p + d * (k - 1) + op + 1
    assert conv_output_size(size, k, s, p, d) == n


def test_conv_transpose_output_size_rejects_non_positive():
    with pytest.raises(ValueError, match="non-positive output size"):
        conv_transpose_output_size(1, 1, 1, 2)
