"""Batch normalisation: loop reference, hand-worked cases, float64 gradcheck, PyTorch conformance
(forward, every gradient and the running statistics over several steps), layers and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab import functional as F
from cnnlab import nn
from cnnlab.autograd import gradcheck
from cnnlab.ops import kernels
from cnnlab.ops import norm as norm_ops

SHAPES = [(5, 3), (4, 2, 6), (2, 3, 4, 3), (2, 2, 3, 2, 2)]    # (N, C), 1-D, 2-D, 3-D


def batch_norm_loop(x, weight, bias, eps):
    """Slow reference, one channel at a time: normalise with the biased batch variance."""
    y = np.empty_like(x)
    means, unbiased = [], []
    for c in range(x.shape[1]):
        values = x[:, c].reshape(-1).tolist()
        m = len(values)
        mean = sum(values) / m
        var = sum((v - mean) ** 2 for v in values) / m
        gamma = 1.0 if weight is None else weight[c]
        beta = 0.0 if bias is None else bias[c]
        y[:, c] = gamma * (x[:, c] - mean) / np.sqrt(var + eps) + beta
        means.append(mean)
        unbiased.append(var * m / (m - 1))
    return y, np.array(means), np.array(unbiased)


def _params(rng, c, affine):
    if not affine:
        return None, None
    return rng.uniform(0.5, 1.5, c), rng.standard_normal(c)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_training_forward_and_running_update_match_loop_reference(shape, affine, rng):
    x = rng.standard_normal(shape) * 3 + 1
    weight, bias = _params(rng, shape[1], affine)
    running_mean, running_var = rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1])
    old_mean, old_var = running_mean.copy(), running_var.copy()
    y = F.batch_norm(x, running_mean, running_var, weight, bias, training=True, momentum=0.3,
                     eps=1e-3)
    expected, mean, unbiased = batch_norm_loop(x, weight, bias, 1e-3)
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(running_mean, 0.7 * old_mean + 0.3 * mean, rtol=1e-12)
    np.testing.assert_allclose(running_var, 0.7 * old_var + 0.3 * unbiased, rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_eval_uses_running_statistics_and_updates_nothing(shape, rng):
    x = rng.standard_normal(shape)
    c = shape[1]
    weight, bias = _params(rng, c, True)
    running_mean, running_var = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    saved = running_mean.copy(), running_var.copy()
    y = F.batch_norm(x, running_mean, running_var, weight, bias, training=False, eps=1e-5)
    b = (1, c) + (1,) * (len(shape) - 2)
    expected = ((x - running_mean.reshape(b)) / np.sqrt(running_var.reshape(b) + 1e-5)
                * weight.reshape(b) + bias.reshape(b))
    np.testing.assert_allclose(y.data, expected, rtol=1e-12)
    np.testing.assert_array_equal(running_mean, saved[0])
    np.testing.assert_array_equal(running_var, saved[1])


def test_hand_worked_forward_and_running_update():
    # x = [1, 3]: μ = 2, σ² = 1 (biased), 2 (unbiased); eps = 0 -> x̂ = [-1, 1]
    mean, var = np.zeros(1), np.ones(1)
    y = F.batch_norm(np.array([[1.0], [3.0]]), mean, var, np.array([2.0]), np.array([1.0]),
                     training=True, momentum=0.1, eps=0.0)
    np.testing.assert_array_equal(y.data, [[-1.0], [3.0]])       # 2·x̂ + 1
    np.testing.assert_allclose(mean, [0.2])                      # 0.9·0 + 0.1·2
    np.testing.assert_allclose(var, [1.1])                       # 0.9·1 + 0.1·2


def test_hand_worked_training_backward():
    # x = [-1, -1, 1, 1]: μ = 0, σ = 1 (eps = 0), x̂ = x; dy = [1, 0, 0, 0]
    # Σdy = 1, Σdy·x̂ = -1; dx = (1/4)(4·dy - 1 - x̂·(-1)) = [0.5, -0.5, 0, 0]
    x = cnnlab.tensor(np.array([[-1.0], [-1.0], [1.0], [1.0]]), requires_grad=True)
    w = cnnlab.tensor(np.array([1.0]), requires_grad=True)
    b = cnnlab.tensor(np.array([0.0]), requires_grad=True)
    y = F.batch_norm(x, None, None, w, b, training=True, eps=0.0)
    np.testing.assert_array_equal(y.data, x.data)
    y.backward(np.array([[1.0], [0.0], [0.0], [0.0]]))
    np.testing.assert_array_equal(x.grad, [[0.5], [-0.5], [0.0], [0.0]])
    np.testing.assert_array_equal(w.grad, [-1.0])                # Σ dy·x̂
    np.testing.assert_array_equal(b.grad, [1.0])                 # Σ dy


def test_hand_worked_eval_backward_is_an_affine_map():
    # running σ² = 3, eps = 1 -> σ = 2; γ = 4 -> dx = γ/σ · dy = 2·dy
    x = cnnlab.tensor(np.array([[1.0], [5.0]]), requires_grad=True)
    w = cnnlab.tensor(np.array([4.0]), requires_grad=True)
    y = F.batch_norm(x, np.array([1.0]), np.array([3.0]), w, training=False, eps=1.0)
    np.testing.assert_array_equal(y.data, [[0.0], [8.0]])        # 4·(x - 1)/2
    y.backward(np.array([[1.0], [3.0]]))
    np.testing.assert_array_equal(x.grad, [[2.0], [6.0]])
    np.testing.assert_array_equal(w.grad, [6.0])                 # 1·0 + 3·2


GRAD_CASES = [(shape, affine) for shape in SHAPES[:3] for affine in ("both", "weight", "none")]


@pytest.mark.parametrize("shape,affine", GRAD_CASES)
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(shape, affine, training, rng):
    c = shape[1]
    x = rng.standard_normal(shape)
    weight, bias = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    stats = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    kw = dict(training=training, eps=1e-3)
    if affine == "both":
        result = gradcheck(lambda x, w, b: F.batch_norm(x, *stats, w, b, **kw), [x, weight, bias])
    elif affine == "weight":
        result = gradcheck(lambda x, w: F.batch_norm(x, *stats, w, **kw), [x, weight])
    else:
        result = gradcheck(lambda x: F.batch_norm(x, *stats, **kw), [x])
    assert result, str(result)


def test_backward_computes_only_what_is_needed(rng):
    x = rng.standard_normal((4, 3))
    _, cache = norm_ops.batch_norm_forward(x, None, None, np.ones(3), np.zeros(3), True, 0.1,
                                           1e-5)
    dy = rng.standard_normal((4, 3))
    grads = norm_ops.batch_norm_backward(dy, cache, False, True, False)
    assert [g is None for g in grads] == [True, False, True]
    xt = cnnlab.tensor(x)
    w = cnnlab.tensor(np.ones(3), requires_grad=True)
    F.batch_norm(xt, None, None, w, training=True).sum().backward()
    assert xt.grad is None and w.grad.shape == (3,)


def test_float32_stays_float32(rng):
    x = cnnlab.tensor(rng.standard_normal((4, 3, 2, 2)).astype(np.float32), requires_grad=True)
    bn = nn.BatchNorm2d(3)
    y = bn(x)
    assert y.dtype == np.float32
    y.backward(np.ones(y.shape, np.float32))
    assert x.grad.dtype == np.float32 and bn.weight.grad.dtype == np.float32
    assert bn.running_mean.dtype == np.float32 and bn.running_var.dtype == np.float32
    bn.eval()
    assert bn(x).dtype == np.float32
    with cnnlab.no_grad():      # float64 running statistics do not upcast a float32 input
        y = F.batch_norm(x, np.zeros(3), np.ones(3))
    assert y.dtype == np.float32


# ------------------------------------------------------------------ PyTorch conformance
def _to_float64(module):
    """Parameters and float buffers to float64 (what ``module.double()`` does in torch)."""
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    for name, value in list(module._buffers.items()):
        if value is not None and np.issubdtype(value.dtype, np.floating):
            setattr(module, name, value.astype(np.float64))
    return module


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_functional_matches_torch_over_several_steps(shape, affine, rng):
    torch = pytest.importorskip("torch")
    c = shape[1]
    weight, bias = _params(rng, c, affine)
    ours_stats = [np.zeros(c), np.ones(c)]
    torch_stats = [torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)]
    for step, training in enumerate([True, True, True, False]):
        x = rng.standard_normal(shape) * (step + 1) + step
        dy = rng.standard_normal(shape)
        ours = [cnnlab.tensor(a, requires_grad=True) for a in (x, weight, bias) if a is not None]
        theirs = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias)
                  if a is not None]
        extra = ours[1:] if affine else []
        y = F.batch_norm(ours[0], *ours_stats, *extra, training=training, momentum=0.2,
                         eps=1e-4)
        y.backward(dy)
        ty = torch.nn.functional.batch_norm(theirs[0], *torch_stats, *theirs[1:],
                                            training=training, momentum=0.2, eps=1e-4)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6, atol=1e-10)
        for a, t in zip(ours, theirs):
            np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-6, atol=1e-10)
        for a, t in zip(ours_stats, torch_stats):
            np.testing.assert_allclose(a, t.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("layer,shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)),
                                         ("BatchNorm2d", (3, 3, 4, 2)),
                                         ("BatchNorm3d", (2, 3, 2, 3, 2))])
@pytest.mark.parametrize("kwargs", [{}, {"momentum": None}, {"track_running_stats": False},
                                    {"affine": False, "eps": 1e-3}, {"bias": False}])
def test_layer_matches_torch_in_train_then_eval(layer, shape, kwargs, rng):
    torch = pytest.importorskip("torch")
    ours = _to_float64(getattr(nn, layer)(3, **kwargs))
    theirs = getattr(torch.nn, layer)(3, **kwargs).double()
    assert repr(ours) == repr(theirs)
    for training in (True, True, True, False, True, False):
        ours.train(training)
        theirs.train(training)
        x = rng.standard_normal(shape) * 2 + 0.5
        dy = rng.standard_normal(shape)
        xt, tx = cnnlab.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ours.zero_grad()
        theirs.zero_grad()
        y = ours(xt)
        y.backward(dy)
        ty = theirs(tx)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-6, atol=1e-10)
        for name, p in theirs.named_parameters():
            np.testing.assert_allclose(getattr(ours, name).grad, p.grad.numpy(), rtol=1e-6,
                                       atol=1e-10)
        state, ref = ours.state_dict(), theirs.state_dict()
        assert list(state) == list(ref)
        for key in ref:
            np.testing.assert_allclose(state[key], ref[key].numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("layer", ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"])
@pytest.mark.parametrize("kwargs", [{}, {"affine": False}, {"track_running_stats": False},
                                    {"bias": False}])
def test_state_dict_keys_shapes_dtypes_match_torch(layer, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = getattr(nn, layer)(5, **kwargs), getattr(torch.nn, layer)(5, **kwargs)
    state = ours.state_dict()
    ref = {k: v.numpy() for k, v in theirs.state_dict().items()}
    assert list(state) == list(ref)
    for key in ref:
        assert state[key].shape == ref[key].shape and state[key].dtype == ref[key].dtype, key
        np.testing.assert_array_equal(state[key], ref[key])
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


def test_load_torch_state_dict_then_eval_matches(rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.BatchNorm2d(4)
    for _ in range(3):
        theirs(torch.tensor(rng.standard_normal((3, 4, 5, 5)), dtype=torch.float32))
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 2)
        theirs.bias.normal_()
    ours = nn.BatchNorm2d(4)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert ours.num_batches_tracked.dtype == np.int64 and int(ours.num_batches_tracked) == 3
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours(x).data, theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ layers
def test_layer_buffers_and_counter():
    bn = nn.BatchNorm1d(2)
    x = np.array([[0.0, 1.0], [2.0, 5.0]], np.float32)
    bn(x)
    bn(x)
    assert int(bn.num_batches_tracked) == 2
    np.testing.assert_allclose(bn.running_mean, [0.19, 0.57], rtol=1e-6)     # (1 - 0.9²)·μ
    bn.eval()
    bn(x)
    assert int(bn.num_batches_tracked) == 2                                  # eval: no update
    np.testing.assert_allclose(bn.running_mean, [0.19, 0.57], rtol=1e-6)
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_mean, [0, 0])
    assert int(bn.num_batches_tracked) == 0
    assert [name for name, _ in bn.named_buffers()] == ["running_mean", "running_var",
                                                        "num_batches_tracked"]


def test_momentum_none_is_the_cumulative_average(rng):
    bn = nn.BatchNorm1d(3, momentum=None)
    batches = [rng.standard_normal((8, 3)) for _ in range(4)]
    for x in batches:
        bn(x)
    np.testing.assert_allclose(bn.running_mean, np.mean([x.mean(axis=0) for x in batches],
                                                        axis=0), rtol=1e-5)


def test_untracked_layer_uses_batch_statistics_in_eval(rng):
    bn = nn.BatchNorm2d(3, affine=False, track_running_stats=False).eval()
    x = rng.standard_normal((2, 3, 4, 4))
    y = bn(x).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-4)
    assert bn.state_dict() == {}


def test_sequential_state_dict_keys():
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    assert list(net.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias",
                                      "1.running_mean", "1.running_var",
                                      "1.num_batches_tracked"]


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("layer,shape,message", [
    (nn.BatchNorm2d(16), (2, 16), r"^BatchNorm2d\(16\) expected a 4-D input \(N, C, H, W\), "
                                  r"received a 2-D input of shape \(2, 16\)\.$"),
    (nn.BatchNorm1d(4), (2, 4, 3, 3), r"BatchNorm1d\(4\) expected a 2-D or 3-D input \(N, C\) "
                                      r"or \(N, C, L\), received a 4-D input"),
    (nn.BatchNorm3d(4), (2, 4, 3, 3), r"BatchNorm3d\(4\) expected a 5-D input"),
    (nn.BatchNorm2d(16), (2, 8, 5, 5), r"^BatchNorm2d\(16\) expected input with 16 channels, "
                                       r"received 8 \(input shape \(2, 8, 5, 5\)\)\.$"),
    (nn.BatchNorm1d(3), (1, 3), r"BatchNorm1d\(3\) in training mode needs more than 1 value "
                                r"per channel to compute a variance, received input shape "
                                r"\(1, 3\)"),
])
def test_layer_bad_input(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer(np.zeros(shape, np.float32))
    if layer.num_batches_tracked is not None:
        assert int(layer.num_batches_tracked) == 0          # a rejected batch is not counted


def test_single_value_per_channel_is_fine_in_eval():
    assert nn.BatchNorm1d(3).eval()(np.ones((1, 3), np.float32)).shape == (1, 3)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(running_mean=np.zeros(3), running_var=None, training=True), ValueError,
     r"batch_norm: running_mean and running_var must both be given or both be None, "
     r"received an array and None"),
    (dict(running_mean=None, running_var=None, training=False), ValueError,
     r"batch_norm in evaluation mode \(training=False\) needs running_mean and running_var"),
    (dict(running_mean=np.zeros(2), running_var=np.ones(2)), ValueError,
     r"batch_norm expected running_mean of shape \(3,\) for an input with 3 channels, received "
     r"\(2,\) \(input shape \(4, 3\)\)"),
    (dict(running_mean=None, running_var=None, weight=np.ones(4), training=True), ValueError,
     r"batch_norm expected weight of shape \(3,\)"),
    (dict(running_mean=[0.0, 0.0, 0.0], running_var=np.ones(3)), TypeError,
     r"batch_norm: running_mean must be a floating-point ndarray \(it is updated in place\), "
     r"received list"),
    (dict(running_mean=np.zeros(3), running_var=np.ones(3), momentum="0.1"), TypeError,
     r"batch_norm: momentum must be a number, received '0.1'"),
])
def test_functional_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        F.batch_norm(np.zeros((4, 3)), **kwargs)


def test_functional_bad_input_rank():
    with pytest.raises(ValueError, match=r"batch_norm expected input \(N, C, \*\) with at least "
                       r"2 axes, received shape \(5,\)"):
        F.batch_norm(np.zeros(5), None, None, training=True)


@pytest.mark.parametrize("args,kwargs,error,message", [
    ((0,), {}, ValueError, r"BatchNorm2d: num_features must be a positive int, received 0"),
    ((3,), {"momentum": "fast"}, TypeError, r"BatchNorm2d: momentum must be a number"),
])
def test_layer_bad_arguments(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        nn.BatchNorm2d(*args, **kwargs)


needs_numba = pytest.mark.skipif(not kernels.numba_installed(),
                                 reason="the compiled kernels need numba (cnnlab[fast])")


@needs_numba
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (2, 5, 7), (3, 2, 2, 3, 4)])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("need", [(True, True, True), (False, True, False), (True, False, True)])
def test_the_compiled_loops_give_the_numpy_paths_numbers(dtype, tol, shape, affine, training,
                                                         need, rng):
    """Statistics, running estimates, output, x̂ and every gradient asked for, both paths."""
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    weight = rng.uniform(0.5, 1.5, c).astype(dtype) if affine != "none" else None
    bias = rng.standard_normal(c).astype(dtype) if affine == "both" else None
    dy = rng.standard_normal(shape).astype(dtype)
    results = {}
    for path in ("numpy", "compiled"):
        running = [rng.standard_normal(c) * 0 + 0.5, np.full(c, 2.0)]
        with kernels.forced_kernels(path):
            y, cache = norm_ops.batch_norm_forward(x, *running, weight, bias, training, 0.1,
                                                   1e-3)
            grads = norm_ops.batch_norm_backward(dy, cache, *need)
        results[path] = (y, cache.x_hat, cache.inv_std, *running, *grads)
    for ours, theirs in zip(results["compiled"], results["numpy"]):
        if theirs is None:
            assert ours is None
            continue
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * 10)
