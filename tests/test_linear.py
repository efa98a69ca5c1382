"""Linear (fully connected) op and layer, Identity, Flatten, Unflatten.

Loop reference, float64 gradcheck, a hand-worked case, PyTorch conformance and bad inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab
from cnnlab import functional as F
from cnnlab import nn
from cnnlab.autograd import gradcheck
from cnnlab.ops import linear as linear_ops


def linear_loop(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Slow reference: ``y[..., o] = b[o] + Σ_i x[..., i] · w[o, i]``, one entry at a time."""
    y = np.zeros(x.shape[:-1] + (w.shape[0],))
    for idx in np.ndindex(*x.shape[:-1]):
        for o in range(w.shape[0]):
            total = 0.0 if b is None else b[o]
            for i in range(w.shape[1]):
                total += x[idx + (i,)] * w[o, i]
            y[idx + (o,)] = total
    return y


# leading shape of x (any number of batch axes, like torch), in_features, out_features
SHAPES = [((), 4, 3), ((5,), 4, 3), ((2, 3), 5, 2), ((2, 1, 3), 3, 4), ((1,), 1, 1),
          ((0,), 3, 2)]


@pytest.mark.parametrize("lead,n_in,n_out", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_loop_reference(lead, n_in, n_out, bias, rng):
    x = rng.standard_normal((*lead, n_in))
    w = rng.standard_normal((n_out, n_in))
    b = rng.standard_normal(n_out) if bias else None
    y = F.linear(x, w, b)
    assert y.shape == (*lead, n_out)
    np.testing.assert_allclose(y.data, linear_loop(x, w, b), rtol=1e-12, atol=1e-12)


def test_linear_hand_worked_case():
    x = cnnlab.tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
    w = cnnlab.tensor(np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]]), requires_grad=True)
    b = cnnlab.tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = F.linear(x, w, b)
    np.testing.assert_array_equal(y.data, [[-1.5, 3.0]])        # 1 - 3 + 0.5, 2 + 2 - 1
    y.backward(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(x.grad, [[5.0, 2.0, -1.0]])   # dy @ W
    np.testing.assert_array_equal(w.grad, [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])   # dyᵀ x
    np.testing.assert_array_equal(b.grad, [1.0, 2.0])           # Σ dy


@pytest.mark.parametrize("lead", [(), (4,), (2, 3), (2, 1, 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(lead, bias, rng):
    x = rng.standard_normal((*lead, 3))
    w = rng.standard_normal((2, 3))
    if bias:
        result = gradcheck(F.linear, [x, w, rng.standard_normal(2)])
    else:
        result = gradcheck(lambda x, w: F.linear(x, w), [x, w])
    assert result, str(result)


def test_linear_layer_gradients(rng):
    layer = nn.Linear(3, 2).double()
    x = rng.standard_normal((4, 3))
    result = gradcheck(lambda x: layer(x), [x])
    assert result, str(result)
    layer.zero_grad()
    dy = rng.standard_normal((4, 2))
    layer(x).backward(dy)
    np.testing.assert_allclose(layer.weight.grad, dy.T @ x, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, dy.sum(axis=0), rtol=1e-12)


def test_float64_input_runs_at_the_layers_float32_precision(rng):
    """The weight sets the precision; the input's gradient comes back in its own dtype."""
    layer = nn.Linear(3, 2)
    x = cnnlab.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    y = layer(x)
    assert x.dtype == np.float64 and y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float64 and layer.weight.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, np.tile(layer.weight.data.sum(0), (4, 1)), rtol=1e-6)


def test_backward_computes_only_what_is_needed(rng):
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)
    _, cache = linear_ops.linear_forward(x, w, b)
    dy = rng.standard_normal((4, 2))
    assert [g is None for g in linear_ops.linear_backward(dy, cache, False, True, False)] == [
        True, False, True]
    assert [g is None for g in linear_ops.linear_backward(dy, cache, True, False, False)] == [
        False, True, True]
    # Through autograd: an input that does not require grad gets none.
    xt, wt = cnnlab.tensor(x), cnnlab.tensor(w, requires_grad=True)
    F.linear(xt, wt).sum().backward()
    assert xt.grad is None
    np.testing.assert_allclose(wt.grad, np.broadcast_to(x.sum(axis=0), (2, 3)))


def test_weight_gradient_sums_over_all_leading_axes(rng):
    x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4))
    dy = rng.standard_normal((2, 3, 5))
    _, cache = linear_ops.linear_forward(x, w, None)
    dx, dw, db = linear_ops.linear_backward(dy, cache)
    np.testing.assert_allclose(dw, np.einsum("abo,abi->oi", dy, x), rtol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(dx, np.einsum("abo,oi->abi", dy, w), rtol=1e-12)
    assert dx.shape == x.shape


def test_float32_stays_float32(rng):
    x = cnnlab.tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    layer = nn.Linear(3, 2)
    y = layer(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    assert layer.weight.grad.dtype == np.float32 and layer.bias.grad.dtype == np.float32


@pytest.mark.parametrize("lead,n_in,n_out", SHAPES[:4])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(lead, n_in, n_out, bias, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((*lead, n_in))
    w = rng.standard_normal((n_out, n_in))
    b = rng.standard_normal(n_out) if bias else None
    dy = rng.standard_normal((*lead, n_out))
    ours = [cnnlab.tensor(a, requires_grad=True) for a in (x, w, b) if a is not None]
    y = F.linear(*ours)
    y.backward(dy)
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b) if a is not None]
    ty = torch.nn.functional.linear(*theirs)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6, atol=1e-12)
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-6, atol=1e-12)


