"""The fused convolution, ReLU and 2×2 max pooling (``F.conv2d_relu``, and ``nn.Sequential``
running ``Conv2d, ReLU(, MaxPool2d(2))`` that way): the values and gradients of the three
layers run in turn, bit for bit, NaN, infinity and ties included, whichever algorithm computes
the convolution; and never where an observer must see every layer."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import functional as F
from cnnlab import gradcheck, models, nn, no_grad, random
from cnnlab.nn import container
from cnnlab.ops import conv as conv_ops
from cnnlab.ops import kernels
from cnnlab.ops.activation import relu_backward, relu_forward
from cnnlab.ops.pool import max_pool_backward, max_pool_forward
from cnnlab.tools.summary import leaf_activations

compiled_only = pytest.mark.skipif(not kernels.numba_installed(),
                                   reason="needs numba (cnnlab[fast])")


def _layers_in_turn(x, w, b, stride, pads, dilation, groups, mode, pool2):
    z, _ = conv_ops.conv_forward(x, w, b, stride, pads, dilation, groups, mode)
    y, _ = relu_forward(z)
    if pool2:
        y, _ = max_pool_forward(y, (2, 2), (2, 2), (0, 0), (1, 1), keep_index=False)
    return y


def _with_specials(x):
    """NaN, +inf and -inf among the inputs (each reaches some windows of every layer)."""
    x = x.copy()
    x.reshape(-1)[[3, 40, -5]] = [np.nan, np.inf, -np.inf]
    return x


# (x shape, w shape, pads, stride, dilation, groups, padding mode, forced algorithm or None)
CASES = [
    ((3, 1, 28, 28), (6, 1, 5, 5), 2, 1, 1, 1, "zeros", None),        # LeNet conv1: direct
    ((3, 6, 14, 14), (16, 6, 5, 5), 0, 1, 1, 1, "zeros", None),       # LeNet conv2: image_gemm
    ((2, 3, 9, 11), (5, 3, 3, 3), 1, 1, 1, 1, "zeros", None),         # odd sizes: direct
    ((2, 3, 9, 11), (5, 3, 3, 3), 1, 1, 1, 1, "reflect", "direct"),
    ((2, 3, 11, 13), (5, 3, 3, 3), 2, 1, 2, 1, "zeros", "direct"),    # rows 4 wider than Z's
    ((2, 4, 9, 8), (6, 2, 3, 3), 1, 1, 1, 2, "zeros", "direct"),      # groups
    ((2, 5, 11, 9), (7, 5, 3, 3), 1, 2, 1, 1, "zeros", "image_gemm"),  # stride 2
    ((2, 5, 11, 9), (7, 5, 3, 3), 2, 1, 2, 1, "zeros", "image_gemm"),  # dilation 2
    ((2, 5, 11, 9), (7, 5, 3, 3), 1, 1, 1, 1, "reflect", "image_gemm"),  # pads first
    ((2, 4, 10, 10), (4, 1, 3, 3), 1, 1, 1, 4, "zeros", "direct"),    # depthwise kernels
    ((2, 16, 10, 10), (8, 16, 3, 3), 1, 1, 1, 1, "zeros", "winograd"),
    ((2, 5, 11, 9), (7, 5, 3, 3), 1, 1, 1, 1, "zeros", "gemm"),
    ((2, 2, 12, 12), (3, 2, 5, 5), 2, 1, 1, 1, "zeros", "fft"),
]


@compiled_only
@pytest.mark.parametrize("pool2", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, pad, stride, dilation, groups, mode, algorithm",
                         CASES)
def test_fused_values_are_the_layers_in_turn_bit_for_bit(x_shape, w_shape, pad, stride,
                                                         dilation, groups, mode, algorithm,
                                                         dtype, pool2, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    specials = algorithm != "fft"                    # (a NaN fills the FFT's whole output)
    x = _with_specials(x) if specials else x
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    args = ((stride,) * 2, ((pad, pad),) * 2, (dilation,) * 2, groups, mode)
    with conv_ops.forced_algorithm(algorithm) if algorithm else _nothing():
        fused, cache = conv_ops.conv_relu_forward(x, w, b, *args, pool2=pool2)
        expected = _layers_in_turn(x, w, b, *args, pool2)
    assert cache is None and fused.dtype == expected.dtype and fused.shape == expected.shape
    assert np.isnan(expected).any() == specials and (expected == 0).any()
    assert (expected > 0).any()
    np.testing.assert_array_equal(fused, expected)
    np.testing.assert_array_equal(np.signbit(fused), np.signbit(expected))   # no -0.0


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@compiled_only
def test_each_epilogue_of_the_kernels_on_its_own(rng):
    """The epilogues of both compiled forwards: the sums, their ReLU, its 2×2 maxima (a
    1-D layer too, where only the first two exist)."""
    from cnnlab.ops import conv_compiled

    x = rng.standard_normal((2, 3, 7, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    z = conv_compiled.correlate(x, w, b, (1, 1))
    relu = np.maximum(z, 0)
    pooled = relu[:, :, :6, :8].reshape(2, 4, 3, 2, 4, 2).max(axis=(3, 5))
    for epilogue, want in (("none", z), ("relu", relu), ("relu_pool2", pooled)):
        np.testing.assert_array_equal(conv_compiled.correlate(x, w, b, (1, 1), epilogue), want)
        gemm, _, _ = conv_compiled.image_gemm_forward(x, w, b, ((0, 0),) * 2, (1, 1), (1, 1),
                                                   epilogue)
        np.testing.assert_allclose(gemm, want, rtol=1e-5, atol=1e-5)
    x1, w1 = x[:, :, 0], w[:, :, 0]
    z1 = conv_compiled.correlate(x1, w1, b, (1,))
    np.testing.assert_array_equal(conv_compiled.correlate(x1, w1, b, (1,), "relu"),
                                  np.maximum(z1, 0))
    gemm1, _, _ = conv_compiled.image_gemm_forward(x1, w1, b, ((0, 0),), (1,), (1,), "relu")
    np.testing.assert_allclose(gemm1, np.maximum(z1, 0), rtol=1e-5, atol=1e-5)


def test_numpy_kernels_run_the_layers_in_turn(rng):
    x = _with_specials(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    args = ((1, 1), ((1, 1),) * 2, (1, 1), 1, "zeros")
    with kernels.forced_kernels("numpy"):
        np.testing.assert_array_equal(
            conv_ops.conv_relu_forward(x, w, None, *args, pool2=True)[0],
            _layers_in_turn(x, w, None, *args, True))


@compiled_only
def test_forced_direct_with_a_stride_is_refused_as_by_the_layer(rng):
    """The fused kernels compute stride 1 only; a forced ``direct`` with a stride goes to the
    convolution, which refuses it."""
    x, w = np.ones((1, 1, 8, 8), np.float32), np.ones((2, 1, 3, 3), np.float32)
    with conv_ops.forced_algorithm("direct"), pytest.raises(ValueError, match="stride 1"):
        conv_ops.conv_relu_forward(x, w, None, (2, 2), ((0, 0),) * 2, (1, 1))


@compiled_only
def test_less_than_a_block_of_work_stays_on_the_calling_thread(monkeypatch, rng):
    """One image of LeNet-5's first layer is 0.13 million multiply-adds: handing it to the
    pool would cost more than computing it."""
    from cnnlab.ops import conv_compiled, parallel

    def refuse(*args, **kwargs):
        raise AssertionError("a small job went to the thread pool")

    x = rng.standard_normal((1, 1, 32, 32)).astype(np.float32)
    w = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    expected = conv_compiled.correlate(x, w, None, (1, 1))
    monkeypatch.setattr(parallel, "run_ranges", refuse)
    np.testing.assert_array_equal(conv_compiled.correlate(x, w, None, (1, 1)), expected)
    with pytest.raises(AssertionError, match="thread pool"):
        conv_compiled.correlate(np.repeat(x, 64, axis=0), w, None, (1, 1))


@pytest.mark.parametrize("algorithm, mode", [("gemm", "zeros"), ("image_gemm", "reflect"),
                                             ("winograd", "zeros")])
def test_conv_forward_refuses_an_epilogue_it_cannot_apply(algorithm, mode):
    x, w = np.ones((1, 2, 8, 8), np.float32), np.ones((2, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="an epilogue needs the direct algorithm"):
        conv_ops.conv_forward(x, w, None, (1, 1), ((1, 1),) * 2, (1, 1), padding_mode=mode,
                              algorithm=algorithm, epilogue="relu")


def test_pool2_needs_a_2d_convolution(rng):
    with pytest.raises(ValueError, match="pool2 needs a 2-D convolution"):
        conv_ops.conv_relu_forward(np.ones((1, 1, 8)), np.ones((1, 1, 3)), None, (1,),
                                   ((0, 0),), (1,), pool2=True)


def test_functional_form_checks_its_pooling(rng):
    x, w = np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32)
    one = F.conv2d_relu(x[0], w, padding=1)                  # one image (C, H, W)
    assert one.shape == (1, 4, 4) and not one.requires_grad
    with pytest.raises(ValueError, match="2×2 max pooling needs a convolution output of at "
                                         "least 2×2"):
        F.conv2d_relu(x[:, :, :3, :3], w, pool2=True)        # a 1×1 output


def _gradients_in_turn(x, w, b, stride, pads, dilation, groups, mode, pool2, dy):
    """dX, dK, dB through the layers' own backward passes (pooling, ReLU, convolution)."""
    z, conv_cache = conv_ops.conv_forward(x, w, b, stride, pads, dilation, groups, mode)
    y, _ = relu_forward(z)
    if pool2:
        _, pool_cache = max_pool_forward(y, (2, 2), (2, 2), (0, 0), (1, 1))
        dy = max_pool_backward(dy, pool_cache)
    return conv_ops.conv_backward(relu_backward(dy, y), conv_cache)


