"""Losses: cross-entropy (class indices and probabilities), nll_loss, mse_loss and nn layers.

Checked three ways: hand-worked literals, a slow loop reference of PyTorch's definition, and
float64 gradcheck; plus PyTorch conformance of forward and gradients, stability for ±1000
logits, and the error messages for bad targets.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from helpers import check_torch, close, strict_numerics

import cnnlab
from cnnlab import functional as F
from cnnlab import nn
from cnnlab.autograd import gradcheck

REDUCTIONS = ("mean", "sum", "none")


def reference_cross_entropy(z, t, weight=None, ignore_index=-100, reduction="mean", eps=0.0):
    """PyTorch's definition, one position at a time: ``ℓ = −Σ_c q_c log p_c`` with
    ``q = (1 − ε) w_t onehot(t) + ε/C w``; ``"mean"`` divides by ``Σ w_t`` of counted targets."""
    c = z.shape[1]
    w = np.ones(c) if weight is None else weight
    losses, total = np.zeros(t.shape), 0.0
    for pos in np.ndindex(t.shape):
        if t[pos] == ignore_index:
            continue
        logits = z[(pos[0], slice(None)) + pos[1:]]
        log_p = logits - math.log(sum(math.exp(v) for v in logits))
        q = eps / c * w.copy()
        q[t[pos]] += (1 - eps) * w[t[pos]]
        losses[pos] = -sum(q[k] * log_p[k] for k in range(c))
        total += w[t[pos]]
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / total if total else np.nan


# ---------------------------------------------------------------- cases
# (logits shape, target shape): plain batch, per-pixel 1-D and 2-D, one unbatched sample
SHAPES = [((5, 4), (5,)), ((3, 4, 2), (3, 2)), ((2, 3, 2, 2), (2, 2, 2)), ((4,), ())]


def make_case(rng, z_shape, t_shape, ignore=False, ignore_index=-100):
    c = z_shape[1] if len(z_shape) > 1 else z_shape[0]
    z = 2 * rng.standard_normal(z_shape)
    t = rng.integers(0, c, size=t_shape)
    if ignore:
        t.reshape(-1)[0] = ignore_index          # the first position does not count
    return z, t, rng.uniform(0.5, 2.0, size=c)


CE_GRID = list(itertools.product(range(len(SHAPES)), REDUCTIONS, (False, True), (0.0, 0.2),
                                 (False, True)))
# An unbatched sample whose one target is ignored has a NaN mean (0/0): no gradient to check.
CE_GRID_FINITE = [case for case in CE_GRID if case[:3] != (3, "mean", True)]


def _ce_args(rng, shape_id, ignore, weighted):
    z, t, w = make_case(rng, *SHAPES[shape_id], ignore=ignore)
    return z, t, (w if weighted else None)


# ---------------------------------------------------------------- hand-worked cases
@pytest.mark.parametrize("classes", [2, 5, 10])
def test_uniform_logits_give_log_c(classes):
    z = np.zeros((3, classes))
    close(F.cross_entropy(z, [0, 1, classes - 1]).item(), math.log(classes), 1e-7)
    close(F.cross_entropy(z, [0, 1, 1], reduction="sum").item(), 3 * math.log(classes), 1e-7)
    close(F.cross_entropy(z, [0, 1, 1], label_smoothing=0.3).item(), math.log(classes), 1e-7)


def test_cross_entropy_literal_and_its_gradient():
    z = cnnlab.tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
    loss = F.cross_entropy(z, [2])
    loss.backward()
    close(loss.item(), 0.40760596444438, 1e-10)                    # −log 0.66524096
    close(z.grad, [[0.09003057317038, 0.24472847105480, -0.33475904422518]], 1e-10)


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n(rng):
    z = cnnlab.tensor(rng.standard_normal((6, 5)), requires_grad=True)
    t = rng.integers(0, 5, size=6)
    F.cross_entropy(z, t).backward()
    p = np.exp(z.data) / np.exp(z.data).sum(axis=1, keepdims=True)
    close(z.grad, (p - np.eye(5)[t]) / 6)


def test_label_smoothing_weight_and_ignore_literals():
    z = np.array([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])    # p = (0.25, 0.75) per row
    close(F.cross_entropy(z[:1], [1], label_smoothing=0.2).item(),
          0.8 * -math.log(0.75) + 0.1 * (-math.log(0.25) - math.log(0.75)))
    weighted = F.cross_entropy(z, [0, 1], weight=np.array([2.0, 1.0]))
    close(weighted.item(), (2 * math.log(4) - math.log(0.75)) / 3)   # ÷ (2 + 1), not ÷ 2
    close(F.cross_entropy(z, [0, -100]).item(), math.log(4))          # ignored: not counted
    close(F.cross_entropy(z, [0, 1], ignore_index=1, reduction="none").data, [math.log(4), 0])


def test_nll_and_mse_literals():
    log_p = np.log(np.array([[0.5, 0.5], [0.25, 0.75]]))
    close(F.nll_loss(log_p, [0, 1], reduction="none").data, [math.log(2), -math.log(0.75)])
    x = cnnlab.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = cnnlab.tensor(np.array([1.0, 4.0]), requires_grad=True)
    loss = F.mse_loss(x, y)
    loss.backward()
    assert loss.item() == 2.0
    close(x.grad, [0.0, -2.0])                                        # 2 (x − y) / N
    close(y.grad, [0.0, 2.0])
    assert F.mse_loss(x, y, reduction="sum").item() == 4.0


# ---------------------------------------------------------------- loop reference
@pytest.mark.parametrize("shape_id,reduction,ignore,eps,weighted", CE_GRID)
def test_cross_entropy_matches_loop_reference(shape_id, reduction, ignore, eps, weighted, rng):
    z, t, w = _ce_args(rng, shape_id, ignore, weighted)
    ours = F.cross_entropy(z, t, weight=w, reduction=reduction, label_smoothing=eps).data
    if z.ndim == 1:                                   # the reference wants a batch axis
        expected = reference_cross_entropy(z[None], t[None], w, -100, reduction, eps)
        expected = expected[0] if reduction == "none" else expected
    else:
        expected = reference_cross_entropy(z, t, w, -100, reduction, eps)
    if ignore and z.ndim == 1 and reduction == "mean":
        assert np.isnan(ours)                         # nothing counted: 0/0, as torch
    else:
        close(ours, expected)


# ---------------------------------------------------------------- stability
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_extreme_logits(dtype, eps):
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]], dtype=dtype)
    with strict_numerics():
        x = cnnlab.tensor(z, requires_grad=True)
        loss = F.cross_entropy(x, [1, 0], reduction="none", label_smoothing=eps)
        loss.backward(np.ones(2, dtype=dtype))
    assert loss.dtype == dtype and x.grad.dtype == dtype
    assert np.isfinite(loss.data).all() and np.isfinite(x.grad).all()
    if eps == 0.0:
        close(loss.data, [2000.0, 2000.0 + math.log(2.0)], 1e-6)
        close(x.grad, [[1, -1, 0], [-1, 0.5, 0.5]], 1e-6)


def test_all_ignored_or_empty_mean_is_nan_with_zero_gradient():
    with strict_numerics():
        z = cnnlab.tensor(np.ones((3, 4)), requires_grad=True)
        loss = F.cross_entropy(z, [-100, -100, -100])
        loss.backward()
        assert np.isnan(loss.item())
        np.testing.assert_array_equal(z.grad, np.zeros((3, 4)))       # as torch
        assert np.isnan(F.cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int)).item())
        assert F.cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int), reduction="sum").item() \
            == 0.0
        assert np.isnan(F.nll_loss(np.ones((2, 4)), [-100, -100]).item())
        assert np.isnan(F.mse_loss(np.zeros(0), np.zeros(0)).item())


# ---------------------------------------------------------------- gradcheck (float64)
@pytest.mark.parametrize("shape_id,reduction,ignore,eps,weighted", CE_GRID_FINITE)
def test_cross_entropy_gradcheck(shape_id, reduction, ignore, eps, weighted, rng):
    z, t, w = _ce_args(rng, shape_id, ignore, weighted)
    result = gradcheck(lambda x: F.cross_entropy(x, t, weight=w, reduction=reduction,
                                                 label_smoothing=eps), [z])
    assert result, str(result)


def _soft_targets(rng, z_shape):
    """Random class probabilities with the logits' shape (class axis 1, or 0 when unbatched)."""
    p = rng.uniform(0.1, 1.0, size=z_shape)
    return p / p.sum(axis=1 if len(z_shape) > 1 else 0, keepdims=True)


