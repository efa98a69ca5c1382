"""The compiled loops of the small ops a training step is made of besides its layers: the
optimiser's update (``ops.optim_compiled``), cross-entropy (``ops.loss_compiled``) and constant
padding (``ops.pad_compiled``), each against the NumPy path it stands in for."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import functional as F
from cnnlab import nn, optim
from cnnlab.ops import kernels, loss, loss_compiled, optim_compiled, pad, pad_compiled

needs_numba = pytest.mark.skipif(not kernels.numba_installed(),
                                 reason="needs numba (cnnlab[fast])")


# ------------------------------------------------------------------------------- SGD
def _sgd_run(path: str, dtype, hyper: dict, steps: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    w = nn.Parameter(rng.standard_normal((3, 4)).astype(dtype))
    opt = optim.SGD([w], **hyper)
    with kernels.forced_kernels(path):
        for _ in range(steps):
            w.grad = rng.standard_normal((3, 4)).astype(dtype)
            opt.step()
    buf = opt.state[w]["momentum_buffer"] if w in opt.state else np.zeros(0)
    return w.data, buf


@needs_numba
@pytest.mark.parametrize("hyper", [
    {"lr": 0.1},
    {"lr": 0.1, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01},
    {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
    {"lr": 0.1, "momentum": 0.5, "maximize": True},
    {"lr": 0.1, "weight_decay": 0.2, "maximize": True},
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_compiled_is_the_numpy_rule(hyper, dtype):
    (w, buf), (w_ref, buf_ref) = _sgd_run("compiled", dtype, hyper), _sgd_run("numpy", dtype, hyper)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    assert w.dtype == dtype and buf.dtype == (dtype if buf.size else np.float64)
    np.testing.assert_allclose(w, w_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(buf, buf_ref, rtol=tol, atol=tol)


@needs_numba
def test_sgd_compiled_first_step_keeps_the_gradient_as_the_buffer():
    w = nn.Parameter(np.array([1.0, -2.0], np.float32))
    w.grad = np.array([0.5, 4.0], np.float32)
    opt = optim.SGD([w], lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.5)
    with kernels.forced_kernels("compiled"):
        opt.step()                  # first step: buf = g + wd·p, undamped (as in PyTorch)
    np.testing.assert_allclose(opt.state[w]["momentum_buffer"], [1.0, 3.0])
    np.testing.assert_allclose(w.data, [0.9, -2.3], rtol=1e-6)
    w.grad = np.array([1.0, 1.0], np.float32)
    with kernels.forced_kernels("compiled"):
        opt.step()                  # then buf = 0.9·buf + 0.5·(g + wd·p)
    np.testing.assert_allclose(opt.state[w]["momentum_buffer"], [0.9 * 1.0 + 0.5 * 1.45,
                                                                  0.9 * 3.0 + 0.5 * -0.15],
                               rtol=1e-6)


@needs_numba
def test_sgd_takes_the_numpy_rule_for_what_the_loop_does_not_handle():
    g = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert optim_compiled.handles(np.zeros((3, 4), np.float32), g)
    assert not optim_compiled.handles(np.zeros((4, 3), np.float32), g)        # shapes
    assert not optim_compiled.handles(np.zeros((3, 4), np.float32), g.astype(np.float64))
    assert not optim_compiled.handles(np.zeros((3, 4), np.float32), np.asfortranarray(g))
    assert not optim_compiled.handles(np.zeros((3, 4), np.int64), g)         # not a float
    frozen = np.zeros((3, 4), np.float32)
    frozen.flags.writeable = False
    assert not optim_compiled.handles(frozen, g)
    # a Fortran-ordered gradient takes the NumPy rule, with the same result
    w = nn.Parameter(np.ones((3, 4), np.float32))
    opt = optim.SGD([w], lr=0.5, momentum=0.9)
    w.grad = np.asfortranarray(g)
    opt.step()
    np.testing.assert_allclose(w.data, 1 - 0.5 * g)


def _adam_run(path: str, kind, dtype, hyper: dict, steps: int = 4):
    rng = np.random.default_rng(3)
    w = nn.Parameter(rng.standard_normal((2, 5)).astype(dtype))
    opt = kind([w], **hyper)
    with kernels.forced_kernels(path):
        for _ in range(steps):
            w.grad = rng.standard_normal((2, 5)).astype(dtype)
            opt.step()
    return w.data, opt.state[w]


@needs_numba
@pytest.mark.parametrize("kind, hyper", [
    (optim.Adam, {"lr": 0.01}),
    (optim.Adam, {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-3, "weight_decay": 0.1}),
    (optim.Adam, {"lr": 0.01, "amsgrad": True, "maximize": True}),
    (optim.AdamW, {"lr": 0.02, "weight_decay": 0.3}),
    (optim.AdamW, {"lr": 0.02, "weight_decay": 0.3, "amsgrad": True}),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_compiled_is_the_numpy_rule(kind, hyper, dtype):
    (w, state), (w_ref, ref) = (_adam_run("compiled", kind, dtype, hyper),
                                _adam_run("numpy", kind, dtype, hyper))
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert w.dtype == dtype and state["step"] == ref["step"] == 4
    np.testing.assert_allclose(w, w_ref, rtol=tol, atol=tol)
    assert set(state) == set(ref)
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        if key in ref:
            assert state[key].dtype == dtype
            np.testing.assert_allclose(state[key], ref[key], rtol=tol, atol=tol)


@needs_numba
def test_adam_compiled_amsgrad_keeps_nan_as_numpy_s_maximum_does():
    w = nn.Parameter(np.zeros(3, np.float32))
    opt = optim.Adam([w], lr=0.1, amsgrad=True)
    with kernels.forced_kernels("compiled"):
        w.grad = np.array([1.0, np.nan, 2.0], np.float32)
        opt.step()
        w.grad = np.array([0.0, 1.0, 2.0], np.float32)
        opt.step()
    most = opt.state[w]["max_exp_avg_sq"]
    assert np.isnan(most[1]) and not np.isnan(most[[0, 2]]).any()
    # v: 0.001 then 0.000999 (the first kept), 0.004 then 0.007996 (the second)
    np.testing.assert_allclose(most[[0, 2]], [0.001, 0.007996], rtol=1e-5)


# ------------------------------------------------------------------------------- cross-entropy
def _ce(path: str, z: np.ndarray, t: np.ndarray, dy=None, **options):
    with kernels.forced_kernels(path):
        value, cache = loss.cross_entropy_forward(z, t, **options)
        dz = loss.cross_entropy_backward(np.ones_like(value) if dy is None else dy, cache)
    return value, dz


@needs_numba
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_compiled_is_the_numpy_loss(reduction, eps, dtype):
    rng = np.random.default_rng(1)
    z = (rng.standard_normal((7, 5)) * 3).astype(dtype)
    z[0] = [1000, -1000, 0, 0, 0]                   # stable at extreme logits
    t = np.array([0, 1, -100, 4, 2, -100, 3])       # two ignored rows
    dy = rng.standard_normal(7).astype(dtype) if reduction == "none" else None
    options = dict(reduction=reduction, label_smoothing=eps, ignore_index=-100)
    (value, dz), (ref, dz_ref) = _ce("compiled", z, t, dy, **options), _ce("numpy", z, t, dy,
                                                                         **options)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert value.dtype == ref.dtype == dtype and value.shape == ref.shape
    assert dz.dtype == dtype
    np.testing.assert_allclose(value, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(dz, dz_ref, rtol=tol, atol=tol)
    assert not dz[2].any() and not dz[5].any()      # ignored rows get no gradient
    if reduction == "none":
        assert value[2] == value[5] == 0


@needs_numba
def test_cross_entropy_compiled_of_only_ignored_rows_is_nan_with_a_zero_gradient():
    z = np.ones((2, 3), np.float32)
    t = np.array([-1, -1])
    with kernels.forced_kernels("compiled"):
        value, cache = loss.cross_entropy_forward(z, t, ignore_index=-1)
        dz = loss.cross_entropy_backward(np.float32(1), cache)
    assert np.isnan(value) and value.dtype == np.float32 and not dz.any()


@needs_numba
def test_cross_entropy_compiled_through_autograd_matches_the_hand_formula():
    z = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]], np.float32)
    t = np.array([0, 2])
    with kernels.forced_kernels("compiled"):
        from cnnlab.autograd import Tensor
        logits = Tensor(z, requires_grad=True)
        out = F.cross_entropy(logits, t)
        out.backward()
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    expected = -np.log(p[[0, 1], t]).mean()
    np.testing.assert_allclose(out.item(), expected, rtol=1e-6)
    onehot = np.eye(3)[t]
    np.testing.assert_allclose(logits.grad, (p - onehot) / 2, rtol=1e-6, atol=1e-7)


def test_cross_entropy_compiled_handles_only_plain_batches():
    z = np.zeros((4, 3), np.float32)
    assert loss_compiled.handles(z, None)
    assert not loss_compiled.handles(z, np.ones(3, np.float32))               # class weights
    assert not loss_compiled.handles(np.zeros((4, 3, 2), np.float32), None)   # per position
    assert not loss_compiled.handles(np.asfortranarray(np.zeros((4, 3))), None)
    assert not loss_compiled.handles(z.astype(np.float16), None)


# ------------------------------------------------------------------------------- padding
@needs_numba
@pytest.mark.parametrize("shape, pads", [
    ((2, 3, 5, 7), ((1, 2), (3, 0))),
    ((2, 3, 7), ((2, 1),)),
    ((4, 5, 6), ((0, 0), (1, 1))),
    ((2, 2, 2, 3, 4), ((1, 1), (2, 2))),
    ((1, 1, 1, 1), ((2, 0), (0, 3))),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_padding_compiled_is_numpys(shape, pads, dtype):
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    with kernels.forced_kernels("compiled"):
        y, _ = pad.pad_forward(x, pads, "constant", 1.5)
    with kernels.forced_kernels("numpy"):
        ref, _ = pad.pad_forward(x, pads, "constant", 1.5)
    assert y.dtype == dtype and y.shape == ref.shape
    np.testing.assert_array_equal(y, ref)


def test_constant_padding_compiled_handles_only_contiguous_floats_with_values():
    x = np.zeros((2, 3, 4), np.float32)
    assert pad_compiled.handles(x, ((1, 1),)) and pad_compiled.handles(x, ((1, 1), (0, 2)))
    assert not pad_compiled.handles(x, ((1, 1),) * 3)                # three padded axes
    assert not pad_compiled.handles(x[:, :, ::2], ((1, 1),))         # strided
    assert not pad_compiled.handles(x.astype(np.int32), ((1, 1),))
    assert not pad_compiled.handles(np.zeros((2, 0, 4), np.float32), ((1, 1),))
    assert not pad_compiled.handles(np.zeros(4, np.float32), ((1, 1),))  # no axis before


def test_a_weight_gradient_with_few_items_is_cut_into_chunks_of_images():
    """LeNet-5's first layer: 3 items (pairs of output channels) of 2.9 million
    multiply-adds each become 9 blocks of about a million; never more chunks than images, and
    a layer with many items keeps whole batches."""
    from cnnlab.ops import conv_compiled

    assert conv_compiled._WORK_PER_BLOCK == 1 << 20
    assert conv_compiled._image_chunks(64, 3, 2 * 64 * 25 * 892) == 3
    assert conv_compiled._image_chunks(2, 3, 10 << 20) == 2
    assert conv_compiled._image_chunks(64, 64, 1 << 19) == 1
    assert conv_compiled._image_chunks(64, 1, 1 << 20) == 1
    assert conv_compiled._image_chunks(64, 1, (1 << 20) + 1) == 2
