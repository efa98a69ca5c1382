"""Activations, softmax/log_softmax and F.pad: hand cases, stability, gradcheck, PyTorch, errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check_torch, close, strict_numerics

import cnnlab
from cnnlab import functional as F
from cnnlab import nn
from cnnlab.autograd import gradcheck
from cnnlab.ops import activation, activation_compiled, kernels, parallel

# ---------------------------------------------------------------- hand-worked cases
LECTURE_MAP = [[84.1362, 12.3258, 36.2923, 95.4401, 78.5729],          # the lecture's sharpened
               [188.1617, 33.9352, -19.8438, -29.4384, -28.3799],      # image, before ReLU
               [80.8206, 54.1131, 63.916, 44.8381, 15.6216],
               [121.9746, 116.2651, 133.6276, 98.9823, 78.1111],
               [196.6922, 98.347, 8.774, -31.7601, 18.4111]]
LECTURE_RELU = [[84.1362, 12.3258, 36.2923, 95.4401, 78.5729],
                [188.1617, 33.9352, 0, 0, 0],
                [80.8206, 54.1131, 63.916, 44.8381, 15.6216],
                [121.9746, 116.2651, 133.6276, 98.9823, 78.1111],
                [196.6922, 98.347, 8.774, 0, 18.4111]]


def test_relu_lecture_feature_map():
    y = F.relu(np.array(LECTURE_MAP))
    np.testing.assert_array_equal(y.data, np.array(LECTURE_RELU))
    lonely = np.array([[0, -4, 0, -3, -1], [-2, -7, -2, -4, 1], [-2, -5, -2, -5, -2],
                       [-2, -7, -2, -5, 0], [0, -4, 0, -4, 0]], dtype=np.float64)
    expected = np.zeros((5, 5))
    expected[1, 4] = 1                                     # only the "lonely 1" survives
    np.testing.assert_array_equal(nn.ReLU()(lonely).data, expected)


needs_numba = pytest.mark.skipif(not kernels.numba_installed(),
                                 reason="the compiled kernels need numba (cnnlab[fast])")


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_relu_gives_numpys_bits_for_every_special_value(dtype, rng, monkeypatch):
    """NaN kept, -0 and -inf to +0, and a gradient of dy · 0 (NaN for an infinite or NaN dy)
    where y = 0, as the NumPy path gives; over several blocks on two threads."""
    monkeypatch.setattr(parallel, "_MIN_PARALLEL", 1)
    parallel.set_num_threads(2)
    try:
        x = rng.standard_normal(200_003).astype(dtype)
        x[:7] = [np.nan, -0.0, 0.0, np.inf, -np.inf, -1e-30, 1e-30]
        dy = rng.standard_normal(x.shape).astype(dtype)
        dy[:12] = [np.inf, -np.inf, np.nan, -0.0, 0.0, 2.0, -2.0, np.inf, np.nan, -np.inf, 1, -1]
        x[7:12] = -1.0
        with kernels.forced_kernels("numpy"), np.errstate(invalid="ignore"):
            y_ref, _ = activation.relu_forward(x)
            dx_ref = activation.relu_backward(dy, y_ref)
        with kernels.forced_kernels("compiled"):
            y, cache = activation.relu_forward(x)
            dx = activation.relu_backward(dy, cache)
    finally:
        parallel.set_num_threads(parallel._default_threads())
    assert y.dtype == dx.dtype == dtype
    assert y.tobytes() == y_ref.tobytes() and dx.tobytes() == dx_ref.tobytes()


@needs_numba
def test_compiled_relu_leaves_other_arrays_to_numpy():
    """Only C-contiguous float arrays of one dtype take the loops; the rest NumPy's."""
    f32 = np.ones((2, 3), np.float32)
    assert activation_compiled.handles(f32) and activation_compiled.handles(f32, f32)
    assert not activation_compiled.handles(np.ones((2, 3), np.int64))
    assert not activation_compiled.handles(np.ones((3, 2), np.float32).T)
    assert not activation_compiled.handles(f32, np.ones((2, 3)))
    with kernels.forced_kernels("compiled"):
        y, _ = activation.relu_forward(np.array([[-1, 2], [3, -4]]).T)      # ints, strided
        dx = activation.relu_backward(np.ones((2, 2), np.float32), np.eye(2))
    np.testing.assert_array_equal(y, [[0, 3], [2, 0]])
    assert dx.dtype == np.float32 and dx.tolist() == [[1, 0], [0, 1]]


def test_relu_and_leaky_relu_gradients_at_and_around_zero():
    x = cnnlab.tensor(np.array([-2.0, 0.0, 3.0]), requires_grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])            # 0 at exactly 0
    x = cnnlab.tensor(np.array([-2.0, 0.0, 3.0]), requires_grad=True)
    y = F.leaky_relu(x, 0.1)
    y.sum().backward()
    close(y.data, [-0.2, 0.0, 3.0])
    close(x.grad, [0.1, 0.1, 1.0])                                    # slope at 0, as torch