SOFT_GRID = list(itertools.product((0, 1, 3), REDUCTIONS, (0.0, 0.2), (False, True)))


@pytest.mark.parametrize("shape_id,reduction,eps,weighted", SOFT_GRID)
def test_soft_cross_entropy_gradcheck_both_inputs(shape_id, reduction, eps, weighted, rng):
    z, _, w = _ce_args(rng, shape_id, False, weighted)
    y = _soft_targets(rng, z.shape)
    result = gradcheck(lambda a, b: F.cross_entropy(a, b, weight=w, reduction=reduction,
                                                    label_smoothing=eps), [z, y])
    assert result, str(result)


@pytest.mark.parametrize("shape_id,reduction,ignore,weighted",
                         [case[:3] + case[4:] for case in CE_GRID_FINITE if case[3] == 0.0])
def test_nll_loss_gradcheck(shape_id, reduction, ignore, weighted, rng):
    z, t, w = _ce_args(rng, shape_id, ignore, weighted)
    result = gradcheck(lambda x: F.nll_loss(x, t, weight=w, reduction=reduction), [z])
    assert result, str(result)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_gradcheck_both_inputs(reduction, rng):
    result = gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction),
                       [rng.standard_normal((3, 4)), rng.standard_normal((3, 4))])
    assert result, str(result)