@compiled_only
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")    # inf · 0 on both paths
@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("pool2", [False, True])
@pytest.mark.parametrize("x_shape, w_shape, pad, stride, dilation, groups, mode, algorithm",
                         CASES)
def test_fused_gradients_are_the_layers_in_turn_bit_for_bit(x_shape, w_shape, pad, stride,
                                                            dilation, groups, mode, algorithm,
                                                            pool2, need_dx, rng):
    """Ties included: the input is rounded so that windows hold equal maxima; and ``dY`` is
    infinite wherever the output is 0 or NaN, so that where the gradient of a closed ReLU
    lands (as NaN, on both paths) shows: the first position of a window whose maximum is 0,
    the last NaN of a window holding several (a NaN in ``X`` spreads over many outputs)."""
    x = np.round(rng.standard_normal(x_shape) * 2).astype(np.float32)
    if algorithm != "fft":                            # (a NaN fills the FFT's whole output)
        x.reshape(-1)[len(x.reshape(-1)) // 2] = np.nan
    w = np.round(rng.standard_normal(w_shape)).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    args = ((stride,) * 2, ((pad, pad),) * 2, (dilation,) * 2, groups, mode)
    with conv_ops.forced_algorithm(algorithm) if algorithm else _nothing():
        y, cache = conv_ops.conv_relu_forward(x, w, b, *args, pool2=pool2, keep=True)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dy[(y == 0) | np.isnan(y)] = np.inf
        assert (y == 0).any() and (np.isnan(y).any() or algorithm == "fft")
        fused = conv_ops.conv_relu_backward(dy, cache, need_dx=need_dx)
        expected = _gradients_in_turn(x, w, b, *args, pool2, dy)
    assert (fused[0] is not None) == need_dx
    if not need_dx:                  # (the first layer: with the pooling, the direct kernels
        fused, expected = fused[1:], expected[1:]      # take dZ as a PooledGradient)
    depthwise = groups > 1 and w_shape[1] == 1
    in_kernels = (algorithm in (None, "direct", "image_gemm") and not depthwise
                  and not (algorithm == "image_gemm" and mode != "zeros"))
    assert (cache.index is not None) == (pool2 and in_kernels)
    assert (cache.pool is not None) == (pool2 and not in_kernels)
    for got, want in zip(fused, expected):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


@compiled_only
@pytest.mark.parametrize("x_shape, w_shape, pad, need_dx", [
    ((3, 1, 28, 28), (6, 1, 5, 5), 2, False),         # LeNet conv1 (direct), the first layer
    ((3, 6, 14, 14), (16, 6, 5, 5), 0, True),         # LeNet conv2 (image_gemm, images last)
    ((2, 5, 20, 20), (7, 5, 3, 3), 0, True),          # image_gemm, rows of 18 (image by image)
])
def test_pooled_gradient_goes_to_the_kernels_without_a_full_size_dz(x_shape, w_shape, pad,
                                                                    need_dx, monkeypatch, rng):
    """With the pooling in the kernels, dZ reaches the backward kernels as the pooled
    ``dY·[Y > 0]`` and its positions: no full-size dZ is written (the pooling layer's
    backward never runs); the direct kernels' dX would pad a full dZ, so they take it only
    for dK alone."""
    from cnnlab.ops import conv_compiled, pool_compiled

    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    args = ((1, 1), ((pad, pad),) * 2, (1, 1), 1, "zeros")
    algorithm = "direct" if x_shape[1] == 1 else "image_gemm"
    with conv_ops.forced_algorithm(algorithm):
        y, cache = conv_ops.conv_relu_forward(x, w, None, *args, pool2=True, keep=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    expected = _gradients_in_turn(x, w, None, *args, True, dy)
    seen = []
    real = conv_compiled._dz_arguments
    monkeypatch.setattr(conv_compiled, "_dz_arguments", lambda dz: seen.append(dz) or real(dz))
    monkeypatch.setattr(pool_compiled, "max_pool_backward", None)         # never called
    got = conv_ops.conv_relu_backward(dy, cache, need_dx=need_dx)
    assert len(seen) == 1 and isinstance(seen[0], conv_compiled.PooledGradient)
    for ours, theirs in zip(got, expected):
        if ours is not None:
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("pool2", [False, True])
def test_fused_functional_passes_gradcheck(pool2, rng):
    x = rng.standard_normal((2, 2, 6, 7))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    result = gradcheck(lambda x, w, b: F.conv2d_relu(x, w, b, padding=1, pool2=pool2),
                       [x, w, b])
    assert result, str(result)


def _net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 3))


