"""Pooling in the forms ONNX models use: per-side padding of any size, 'same' (TensorFlow's
rule) and dilated average pooling — against a loop reference, by gradcheck, and with PyTorch's
own forms and errors unchanged."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cnnlab import functional as F
from cnnlab import nn
from cnnlab.autograd import gradcheck
from cnnlab.ops.shapes import same_padding

MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def loop_pool(x, kind, kernel, stride, pads, dilation, ceil_mode=False, count_include_pad=True):
    """Window by window: positions ``o*s - p_b + j*d``; padding never wins a max; an average
    divides by the positions inside ``[-p_b, n + p_e)`` (or the input) and counts the rest as 0."""
    spatial = x.shape[2:]
    outs = []
    for n, k, s, (pb, pe), d in zip(spatial, kernel, stride, pads, dilation):
        span = d * (k - 1) + 1
        if ceil_mode:
            o = math.ceil((n + pb + pe - span) / s) + 1
            o -= 1 if o > 1 and (o - 1) * s >= n + pb else 0
        else:
            o = (n + pb + pe - span) // s + 1
        outs.append(o)
    y = np.zeros(x.shape[:2] + tuple(outs))
    for n_, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for pos in itertools.product(*(range(o) for o in outs)):
            values, counted = [], 1
            for axis, (o, k, s, (pb, pe), d) in enumerate(zip(pos, kernel, stride, pads,
                                                              dilation)):
                low, high = (-pb, spatial[axis] + pe) if count_include_pad else (0, spatial[axis])
                counted *= sum(1 for j in range(k) if low <= o * s - pb + j * d < high)
            for js in itertools.product(*(range(k) for k in kernel)):
                src = tuple(o * s - pb + j * d for o, s, (pb, _), j, d in
                            zip(pos, stride, pads, js, dilation))
                if all(0 <= i < m for i, m in zip(src, spatial)):
                    values.append(x[(n_, c, *src)])
            if kind == "max":
                y[(n_, c, *pos)] = max(values) if values else -np.inf
            else:
                y[(n_, c, *pos)] = sum(values) / counted if counted else 0.0
    return y


# (nd, spatial, kernel, stride, per-side pads, dilation, ceil_mode)
CASES = [
    (1, (9,), (3,), (2,), ((0, 2),), (1,), False),
    (1, (8,), (2,), (1,), ((3, 0),), (2,), True),
    (2, (6, 7), (3, 2), (2, 1), ((1, 0), (0, 1)), (1, 1), False),
    (2, (5, 5), (2, 2), (1, 1), ((2, 2), (2, 2)), (1, 1), False),       # pads = kernel
    (2, (7, 6), (3, 3), (2, 2), ((1, 1), (1, 1)), (2, 2), True),
    (2, (6, 6), (2, 3), (3, 2), ((0, 3), (2, 1)), (2, 1), True),
    (3, (4, 5, 4), (2, 2, 2), (1, 2, 1), ((0, 1), (1, 2), (1, 0)), (1, 1, 2), False),
]


@pytest.mark.parametrize("nd, spatial, kernel, stride, pads, dilation, ceil", CASES)
def test_per_side_padding_and_dilation_match_the_loop(nd, spatial, kernel, stride, pads,
                                                       dilation, ceil):
    x = np.random.default_rng(nd).normal(size=(2, 2, *spatial))
    got = MAX[nd](x, kernel, stride, pads, dilation, ceil).data
    np.testing.assert_allclose(got, loop_pool(x, "max", kernel, stride, pads, dilation, ceil))
    for cip in (True, False):
        got = AVG[nd](x, kernel, stride, pads, ceil, cip, dilation=dilation).data
        expected = loop_pool(x, "avg", kernel, stride, pads, dilation, ceil, cip)
        np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("nd, spatial, kernel, stride, pads, dilation, ceil", CASES)
def test_per_side_padding_and_dilation_gradcheck(nd, spatial, kernel, stride, pads, dilation,
                                                 ceil):
    rng = np.random.default_rng(10 + nd)
    x = (rng.permutation(math.prod(spatial)).reshape(1, 1, *spatial) - 5) * 0.1   # no ties
    if np.isfinite(MAX[nd](x, kernel, stride, pads, dilation, ceil).data).all():
        # (a window wholly in padding has maximum -inf, where differences are undefined)
        result = gradcheck(lambda t: MAX[nd](t, kernel, stride, pads, dilation, ceil), [x])
        assert result, str(result)
    for cip in (True, False):
        result = gradcheck(
            lambda t, c=cip: AVG[nd](t, kernel, stride, pads, ceil, c, dilation=dilation), [x])
        assert result, str(result)


@pytest.mark.parametrize("n, k, s, d", [(7, 3, 2, 1), (6, 3, 2, 1), (8, 2, 3, 2), (5, 4, 1, 1)])
def test_same_is_tensorflows_rule(n, k, s, d):
    x = np.random.default_rng(n).normal(size=(1, 2, n, n + 1))
    for pool in (lambda v, p: F.max_pool2d(v, k, s, p, d),
                 lambda v, p: F.avg_pool2d(v, k, s, p, count_include_pad=False, dilation=d)):
        same = pool(x, "same").data
        assert same.shape[2:] == (math.ceil(n / s), math.ceil((n + 1) / s))
        pairs = (same_padding(n, k, s, d), same_padding(n + 1, k, s, d))
        np.testing.assert_array_equal(same, pool(x, pairs).data)
    assert F.max_pool2d(x, k, s, "valid", d).shape == F.max_pool2d(x, k, s, 0, d).shape


def test_pytorchs_forms_and_errors_stay():
    x = np.zeros((1, 1, 6, 6))
    with pytest.raises(ValueError, match=r"padding must be at most half of kernel_size"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"padding must be at most half of kernel_size"):
        nn.AvgPool2d(3, padding=2)
    with pytest.raises(TypeError, match=r"takes from 2 to 7 positional arguments but 8"):
        F.avg_pool2d(x, 2, 2, 0, False, True, None, 2)              # keyword only
    with pytest.raises(ValueError, match=r"max_pool2d: padding must be one of 'valid', 'same', "
                                         r"received 'full'"):
        F.max_pool2d(x, 2, padding="full")
    with pytest.raises(ValueError, match=r"padding must be non-negative"):
        F.avg_pool2d(x, 2, padding=((0, -1), (0, 0)))


def test_layers_take_the_onnx_forms():
    x = np.random.default_rng(0).normal(size=(2, 3, 7, 7)).astype(np.float32)
    layer = nn.MaxPool2d(3, 2, padding="same")
    assert layer(x).shape == (2, 3, 4, 4)
    avg = nn.AvgPool2d(3, 1, padding=((0, 2), (3, 0)), dilation=2, count_include_pad=False)
    assert avg(x).shape == (2, 3, 5, 6) and "dilation=2" in repr(avg)
    assert nn.AvgPool1d(2, 1, dilation=3)(x[:, :, 0]).shape == (2, 3, 4)