def test_mse_only_computes_needed_gradients(rng):
    x = cnnlab.tensor(rng.standard_normal(4), requires_grad=True)
    F.mse_loss(x, rng.standard_normal(4)).backward()
    assert x.grad is not None
    y = cnnlab.tensor(rng.standard_normal(4), requires_grad=True)
    F.mse_loss(rng.standard_normal(4), y).backward()                 # gradient to the target
    assert y.grad is not None


# ---------------------------------------------------------------- PyTorch conformance
@pytest.mark.parametrize("shape_id,reduction,ignore,eps,weighted", CE_GRID)
def test_cross_entropy_matches_torch(shape_id, reduction, ignore, eps, weighted, rng):
    torch = pytest.importorskip("torch")
    z, t, w = _ce_args(rng, shape_id, ignore, weighted)
    tw = None if w is None else torch.tensor(w)
    check_torch(lambda x: F.cross_entropy(x, t, w, reduction=reduction, label_smoothing=eps),
                lambda x: torch.nn.functional.cross_entropy(
                    x, torch.tensor(t), tw, reduction=reduction, label_smoothing=eps), [z])


def test_cross_entropy_custom_ignore_index_matches_torch(rng):
    torch = pytest.importorskip("torch")
    z, t, w = make_case(rng, (6, 3, 2), (6, 2))
    t[0] = 1                                          # a real class used as ignore_index
    for reduction, eps in itertools.product(REDUCTIONS, (0.0, 0.3)):
        kwargs = {"ignore_index": 1, "reduction": reduction, "label_smoothing": eps}
        check_torch(lambda x, kw=kwargs: F.cross_entropy(x, t, w, **kw),
                    lambda x, kw=kwargs: torch.nn.functional.cross_entropy(
                        x, torch.tensor(t), torch.tensor(w), **kw), [z])