def _runs(monkeypatch) -> list[int]:
    """The fused runs Sequential takes, as their lengths."""
    taken: list[int] = []
    real = container._fused_run

    def spy(items, i):
        run = real(items, i)
        if run:
            taken.append(run)
        return run

    monkeypatch.setattr(container, "_fused_run", spy)
    return taken


def test_sequential_fuses_runs_and_gives_the_same_values_and_gradients(monkeypatch, rng):
    x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    results = {}
    for fuse in (False, True):
        random.manual_seed(0)
        net = _net()
        if not fuse:
            monkeypatch.setattr(container, "_fused_run", lambda items, i: 0)
        taken = _runs(monkeypatch) if fuse else []
        out = net(x)
        (out * out).sum().backward()
        with no_grad():
            inferred = net(x).data
        results[fuse] = [out.data, inferred] + [p.grad for p in net.parameters()]
        monkeypatch.undo()
    assert taken == [3, 2, 3, 2]                       # training, then inference
    for fused, in_turn in zip(results[True], results[False]):
        np.testing.assert_array_equal(fused, in_turn)


def test_lenet5_inference_is_fused_and_unchanged(monkeypatch, rng):
    net, x = models.lenet5(), rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    monkeypatch.setattr(container, "_fused_run", lambda items, i: 0)
    with no_grad():
        layer_by_layer = net(x).data
    monkeypatch.undo()
    taken = _runs(monkeypatch)
    with no_grad():
        np.testing.assert_array_equal(net(x).data, layer_by_layer)
    assert taken == [3, 3]