def test_linear_layer_state_dict_and_repr_match_torch():
    torch = pytest.importorskip("torch")
    for ours, theirs in ((nn.Linear(400, 120), torch.nn.Linear(400, 120)),
                         (nn.Linear(3, 1, bias=False), torch.nn.Linear(3, 1, bias=False))):
        mine = ours.state_dict()
        ref = {k: v.numpy() for k, v in theirs.state_dict().items()}
        assert list(mine) == list(ref)
        assert all(mine[k].shape == ref[k].shape and mine[k].dtype == ref[k].dtype for k in ref)
        assert repr(ours) == repr(theirs)
        ours.load_state_dict(ref)
        x = np.random.default_rng(0).standard_normal((2, ours.in_features)).astype(np.float32)
        np.testing.assert_allclose(ours(x).data, theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)
    for ours, theirs in ((nn.Identity(), torch.nn.Identity()),
                         (nn.Flatten(), torch.nn.Flatten()),
                         (nn.Flatten(0, 2), torch.nn.Flatten(0, 2)),
                         (nn.Unflatten(1, (2, 3)), torch.nn.Unflatten(1, (2, 3)))):
        assert repr(ours) == repr(theirs)


def test_linear_default_init_is_torchs_uniform_bound():
    cnnlab.manual_seed(3)
    layer = nn.Linear(300, 200)
    bound = 1 / math.sqrt(300)
    for p in (layer.weight.data, layer.bias.data):
        assert p.dtype == np.float32
        assert np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.95 * bound
    # U(-a, a) has variance a²/3
    assert abs(layer.weight.data.var() / (bound ** 2 / 3) - 1) < 0.02
    cnnlab.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(300, 200).weight.data, layer.weight.data)


@pytest.mark.parametrize("shape,module,expected", [
    ((2, 3, 4, 5), nn.Flatten(), (2, 60)),
    ((2, 3, 4, 5), nn.Flatten(0, -1), (120,)),
    ((2, 3, 4, 5), nn.Flatten(1, 2), (2, 12, 5)),
    ((2, 3, 4, 5), nn.Flatten(-2), (2, 3, 20)),
    ((2, 3), nn.Flatten(), (2, 3)),
    ((2, 12), nn.Unflatten(1, (3, 4)), (2, 3, 4)),
    ((2, 12, 5), nn.Unflatten(-2, (2, -1)), (2, 2, 6, 5)),
    ((2, 3), nn.Identity(), (2, 3)),
])
def test_shape_layers_shapes_and_gradient(shape, module, expected, rng):
    x = cnnlab.tensor(rng.standard_normal(shape), requires_grad=True)
    y = module(x)
    assert y.shape == expected
    np.testing.assert_array_equal(y.data.reshape(-1), x.data.reshape(-1))   # order kept
    g = rng.standard_normal(expected)
    y.backward(g)
    np.testing.assert_array_equal(x.grad, g.reshape(shape))