@pytest.mark.parametrize("shape_id,reduction,eps,weighted", SOFT_GRID)
def test_soft_cross_entropy_matches_torch(shape_id, reduction, eps, weighted, rng):
    torch = pytest.importorskip("torch")
    z, _, w = _ce_args(rng, shape_id, False, weighted)
    tw = None if w is None else torch.tensor(w)
    check_torch(lambda a, b: F.cross_entropy(a, b, w, reduction=reduction, label_smoothing=eps),
                lambda a, b: torch.nn.functional.cross_entropy(
                    a, b, tw, reduction=reduction, label_smoothing=eps),
                [z, _soft_targets(rng, z.shape)])


@pytest.mark.parametrize("shape_id,reduction",
                         list(itertools.product(range(len(SHAPES)), REDUCTIONS)))
def test_nll_loss_matches_torch_and_composes_to_cross_entropy(shape_id, reduction, rng):
    torch = pytest.importorskip("torch")
    z, t, w = make_case(rng, *SHAPES[shape_id], ignore=shape_id != 3)
    check_torch(lambda x: F.nll_loss(x, t, w, reduction=reduction),
                lambda x: torch.nn.functional.nll_loss(x, torch.tensor(t), torch.tensor(w),
                                                       reduction=reduction), [z])
    axis = 1 if z.ndim > 1 else 0
    close(F.nll_loss(F.log_softmax(z, axis), t, reduction=reduction).data,
          F.cross_entropy(z, t, reduction=reduction).data)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_torch(reduction, rng):
    torch = pytest.importorskip("torch")
    check_torch(lambda a, b: F.mse_loss(a, b, reduction=reduction),
                lambda a, b: torch.nn.functional.mse_loss(a, b, reduction=reduction),
                [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))])


# ---------------------------------------------------------------- targets, dtypes, errors
def test_target_forms_agree(rng):
    z = rng.standard_normal((4, 3))
    t = np.array([0, 2, 1, 2])
    expected = F.cross_entropy(z, t).item()
    for form in ([0, 2, 1, 2], t.astype(np.int32), t.astype(np.uint8), cnnlab.tensor(t)):
        assert F.cross_entropy(z, form).item() == expected
    assert F.cross_entropy(z[0], 0).item() == F.cross_entropy(z[:1], [0]).item()   # unbatched
    assert F.cross_entropy(z[0], 0, reduction="none").shape == ()


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss])
def test_float32_losses_stay_float32(fn, rng):
    z = cnnlab.tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    loss = fn(z, [0, 1, 2, 0], weight=np.ones(3))                  # float64 weight: cast
    loss.backward()
    assert loss.dtype == np.float32 and z.grad.dtype == np.float32
    x = cnnlab.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    loss = F.mse_loss(x, np.zeros(3))
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.cross_entropy(np.zeros((4, 3)), np.array([0.0, 1.0, 2.0, 1.0])), TypeError,
     r"cross_entropy expected integer class indices as target, received dtype float64 with "
     r"shape \(4,\)"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([True, False])), TypeError,
     "received dtype bool"),
    (lambda: F.cross_entropy(np.zeros((4, 3)), [0, 1, 2]), ValueError,
     r"cross_entropy expected target of shape \(4,\) for input of shape \(4, 3\), received "
     r"\(3,\)"),
    (lambda: F.cross_entropy(np.zeros((2, 3, 5)), np.zeros((2, 4), dtype=int)), ValueError,
     r"expected target of shape \(2, 5\)"),
    (lambda: F.cross_entropy(np.zeros((3, 3)), [0, 3, 1]), ValueError,
     r"cross_entropy target holds class index 3, out of range for 3 classes \(expected 0 to 2,"
     r" or ignore_index=-100\)"),
    (lambda: F.nll_loss(np.zeros((2, 3)), [-1, 0]), ValueError,
     "nll_loss target holds class index -1, out of range for 3 classes"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), [0, 1], weight=np.ones(2)), ValueError,
     r"cross_entropy weight must hold one value per class, shape \(3,\), received shape \(2,\)"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), [0, 1], label_smoothing=1.5), ValueError,
     "label_smoothing must be a probability between 0 and 1, received 1.5"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), [0, 1], reduction="avg"), ValueError,
     "reduction must be one of 'mean', 'sum', 'none', received 'avg'"),
    (lambda: F.cross_entropy(np.float64(1.0), 0), ValueError,
     r"expected input of shape \(N, C\), \(N, C, d1, ...\) or \(C,\), received a scalar"),
    (lambda: F.cross_entropy(np.zeros((2, 3), dtype=int), [0, 1]), TypeError,
     "cross_entropy input must hold floating-point numbers, received dtype int64"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), [0, 1], ignore_index=None), TypeError,
     "cross_entropy ignore_index must be an int, received None"),
    (lambda: F.mse_loss(np.zeros((3, 1)), np.zeros(3)), ValueError,
     r"mse_loss expected target of the input's shape \(3, 1\), received \(3,\)"),
    (lambda: nn.CrossEntropyLoss(label_smoothing=-0.1), ValueError,
     "label_smoothing must be a probability"),
    (lambda: nn.MSELoss(reduction="mena"), ValueError, "reduction must be one of"),
])
def test_bad_loss_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------- nn loss layers
def test_loss_modules_compute_their_functions(rng):
    z, t, w = make_case(rng, (4, 3), (4,), ignore=True)
    module = nn.CrossEntropyLoss(weight=w, reduction="sum", label_smoothing=0.1)
    assert module(z, t).item() == F.cross_entropy(z, t, w, reduction="sum",
                                                  label_smoothing=0.1).item()
    t[0] = 0
    log_p = F.log_softmax(z, 1).data
    assert nn.NLLLoss(ignore_index=0)(log_p, t).item() == F.nll_loss(log_p, t,
                                                                     ignore_index=0).item()
    a, b = rng.standard_normal(5), rng.standard_normal(5)
    np.testing.assert_array_equal(nn.MSELoss(reduction="none")(a, b).data,
                                  F.mse_loss(a, b, reduction="none").data)