@pytest.mark.parametrize("pool, run", [
    (nn.MaxPool2d(2), 3), (nn.MaxPool2d((2, 2), stride=2, padding=0, dilation=1), 3),
    (nn.MaxPool2d(2, stride=1), 2), (nn.MaxPool2d(3), 2), (nn.MaxPool2d(2, padding=1), 2),
    (nn.MaxPool2d(2, dilation=2), 2), (nn.MaxPool2d(2, ceil_mode=True), 2),
    (nn.MaxPool2d(2, padding="same"), 2), (nn.MaxPool2d(2, return_indices=True), 2),
    (nn.AvgPool2d(2), 2)])
def test_only_a_plain_2x2_max_pooling_joins_the_run(pool, run):
    items = list(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), pool)._modules.items())
    assert container._fused_run(items, 0) == run


def test_what_breaks_a_run():
    conv, relu = nn.Conv2d(1, 2, 3), nn.ReLU()
    assert container._fused_run([("0", conv)], 0) == 0                  # nothing after
    assert container._fused_run([("0", conv), ("1", nn.Tanh())], 0) == 0
    assert container._fused_run([("0", nn.Conv1d(1, 2, 3)), ("1", relu)], 0) == 0

    class MyConv(nn.Conv2d):
        pass

    assert container._fused_run([("0", MyConv(1, 2, 3)), ("1", relu)], 0) == 0
    assert container._fused_run([("0", conv), ("1", relu)], 0) == 2
    handle = relu.register_forward_hook(lambda m, a, out: None)
    assert container._fused_run([("0", conv), ("1", relu)], 0) == 0
    handle.remove()
    for register in (conv.register_forward_pre_hook, conv.register_full_backward_hook):
        handle = register(lambda *a: None)
        assert container._fused_run([("0", conv), ("1", relu)], 0) == 0
        handle.remove()
    object.__setattr__(relu, "forward", relu.forward)                   # replaced on the instance
    assert container._fused_run([("0", conv), ("1", relu)], 0) == 0


def test_observers_see_every_layer(rng):
    net, x = _net(), rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    seen = []
    net[1].register_forward_hook(lambda m, args, out: seen.append(out.shape))
    with no_grad():
        net(x)
    assert seen == [(2, 4, 8, 8)]
    names = [name for name, *_ in leaf_activations(net, x)]
    assert names == ["0", "1", "2", "3", "4", "5", "6"]


def test_a_type_error_names_the_layer_as_it_would_alone():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2))
    with pytest.raises(TypeError, match=r"^Conv2d\(1→2, kernel 3×3\) input must hold "
                                        r"floating-point numbers"):
        net(np.ones((1, 1, 8, 8), np.int32))


def test_errors_still_name_the_layer(rng):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2))
    with no_grad(), pytest.raises(ValueError, match=r"^layer 2 \(MaxPool2d\)"):
        net(rng.standard_normal((1, 1, 3, 3)).astype(np.float32))      # 1×1 after the conv
    with no_grad(), pytest.raises(ValueError, match=r"^layer 0 \(Conv2d\)"):
        net(rng.standard_normal((1, 3, 8, 8)).astype(np.float32))      # wrong channels