def test_sigmoid_tanh_literal_values():
    close(F.sigmoid(np.array([0.0, np.log(3.0), -np.log(3.0)])).data, [0.5, 0.75, 0.25])
    close(F.tanh(np.array([0.0, np.log(2.0)])).data, [0.0, 0.6])      # (4-1)/(4+1)
    x = cnnlab.tensor(np.array([np.log(3.0)]), requires_grad=True)
    F.sigmoid(x).backward(np.ones(1))
    close(x.grad, [0.75 * 0.25])


def test_softmax_literal_values():
    close(F.softmax(np.array([1.0, 2.0, 3.0]), dim=0).data,
          [0.09003057, 0.24472847, 0.66524096], tol=1e-8)
    close(F.softmax(np.array([5.0, 6.0, 1.0, 2.0]), dim=0).data,      # the lecture's example
          [0.264104, 0.71791, 0.004837, 0.013149], tol=1e-5)
    close(F.log_softmax(np.array([0.0, 0.0, 0.0, 0.0]), dim=0).data, [-np.log(4.0)] * 4)
    # softmax over rows of a 2-D array: each row sums to 1 and the shift does not matter
    y = F.softmax(np.array([[1.0, 2.0, 3.0], [101.0, 102.0, 103.0]]), dim=1).data
    close(y[0], y[1])


def test_softmax_gradient_literal():
    """``dx = y ⊙ (dy − Σ dy ⊙ y)``: with ``dy = e_0`` this is ``y_0 (e_0 − y)``."""
    x = cnnlab.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = F.softmax(x, dim=0)
    y.backward(np.array([1.0, 0.0, 0.0]))
    p = np.array([0.09003057317038046, 0.24472847105479764, 0.6652409557748219])
    close(x.grad, p[0] * (np.array([1.0, 0.0, 0.0]) - p))


# ---------------------------------------------------------------- stability
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_are_finite_and_exact(dtype):
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]], dtype=dtype)
    with strict_numerics():
        for fn in (F.softmax, F.log_softmax):
            x = cnnlab.tensor(z, requires_grad=True)
            y = fn(x, dim=1)
            y.backward(np.ones_like(z))
            assert y.dtype == dtype and x.grad.dtype == dtype
            assert np.isfinite(y.data).all() and np.isfinite(x.grad).all()
        close(F.softmax(z, dim=1).data, [[1, 0, 0], [0, 0, 1]])
        close(F.log_softmax(z, dim=1).data, [[0, -2000, -1000], [-2000, -2000, 0]])
        x = cnnlab.tensor(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=dtype),
                          requires_grad=True)
        y = F.sigmoid(x)
        y.backward(np.ones(5, dtype=dtype))
        assert y.data[0] == 0.0 and y.data[-1] == 1.0 and y.data[2] == 0.5
        assert np.isfinite(x.grad).all()
        assert np.isfinite(F.tanh(x).data).all()


# ---------------------------------------------------------------- gradcheck (float64)
SHAPE = (2, 3, 4)