def test_identity_returns_its_input_and_ignores_arguments():
    x = cnnlab.tensor([1.0, 2.0])
    assert nn.Identity(54, unused="ok")(x) is x


def test_lenet_classifier_head_through_sequential(rng):
    net = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84))
    assert net(rng.standard_normal((64, 16, 5, 5)).astype(np.float32)).shape == (64, 84)
    assert list(net.state_dict()) == ["1.weight", "1.bias", "2.weight", "2.bias"]


# ------------------------------------------------------------------ bad input
def test_linear_layer_names_itself_when_features_do_not_match():
    with pytest.raises(ValueError, match=r"^Linear\(120→84\) expected input with 120 features in "
                       r"the last axis, received 400 \(input shape \(64, 400\)\)\.$"):
        nn.Linear(120, 84)(np.zeros((64, 400), np.float32))


def test_sequential_locates_the_linear_layer_that_failed():
    net = nn.Sequential(nn.Flatten(), nn.Linear(120, 84))
    with pytest.raises(ValueError, match=r"layer 1 \(Linear\) received input of shape "
                       r"\(2, 100\): Linear\(120→84\) expected input with 120 features"):
        net(np.zeros((2, 4, 5, 5), np.float32))


@pytest.mark.parametrize("x,w,b,error,message", [
    (np.zeros((2, 3)), np.zeros(3), None, ValueError,
     r"linear expected a 2-D weight \(out_features, in_features\), received shape \(3,\)"),
    (np.zeros((2, 3)), np.zeros((4, 2)), None, ValueError,
     r"linear expected input with 2 features in the last axis, received 3 "
     r"\(input shape \(2, 3\)\)"),
    (np.float64(1.0), np.zeros((4, 2)), None, ValueError,
     r"linear expected input with 2 features in the last axis, received a 0-D input"),
    (np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(3), ValueError,
     r"linear expected bias of shape \(4,\), received \(3,\)"),
    (np.zeros((2, 3), dtype=np.int64), np.zeros((4, 3)), None, TypeError,
     r"linear input must hold floating-point numbers, received dtype int64"),
])
def test_linear_bad_input(x, w, b, error, message):
    with pytest.raises(error, match=message):
        F.linear(x, w, b)


@pytest.mark.parametrize("args,message", [
    ((0, 3), r"Linear: in_features must be a positive int, received 0"),
    ((3, 2.5), r"Linear: out_features must be a positive int, received 2.5"),
])
def test_linear_layer_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        nn.Linear(*args)


@pytest.mark.parametrize("module,shape,message", [
    (nn.Flatten(), (5,), r"Flatten: start_dim 1 is out of range for a 1-D input "
                         r"\(expected -1 to 0\)"),
    (nn.Flatten(0, 4), (2, 3), r"Flatten: end_dim 4 is out of range for a 2-D input"),
    (nn.Flatten(2, 1), (2, 3, 4), r"Flatten: start_dim 2 comes after end_dim 1 for a 3-D input"),
    (nn.Unflatten(1, (4, 4)), (2, 12), r"Unflatten: unflattened_size \(4, 4\) does not fit "
                                       r"axis 1 of size 12 \(input shape \(2, 12\)\)"),
    (nn.Unflatten(1, (5, -1)), (2, 12), r"does not fit axis 1 of size 12"),
    (nn.Unflatten(3, (2, 2)), (2, 4), r"Unflatten: dim 3 is out of range for a 2-D input"),
])
def test_shape_layers_bad_input(module, shape, message):
    with pytest.raises(ValueError, match=message):
        module(np.zeros(shape, np.float32))


def test_unflatten_bad_sizes():
    with pytest.raises(ValueError, match=r"unflattened_size must be a non-empty tuple of "
                       r"positive ints \(at most one -1\), received \(-1, -1\)"):
        nn.Unflatten(1, (-1, -1))