def test_loss_module_reprs_and_state():
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(nn.MSELoss()) == "MSELoss()" and repr(nn.NLLLoss()) == "NLLLoss()"
    assert nn.CrossEntropyLoss().state_dict() == {}
    state = nn.CrossEntropyLoss(weight=[1.0, 2.0, 3.0]).state_dict()
    assert list(state) == ["weight"] and state["weight"].dtype == np.float32
    np.testing.assert_array_equal(state["weight"], [1, 2, 3])


def test_loss_module_state_matches_torch():
    torch = pytest.importorskip("torch")
    for ours, theirs in [(nn.CrossEntropyLoss(weight=np.ones(3)),
                          torch.nn.CrossEntropyLoss(weight=torch.ones(3))),
                         (nn.NLLLoss(weight=np.ones(3)), torch.nn.NLLLoss(weight=torch.ones(3))),
                         (nn.MSELoss(), torch.nn.MSELoss())]:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("size_average,reduce,expected", [
    (None, False, "none"), (False, None, "sum"), (True, True, "mean"), (False, False, "none")])
def test_legacy_size_average_and_reduce(size_average, reduce, expected):
    with pytest.warns(UserWarning, match=f"please use reduction='{expected}' instead"):
        module = nn.CrossEntropyLoss(size_average=size_average, reduce=reduce)
    assert module.reduction == expected
    with pytest.warns(UserWarning):
        loss = F.mse_loss(np.ones(2), np.zeros(2), size_average, reduce)
    assert loss.shape == ((2,) if expected == "none" else ())


def test_loss_module_trains_a_tiny_classifier(rng):
    """End to end: logits from a Linear layer, CrossEntropyLoss, gradients on every parameter."""
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    loss = nn.CrossEntropyLoss()(model(rng.standard_normal((5, 4)).astype(np.float32)),
                                 rng.integers(0, 3, size=5))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