def _away_from_zero(rng, shape):
    """Finite differences straddling a kink would be wrong: keep |x| >= 0.1."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.1, 0.5, x)


@pytest.mark.parametrize("name,fn", [
    ("relu", F.relu),
    ("leaky_relu 0.01", F.leaky_relu),
    ("leaky_relu 0.3", lambda x: F.leaky_relu(x, 0.3)),
    ("leaky_relu -0.5", lambda x: F.leaky_relu(x, negative_slope=-0.5)),
    ("sigmoid", F.sigmoid),
    ("tanh", F.tanh),
])
def test_elementwise_gradcheck(name, fn, rng):
    result = gradcheck(fn, [_away_from_zero(rng, SHAPE)])
    assert result, f"{name}: {result}"


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_family_gradcheck(fn, dim, rng):
    result = gradcheck(lambda x: fn(x, dim), [3 * rng.standard_normal(SHAPE)])
    assert result, str(result)


# ---------------------------------------------------------------- PyTorch conformance
def _torch_activations():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    return [
        (F.relu, tf.relu), (F.leaky_relu, tf.leaky_relu),
        (lambda x: F.leaky_relu(x, 0.2), lambda x: tf.leaky_relu(x, 0.2)),
        (F.sigmoid, torch.sigmoid), (F.tanh, torch.tanh),
    ]


def test_elementwise_match_torch(rng):
    x = 4 * rng.standard_normal(SHAPE)
    x[0, 0, :2] = 0.0                                # exact zeros: both use the same convention
    for ours, theirs in _torch_activations():
        check_torch(ours, theirs, [x])


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_softmax_family_matches_torch(dim, rng):
    torch = pytest.importorskip("torch")
    x = 5 * rng.standard_normal(SHAPE)
    check_torch(lambda t: F.softmax(t, dim), lambda t: torch.softmax(t, dim), [x])
    check_torch(lambda t: F.log_softmax(t, dim), lambda t: torch.log_softmax(t, dim), [x])


@pytest.mark.parametrize("shape", [(), (4,), (2, 3), (2, 3, 4), (2, 3, 2, 2)])
def test_implicit_softmax_dim_matches_torch_legacy_rule(shape, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        ours = nn.Softmax()(x)
    with pytest.warns(UserWarning):
        theirs = torch.nn.Softmax()(torch.tensor(x))
    close(ours.data, theirs.numpy())


# ---------------------------------------------------------------- dtype and bad input
@pytest.mark.parametrize("fn", [F.relu, F.leaky_relu, F.sigmoid, F.tanh,
                                lambda x: F.softmax(x, 1), lambda x: F.log_softmax(x, 1)])
def test_float32_stays_float32(fn, rng):
    x = cnnlab.tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    y = fn(x)
    y.backward(np.ones((2, 3), dtype=np.float32))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


def test_bad_activation_arguments():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"softmax dim must be in \[-2, 1\] for an input of "
                                         r"shape \(2, 3\), received 2"):
        F.softmax(x, dim=2)
    with pytest.raises(TypeError, match="log_softmax dim must be an int, received 1.0"):
        F.log_softmax(x, dim=1.0)
    with pytest.raises(TypeError, match="relu input must hold floating-point numbers, received "
                                        "dtype int64"):
        F.relu(np.arange(3))
    with pytest.raises(TypeError, match="negative_slope must be a real number, received True"):
        F.leaky_relu(x, True)


# ---------------------------------------------------------------- nn activation layers
def test_activation_module_reprs():
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)"
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.LeakyReLU(0.2, inplace=True)) == "LeakyReLU(negative_slope=0.2, inplace=True)"
    assert repr(nn.Sigmoid()) == "Sigmoid()" and repr(nn.Tanh()) == "Tanh()"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.LogSoftmax(dim=-1)) == "LogSoftmax(dim=-1)"


def test_activation_module_reprs_match_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    for ours, theirs in [(nn.ReLU(True), tnn.ReLU(True)), (nn.LeakyReLU(0.3), tnn.LeakyReLU(0.3)),
                         (nn.Sigmoid(), tnn.Sigmoid()), (nn.Tanh(), tnn.Tanh()),
                         (nn.Softmax(0), tnn.Softmax(0)), (nn.LogSoftmax(2), tnn.LogSoftmax(2))]:
        assert repr(ours) == repr(theirs)


def test_activation_modules_compute_their_functions(rng):
    x = rng.standard_normal((2, 5))
    pairs = [(nn.ReLU(inplace=True), F.relu(x)), (nn.LeakyReLU(0.2), F.leaky_relu(x, 0.2)),
             (nn.Sigmoid(), F.sigmoid(x)), (nn.Tanh(), F.tanh(x)),
             (nn.Softmax(dim=1), F.softmax(x, 1)), (nn.LogSoftmax(dim=0), F.log_softmax(x, 0))]
    for module, expected in pairs:
        np.testing.assert_array_equal(module(x).data, expected.data)
        assert module.state_dict() == {} and list(module.parameters()) == []
    before = x.copy()
    nn.ReLU(inplace=True)(x)
    np.testing.assert_array_equal(x, before)          # inplace is accepted and ignored


def test_activation_modules_in_a_network_backpropagate(rng):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.LeakyReLU(0.1), nn.Conv2d(2, 2, 1), nn.Tanh())
    y = model(rng.standard_normal((1, 1, 5, 5)).astype(np.float32))
    y.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


# ================================================================ F.pad
def test_pad_lecture_zero_padding():
    image = np.array([[2, 0, 3, 1, 1], [1, 1, 0, 0, 2], [4, 3, 2, 0, 1], [1, 0, 5, 2, 0],
                      [0, 1, 0, 3, 0]], dtype=np.float32)
    y = F.pad(image, (1, 1, 1, 1))
    expected = np.zeros((7, 7), dtype=np.float32)
    expected[1:6, 1:6] = image
    np.testing.assert_array_equal(y.data, expected)
    assert y.dtype == np.float32


@pytest.mark.parametrize("mode,pad,expected", [
    ("constant", (2, 1), [0, 0, 1, 2, 3, 0]),
    ("reflect", (2, 1), [3, 2, 1, 2, 3, 2]),
    ("replicate", (2, 1), [1, 1, 1, 2, 3, 3]),
    ("circular", (2, 1), [2, 3, 1, 2, 3, 1]),
    ("constant", (-1, 2), [2, 3, 0, 0]),             # negative = crop, as torch
    ("reflect", (2, -1), [3, 2, 1, 2]),
    ("replicate", (-2, 1), [3, 3]),
])
def test_pad_1d_literals(mode, pad, expected):
    np.testing.assert_array_equal(F.pad(np.array([[1.0, 2.0, 3.0]]), pad, mode).data,
                                  [expected])


def test_pad_pairs_run_from_the_last_axis():
    y = F.pad(np.ones((1, 2, 3)), (1, 0, 0, 2), value=7.0).data       # (left, right, top, bottom)
    assert y.shape == (1, 4, 4)
    np.testing.assert_array_equal(y[0], [[7, 1, 1, 1], [7, 1, 1, 1], [7, 7, 7, 7], [7, 7, 7, 7]])


def test_pad_gradient_literal_reflect():
    """Each border copy sends its gradient back to the pixel it copies."""
    x = cnnlab.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    F.pad(x.reshape(1, 3), (2, 1), mode="reflect").backward(np.array([[1.0, 10, 100, 1e3, 1e4,
                                                                       1e5]]))
    # padded = [x2, x1, x0, x1, x2, x1]
    close(x.grad, [100.0, 10 + 1000 + 1e5, 1 + 1e4])


PAD_MODES = ("constant", "reflect", "replicate", "circular")
# asymmetric pads on 1, 2 and 3 padded axes (reflect needs pad < size, circular pad <= size)
PAD_CASES = [
    ((2, 3, 5), (1, 3)),
    ((3, 6), (0, 2)),
    ((2, 2, 4, 5), (2, 1, 0, 3)),
    ((1, 2, 4, 3, 5), (1, 0, 2, 1, 0, 2)),
    ((2, 4, 3), (2, 0, 1, 2, 0, 1)),                  # all axes of an unbatched 3-D input
]
CROP_CASES = [((2, 3, 5), (-1, 3)), ((2, 2, 4, 5), (2, -2, -1, 1))]


def _pad_grid():
    cases = [(shape, pad, mode) for shape, pad in PAD_CASES for mode in PAD_MODES]
    return cases + [(shape, pad, mode) for shape, pad in CROP_CASES
                    for mode in ("constant", "reflect", "replicate")]


@pytest.mark.parametrize("shape,pad,mode", _pad_grid())
def test_pad_gradcheck(shape, pad, mode, rng):
    value = 0.5 if mode == "constant" else None
    result = gradcheck(lambda x: F.pad(x, pad, mode, value), [rng.standard_normal(shape)])
    assert result, str(result)


@pytest.mark.parametrize("shape,pad,mode", _pad_grid() + [((1, 1, 5), (2, -3), "circular")])
def test_pad_matches_torch(shape, pad, mode, rng):
    torch = pytest.importorskip("torch")
    value = 0.5 if mode == "constant" else None
    x = rng.standard_normal(shape)
    batch = len(pad) // 2 == len(shape)      # torch's other modes need a leading axis: add one
    check_torch(lambda t: F.pad(t, pad, mode, value),
                lambda t: torch.nn.functional.pad(t[None] if batch else t, pad, mode, value)
                [0 if batch else slice(None)], [x])


def test_pad_result_never_aliases_input():
    x = np.ones((2, 3))
    y = F.pad(x, (0, 0))
    y.data[0, 0] = 5.0
    assert x[0, 0] == 1.0


@pytest.mark.parametrize("args,error,message", [
    (((1, 2, 3),), ValueError, r"pad must hold \(before, after\) pairs, an even number of ints,"
                               r" received 3"),
    (((1, 1, 1, 1, 1, 1),), ValueError, r"pads 3 axes but the input has only 2 \(shape \(2, 3\)\)"),
    ((3,), TypeError, "pad must be a sequence of ints"),
    (((1.0, 1),), TypeError, "pad must be a sequence of ints"),
    (((3, 0), "reflect"), ValueError, r"reflect padding must be smaller than the input size, "
                                      r"received padding \(3, 0\) for an axis of size 3"),
    (((0, 4), "circular"), ValueError, "circular padding must not exceed the input size"),
    (((1, 1), "wrap"), ValueError, "pad mode must be one of 'constant', 'reflect', 'replicate', "
                                   "'circular', received 'wrap'"),
    (((1, 1), "reflect", 2.0), ValueError, "pad mode 'reflect' takes no fill value, received "
                                           "value=2.0"),
    (((-3, -1),), ValueError, r"pad \(-3, -1\) crops 4 entries from an axis of size 3"),
    (((-2, 3), "circular"), ValueError, r"received padding \(0, 3\) for an axis of size 1 left "
                                        r"after cropping \(input shape \(2, 3\)\)"),
])
def test_pad_bad_arguments(args, error, message):
    with pytest.raises(error, match=message):
        F.pad(np.zeros((2, 3)), *args)
