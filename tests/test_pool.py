"""Max, average and adaptive average pooling, 1-, 2- and 3-D: loop reference, gradcheck, PyTorch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import reference

from cnnlab import functional as F
from cnnlab import nn, tensor
from cnnlab.autograd import gradcheck
from cnnlab.ops import kernels

MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
ADAPTIVE = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 4, 5)}


@pytest.fixture(params=["numpy", "compiled"] if kernels.numba_installed() else ["numpy"])
def kernel_path(request):
    """Max pooling runs on both paths: the NumPy reference and the compiled loops."""
    with kernels.forced_kernels(request.param):
        yield request.param


def _t(value, nd):
    return (value,) * nd if isinstance(value, int) else tuple(value)


def _distinct(rng, shape, scale=0.1):
    """Values without ties (a scaled permutation), so every window has one clear maximum."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - shape[-1]) * scale


# ------------------------------------------------------------------------------ grids

def max_cases():
    """nd × kernel × stride × padding × dilation × ceil_mode, plus the border cases."""
    axes = {
        1: dict(kernel=[2, 3], stride=[None, 1, 2], padding=[0, 1], dilation=[1, 2]),
        2: dict(kernel=[2, (3, 2)], stride=[None, 1, (2, 3)], padding=[0, (1, 1)],
                dilation=[1, (2, 1)]),
        3: dict(kernel=[2, (3, 2, 2)], stride=[None, (1, 2, 2)], padding=[0, 1],
                dilation=[1, (1, 2, 1)]),
    }
    cases = []
    for nd, grid in axes.items():
        for k, s, p, d, ceil in itertools.product(*grid.values(), (False, True)):
            if any(pp > kk // 2 for pp, kk in zip(_t(p, nd), _t(k, nd))):
                continue
            cases.append((nd, SPATIAL[nd], k, s, p, d, ceil))
    cases += [
        (1, (5,), 2, 2, 1, 1, True),       # ceil_mode drops the window starting in the padding
        (1, (6,), 3, 2, 1, 1, True),       # ceil_mode adds a last window that sticks out
        (1, (2,), 3, 2, 0, 1, True),       # one window larger than the whole input (ceil_mode)
        (2, (5, 5), 3, 2, 1, 2, True),     # overlapping dilated windows, partial last window
        (2, (4, 7), (4, 3), (3, 1), (2, 1), 1, True),
        (3, (3, 4, 5), 3, 1, 1, 1, False),  # heavy overlap in every axis
    ]
    return cases


def avg_cases():
    """nd × kernel × stride × padding × ceil_mode × count_include_pad (+ divisor_override)."""
    axes = {
        1: dict(kernel=[2, 3], stride=[None, 1, 2], padding=[0, 1]),
        2: dict(kernel=[2, (3, 2)], stride=[None, 1, (2, 3)], padding=[0, (1, 1)]),
        3: dict(kernel=[2, (3, 2, 2)], stride=[None, (1, 2, 2)], padding=[0, 1]),
    }
    cases = []
    for nd, grid in axes.items():
        for k, s, p, ceil, cip in itertools.product(*grid.values(), (False, True),
                                                   (False, True)):
            if any(pp > kk // 2 for pp, kk in zip(_t(p, nd), _t(k, nd))):
                continue
            cases.append((nd, SPATIAL[nd], k, s, p, ceil, cip, None))
    cases += [
        (1, (5,), 2, 2, 1, True, False, None),
        (1, (6,), 3, 2, 1, True, True, None),
        (2, (2, 2), 3, 2, 0, True, True, None),     # window larger than the input (ceil_mode)
        (2, (7, 6), 3, 2, 1, True, False, 5),       # divisor_override
        (3, (5, 4, 5), (3, 2, 2), 1, 1, False, True, -2),
    ]
    return cases


ADAPTIVE_CASES = [
    (1, (9,), 3), (1, (7,), 3), (1, (5,), 8), (1, (4,), 1),
    (2, (7, 6), (3, 4)), (2, (5, 5), 2), (2, (6, 9), (None, 4)), (2, (3, 4), (5, 7)),
    (3, (5, 4, 5), (2, 3, None)), (3, (4, 4, 4), 1), (3, (3, 5, 2), (4, 2, 3)),
]

MAX_CASES, AVG_CASES = max_cases(), avg_cases()


def _max_args(nd, k, s, p, d):
    kernel = _t(k, nd)
    return kernel, kernel if s is None else _t(s, nd), _t(p, nd), _t(d, nd)


# ------------------------------------------------------------------------------ loop reference

@pytest.mark.parametrize("nd, spatial, k, s, p, d, ceil", MAX_CASES)
def test_max_pool_matches_loop_reference(rng, kernel_path, nd, spatial, k, s, p, d, ceil):
    x = tensor(_distinct(rng, (2, 3, *spatial)), requires_grad=True)
    y, indices = MAX[nd](x, k, s, p, d, ceil, return_indices=True)
    y_ref, idx_ref = reference.max_pool_nd(x.data, *_max_args(nd, k, s, p, d), ceil)
    np.testing.assert_array_equal(y.data, y_ref)
    np.testing.assert_array_equal(indices, idx_ref)
    assert indices.dtype == np.int64
    no_grad_path = MAX[nd](x.data, k, s, p, d, ceil)        # maxima only, no argmax kept
    np.testing.assert_array_equal(no_grad_path.data, y_ref)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    dx_ref = np.zeros(x.shape).reshape(6, -1)          # every maximum receives its dy
    np.add.at(dx_ref, (np.arange(6)[:, None], idx_ref.reshape(6, -1)), dy.reshape(6, -1))
    np.testing.assert_allclose(x.grad, dx_ref.reshape(x.shape), atol=1e-12)


@pytest.mark.parametrize("nd, spatial, k, s, p, ceil, cip, divisor", AVG_CASES)
def test_avg_pool_matches_loop_reference(rng, nd, spatial, k, s, p, ceil, cip, divisor):
    x = rng.standard_normal((2, 3, *spatial))
    extra = {} if divisor is None else {"divisor_override": divisor}
    y = AVG[nd](x, k, s, p, ceil, cip, **extra)
    kernel, stride, padding, _ = _max_args(nd, k, s, p, 1)
    y_ref = reference.avg_pool_nd(x, kernel, stride, padding, ceil, cip, divisor)
    np.testing.assert_allclose(y.data, y_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd, spatial, size", ADAPTIVE_CASES)
def test_adaptive_avg_pool_matches_loop_reference(rng, nd, spatial, size):
    x = rng.standard_normal((2, 3, *spatial))
    y = ADAPTIVE[nd](x, size)
    sizes = (size,) * nd if isinstance(size, int) else size
    np.testing.assert_allclose(y.data, reference.adaptive_avg_pool_nd(x, sizes), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("ceil", [False, True])
def test_output_size_and_window_rejection_follow_the_definition(ceil):
    """The library raises exactly when the definition of pooling leaves no window."""
    for n, k, s, p, d in itertools.product(range(1, 7), range(1, 5), range(1, 4), range(3),
                                           range(1, 3)):
        if p > k // 2:
            continue
        windows = len(reference._pool_starts(n, k, s, p, d, ceil))
        x = np.zeros((1, 1, n))
        if windows == 0:
            with pytest.raises(ValueError, match="larger than the padded input"):
                F.max_pool1d(x, k, s, p, d, ceil)
        else:
            assert F.max_pool1d(x, k, s, p, d, ceil).shape == (1, 1, windows), (n, k, s, p, d)


# ------------------------------------------------------------------------------ gradcheck

GRAD_MAX = [c for c in MAX_CASES if c[0] < 3 or (c[3] == 2 and c[6])]
GRAD_AVG = [c for c in AVG_CASES if c[0] < 3 or c[7] is not None or (c[5] and c[6])]


@pytest.mark.parametrize("nd, spatial, k, s, p, d, ceil", GRAD_MAX)
def test_max_pool_gradcheck(rng, kernel_path, nd, spatial, k, s, p, d, ceil):
    x = _distinct(rng, (1, 1, *spatial))
    result = gradcheck(lambda t: MAX[nd](t, k, s, p, d, ceil), [x])
    assert result, str(result)


@pytest.mark.parametrize("nd, spatial, k, s, p, ceil, cip, divisor", GRAD_AVG)
def test_avg_pool_gradcheck(rng, nd, spatial, k, s, p, ceil, cip, divisor):
    extra = {} if divisor is None else {"divisor_override": divisor}
    x = rng.standard_normal((1, 1, *spatial))
    result = gradcheck(lambda t: AVG[nd](t, k, s, p, ceil, cip, **extra), [x])
    assert result, str(result)


@pytest.mark.parametrize("nd, spatial, size", ADAPTIVE_CASES)
def test_adaptive_avg_pool_gradcheck(rng, nd, spatial, size):
    result = gradcheck(lambda t: ADAPTIVE[nd](t, size), [rng.standard_normal((1, 1, *spatial))])
    assert result, str(result)


# ------------------------------------------------------------------------------ PyTorch

def _torch_check(torch, ours, theirs, x, rng):
    """Forward and input gradient of ``ours`` and ``theirs`` agree in float64 to 1e-6."""
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    y_torch, idx_torch = (yt if isinstance(yt, tuple) else (yt, None))
    xc = tensor(x, requires_grad=True)
    out = ours(xc)
    y, idx = out if isinstance(out, tuple) else (out, None)
    assert y.shape == tuple(y_torch.shape) and y.dtype == np.float64
    np.testing.assert_allclose(y.data, y_torch.detach().numpy(), rtol=1e-6, atol=1e-6)
    if idx_torch is not None:
        np.testing.assert_array_equal(idx, idx_torch.numpy())
    dy = rng.standard_normal(y.shape)
    y_torch.backward(torch.tensor(dy))
    y.backward(dy)
    np.testing.assert_allclose(xc.grad, xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("nd, spatial, k, s, p, d, ceil", MAX_CASES)
def test_max_pool_matches_torch(rng, kernel_path, nd, spatial, k, s, p, d, ceil):
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.nn.functional, f"max_pool{nd}d")
    _torch_check(torch, lambda t: MAX[nd](t, k, s, p, d, ceil, return_indices=True),
                 lambda t: theirs(t, k, s, p, d, ceil, return_indices=True),
                 _distinct(rng, (2, 3, *spatial)), rng)


@pytest.mark.parametrize("nd, spatial, k, s, p, ceil, cip, divisor", AVG_CASES)
def test_avg_pool_matches_torch(rng, nd, spatial, k, s, p, ceil, cip, divisor):
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.nn.functional, f"avg_pool{nd}d")
    extra = {} if divisor is None else {"divisor_override": divisor}
    _torch_check(torch, lambda t: AVG[nd](t, k, s, p, ceil, cip, **extra),
                 lambda t: theirs(t, k, s, p, ceil, cip, **extra),
                 rng.standard_normal((2, 3, *spatial)), rng)


@pytest.mark.parametrize("nd, spatial, size", ADAPTIVE_CASES)
def test_adaptive_avg_pool_matches_torch(rng, nd, spatial, size):
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.nn.functional, f"adaptive_avg_pool{nd}d")
    _torch_check(torch, lambda t: ADAPTIVE[nd](t, size), lambda t: theirs(t, size),
                 rng.standard_normal((2, 3, *spatial)), rng)


def test_max_pool_nan_and_minus_inf_match_torch(kernel_path):
    torch = pytest.importorskip("torch")
    inf, nan = np.inf, np.nan
    for row, k, s, p, ceil in [([1, nan, 3, nan, 2], 5, 5, 0, False),
                               ([nan, 1, 3, 2, 2], 2, 1, 1, True),
                               ([-inf, -inf, 3, nan, 2], 2, 2, 1, False),
                               ([-inf] * 5, 3, 2, 1, True)]:
        x = np.array([[row]])
        y, idx = F.max_pool1d(x, k, s, p, 1, ceil, return_indices=True)
        y_t, idx_t = torch.nn.functional.max_pool1d(torch.tensor(x), k, s, p, 1, ceil, True)
        np.testing.assert_array_equal(y.data, y_t.numpy())
        np.testing.assert_array_equal(idx, idx_t.numpy())
        np.testing.assert_array_equal(F.max_pool1d(x, k, s, p, 1, ceil).data, y_t.numpy())


def test_max_pool_2x2_nan_and_ties_match_torch(kernel_path):
    """LeNet's pooling (2×2, stride 2, the compiled loops' shape): NaN anywhere in a window
    wins, the last NaN's position is kept; a window without NaN keeps its first maximum."""
    torch = pytest.importorskip("torch")
    nan = np.nan
    x = np.array([[[[1, nan, 2, 2, 0], [nan, 3, 2, 1, 0], [5, 5, 7, 7, 0], [5, 5, 7, 8, 0],
                    [9, 9, 9, 9, 9]]]], dtype=np.float32)
    y, idx = F.max_pool2d(tensor(x), 2, return_indices=True)
    y_t, idx_t = torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(y.data, y_t.numpy())
    np.testing.assert_array_equal(idx, idx_t.numpy())
    xc = tensor(x, requires_grad=True)
    F.max_pool2d(xc, 2).backward(np.ones((1, 1, 2, 2), dtype=np.float32))
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 2).backward(torch.ones(1, 1, 2, 2))
    np.testing.assert_array_equal(xc.grad, xt.grad.numpy())


@pytest.mark.skipif(not kernels.numba_installed(), reason="the compiled kernels need numba")
def test_compiled_loops_take_2x2_stride_2_only_and_leave_nan_to_numpy(rng):
    from cnnlab.ops import pool as pool_ops
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    with kernels.forced_kernels("compiled"):
        y, cache = pool_ops.max_pool_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
        assert cache.compiled and cache.index.dtype == np.int32
        y_only, none = pool_ops.max_pool_forward(x, (2, 2), (2, 2), (0, 0), (1, 1),
                                                 keep_index=False)
        assert none is None
        np.testing.assert_array_equal(y_only, y)
        with kernels.forced_kernels("numpy"):
            y_numpy, cache_numpy = pool_ops.max_pool_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
        np.testing.assert_array_equal(y, y_numpy)
        np.testing.assert_array_equal(cache.index, cache_numpy.index)
        for args in [((2, 2), (1, 1), (0, 0), (1, 1)), ((3, 3), (2, 2), (0, 0), (1, 1)),
                     ((2, 2), (2, 2), (1, 1), (1, 1)), ((2, 2), (2, 2), (0, 0), (2, 2))]:
            assert not pool_ops.max_pool_forward(x, *args)[1].compiled
        assert not pool_ops.max_pool_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), True)[1].compiled
        x[1, 2, 5, 6] = np.nan                     # in no window (the odd last column)
        assert pool_ops.max_pool_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))[1].compiled
        x[1, 2, 3, 3] = np.nan
        assert not pool_ops.max_pool_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))[1].compiled


# ------------------------------------------------------------------------------ worked cases

LECTURE = np.array([[1, 3, 2, 1], [2, 9, 1, 1], [1, 3, 2, 3], [5, 6, 1, 2]], dtype=np.float32)


def test_lecture_max_pool_4x4_to_2x2(kernel_path):
    x = tensor(LECTURE[None, None], requires_grad=True)
    y = F.max_pool2d(x, 2)                        # stride defaults to the kernel size
    np.testing.assert_array_equal(y.data[0, 0], [[9, 2], [6, 3]])
    y.backward(np.array([[[[10, 20], [30, 40]]]], dtype=np.float32))
    np.testing.assert_array_equal(x.grad[0, 0], [[0, 0, 20, 0],
                                                 [0, 10, 0, 0],
                                                 [0, 0, 0, 40],
                                                 [0, 30, 0, 0]])


def test_max_pool_ties_go_to_the_first_maximum(kernel_path):
    x = tensor(np.array([[[3.0, 3.0, 1.0, 1.0, 7.0, 7.0]]]), requires_grad=True)
    y, idx = F.max_pool1d(x, 2, return_indices=True)
    np.testing.assert_array_equal(idx, [[[0, 2, 4]]])
    y.backward(np.ones((1, 1, 3)))
    np.testing.assert_array_equal(x.grad, [[[1, 0, 1, 0, 1, 0]]])


def test_max_pool_2x2_stride_2_literal_and_indices(kernel_path):
    x = np.array([[0, 0, 14, 82], [149, 32, 0, 0], [28, 53, 64, 44], [39, 120, 133, 99]],
                 dtype=np.float32)
    y, idx = F.max_pool2d(x[None], 2, stride=2, return_indices=True)     # unbatched (C, H, W)
    np.testing.assert_array_equal(y.data, [[[149, 82], [120, 133]]])
    np.testing.assert_array_equal(idx, [[[4, 3], [13, 14]]])
    assert y.dtype == np.float32


def test_max_pool_3x3_stride_2_padding_1_literal(kernel_path):
    x = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2],
                  [2, 0, 0, 0, 1]], dtype=np.float32)
    y = F.max_pool2d(x[None, None], 3, stride=2, padding=1)
    np.testing.assert_array_equal(y.data[0, 0], [[3, 3, 3], [3, 3, 3], [2, 2, 2]])


def test_max_pool_overlapping_windows_accumulate_gradient(kernel_path):
    x = tensor(np.array([[[1.0, 5.0, 2.0, 0.0]]]), requires_grad=True)
    y = F.max_pool1d(x, 3, stride=1)               # both windows pick the 5
    np.testing.assert_array_equal(y.data, [[[5, 5]]])
    y.backward(np.array([[[1.0, 2.0]]]))
    np.testing.assert_array_equal(x.grad, [[[0, 3, 0, 0]]])


def test_ceil_mode_literal(kernel_path):
    x = np.array([[[1, 2, 3, 4, 5]]], dtype=np.float32)
    np.testing.assert_array_equal(F.max_pool1d(x, 2).data, [[[2, 4]]])
    np.testing.assert_array_equal(F.max_pool1d(x, 2, ceil_mode=True).data, [[[2, 4, 5]]])
    np.testing.assert_array_equal(F.avg_pool1d(x, 2, ceil_mode=True).data, [[[1.5, 3.5, 5]]])
    # padding 1: windows [pad,1], [2,3], [4,5]; a 4th would start in the right padding: dropped
    np.testing.assert_array_equal(F.max_pool1d(x, 2, padding=1, ceil_mode=True).data,
                                  [[[1, 3, 5]]])
    np.testing.assert_array_equal(
        F.avg_pool1d(x, 2, padding=1, ceil_mode=True, count_include_pad=True).data,
        [[[0.5, 2.5, 4.5]]])


def test_avg_pool_count_include_pad_literal():
    ones = np.ones((1, 1, 3, 3), dtype=np.float32)
    included = F.avg_pool2d(ones, 3, stride=1, padding=1).data[0, 0]
    np.testing.assert_allclose(included, np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) / 9)
    excluded = F.avg_pool2d(ones, 3, stride=1, padding=1, count_include_pad=False)
    np.testing.assert_allclose(excluded.data[0, 0], np.ones((3, 3)))
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(F.avg_pool2d(x, 2, divisor_override=2).data[0, 0],
                                  [[5, 9], [21, 25]])


def test_avg_pool_gradient_literal():
    x = tensor(np.zeros((1, 1, 4)), requires_grad=True)
    F.avg_pool1d(x, 2, stride=1).backward(np.array([[[2.0, 4.0, 6.0]]]))
    np.testing.assert_array_equal(x.grad, [[[1, 3, 5, 3]]])


def test_adaptive_avg_pool_literal():
    x = np.arange(5, dtype=np.float32)[None, None]
    # bins [0, 2), [1, 4), [3, 5): floor(i*5/3) .. ceil((i+1)*5/3)
    np.testing.assert_allclose(F.adaptive_avg_pool1d(x, 3).data, [[[0.5, 2.0, 3.5]]])
    x2 = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x2, (1, None)).data, [[[4, 5, 6, 7]]])
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x2, 1).data, [[[5.5]]])
    kept = F.adaptive_avg_pool2d(x2, (None, None)).data
    np.testing.assert_array_equal(kept, x2)
    assert not np.shares_memory(kept, x2)


# ------------------------------------------------------------------------------ dtype, layout

@pytest.mark.parametrize("fn", [
    lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True),
    lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda t: F.adaptive_avg_pool2d(t, (3, 2)),
])
def test_float32_stays_float32_and_unbatched_matches_batched(rng, kernel_path, fn):
    data = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    x = tensor(data, requires_grad=True)
    y = fn(x)
    y.backward(np.ones(y.shape, dtype=np.float32))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    single = tensor(data[1], requires_grad=True)
    y1 = fn(single)
    y1.backward(np.ones(y1.shape, dtype=np.float32))
    np.testing.assert_array_equal(y1.data, y.data[1])
    np.testing.assert_array_equal(single.grad, x.grad[1])
    transposed = np.ascontiguousarray(data.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(fn(transposed).data, y.data)    # non-contiguous input


@pytest.mark.parametrize("fn", [
    lambda t: F.max_pool2d(t, 2), lambda t: F.max_pool2d(t, 3, 1, 1),
    lambda t: F.avg_pool2d(t, 2), lambda t: F.adaptive_avg_pool2d(t, 3),
])
def test_empty_batch_passes_through(kernel_path, fn):
    x = tensor(np.zeros((0, 3, 4, 4), dtype=np.float32), requires_grad=True)
    y = fn(x)
    y.backward(np.zeros(y.shape, dtype=np.float32))
    assert y.shape[:2] == (0, 3) and x.grad.shape == (0, 3, 4, 4)


def test_unbatched_indices_have_the_unbatched_shape(rng, kernel_path):
    y, idx = F.max_pool3d(rng.standard_normal((2, 4, 4, 4)), 2, return_indices=True)
    assert y.shape == idx.shape == (2, 2, 2, 2)


# ------------------------------------------------------------------------------ nn layers

def test_layers_shapes_and_no_parameters(rng):
    x2 = rng.standard_normal((2, 6, 28, 28)).astype(np.float32)
    assert nn.MaxPool2d(2)(x2).shape == (2, 6, 14, 14)
    assert nn.AvgPool2d(3, stride=2, padding=1)(x2).shape == (2, 6, 14, 14)
    assert nn.AdaptiveAvgPool2d((None, 3))(x2).shape == (2, 6, 28, 3)
    assert nn.MaxPool1d(3, stride=2, ceil_mode=True)(x2[:, :, 0]).shape == (2, 6, 14)
    assert nn.AvgPool1d(4)(x2[:, :, 0]).shape == (2, 6, 7)
    assert nn.AdaptiveAvgPool1d(5)(x2[:, :, 0]).shape == (2, 6, 5)
    x3 = x2[:, :, :8, :8, None].repeat(4, axis=-1)
    assert nn.MaxPool3d((2, 2, 1))(x3).shape == (2, 6, 4, 4, 4)
    assert nn.AvgPool3d(2, divisor_override=3)(x3).shape == (2, 6, 4, 4, 2)
    assert nn.AdaptiveAvgPool3d(1)(x3).shape == (2, 6, 1, 1, 1)
    assert nn.MaxPool2d(2).state_dict() == {} and list(nn.AvgPool2d(2).parameters()) == []


def test_layer_return_indices_and_matches_functional(rng, kernel_path):
    x = rng.standard_normal((1, 2, 6, 6))
    y, idx = nn.MaxPool2d(3, stride=2, padding=1, return_indices=True)(x)
    y_f, idx_f = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(y.data, y_f.data)
    np.testing.assert_array_equal(idx, idx_f)
    np.testing.assert_array_equal(
        nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x).data,
        F.avg_pool2d(x, 3, 1, 1, count_include_pad=False).data)


@pytest.mark.parametrize("layer, text", [
    (nn.MaxPool1d(2), "MaxPool1d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"),
    (nn.MaxPool2d(2), "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"),
    (nn.MaxPool2d((2, 3), stride=1, padding=1, dilation=2, return_indices=True, ceil_mode=True),
     "MaxPool2d(kernel_size=(2, 3), stride=1, padding=1, dilation=2, ceil_mode=True)"),
    (nn.MaxPool3d(2), "MaxPool3d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"),
    (nn.AvgPool1d(2), "AvgPool1d(kernel_size=(2,), stride=(2,), padding=(0,))"),
    (nn.AvgPool2d(2), "AvgPool2d(kernel_size=2, stride=2, padding=0)"),
    (nn.AvgPool2d(3, 1, 1, True, False, 4), "AvgPool2d(kernel_size=3, stride=1, padding=1)"),
    (nn.AvgPool3d(2), "AvgPool3d(kernel_size=2, stride=2, padding=0)"),
    (nn.AdaptiveAvgPool1d(3), "AdaptiveAvgPool1d(output_size=3)"),
    (nn.AdaptiveAvgPool2d((None, 3)), "AdaptiveAvgPool2d(output_size=(None, 3))"),
    (nn.AdaptiveAvgPool3d((2, None, 1)), "AdaptiveAvgPool3d(output_size=(2, None, 1))"),
])
def test_layer_repr_matches_torch(layer, text):
    assert repr(layer) == text


def test_layer_reprs_equal_torch_reprs():
    torch = pytest.importorskip("torch")
    for name, args in [("MaxPool2d", (3, 2, 1)), ("AvgPool1d", (3,)), ("AvgPool3d", (2, 1)),
                       ("AdaptiveAvgPool2d", ((None, 2),)), ("MaxPool1d", (2, None, 1, 2))]:
        assert repr(getattr(nn, name)(*args)) == repr(getattr(torch.nn, name)(*args))


# ------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("call, error, text", [
    (lambda: F.max_pool2d(np.zeros((1, 1, 2, 2)), 3), ValueError,
     r"max_pool2d: pooling window of size 3 \(dilation 1\) is larger than the padded input of "
     r"size 2 .*input shape \(1, 1, 2, 2\)"),
    (lambda: F.avg_pool1d(np.zeros((1, 1, 4)), 2, stride=1, padding=2), ValueError,
     r"avg_pool1d: padding must be at most half of kernel_size .*received padding 2 with "
     r"kernel_size 2"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 9, 9)), 3, padding=2, dilation=2), ValueError,
     "padding must be at most half of kernel_size"),            # torch's rule ignores dilation
    (lambda: F.max_pool2d(np.zeros((4, 4)), 2), ValueError,
     r"max_pool2d expected a 4-D input \(N, C, H, W\) or 3-D unbatched input, received shape "
     r"\(4, 4\)"),
    (lambda: F.adaptive_avg_pool3d(np.zeros((4, 4)), 2), ValueError,
     r"adaptive_avg_pool3d expected a 5-D input"),
    (lambda: F.max_pool1d(np.zeros((1, 1, 4)), 0), ValueError,
     r"max_pool1d: kernel_size must be positive, received 0"),
    (lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, stride=(1, 0)), ValueError,
     r"avg_pool2d: stride must be positive, received \(1, 0\)"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 2, padding=-1), ValueError,
     r"padding must be non-negative"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), (2, 2, 2)), TypeError,
     r"max_pool2d: kernel_size must be an int or a tuple of 2 ints, received \(2, 2, 2\)"),
    (lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, divisor_override=0), ValueError,
     r"divisor_override must be a non-zero int or None, received 0"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((1, 1, 4, 4)), (2,)), ValueError,
     r"adaptive_avg_pool2d: output_size must be a non-negative int or a tuple of 2"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((1, 1, 4, 4)), None), ValueError,
     r"output_size must be a non-negative int or a tuple of 2 .*received None"),
    (lambda: F.adaptive_avg_pool1d(np.zeros((1, 1, 4)), -1), ValueError,
     r"output_size must be a non-negative int .*received -1"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((1, 1, 0, 4)), 2), ValueError,
     r"adaptive_avg_pool2d expected non-empty spatial dimensions, received input shape"),
    (lambda: F.max_pool1d(np.zeros((1, 1, 4), dtype=np.int64), 2), TypeError,
     r"max_pool1d input must hold floating-point numbers, received dtype int64"),
    (lambda: nn.MaxPool2d(2)(np.zeros((1, 3, 1, 5), np.float32)), ValueError,
     r"MaxPool2d\(kernel 2×2, stride 2×2\): pooling window of size 2 .* input shape "
     r"\(1, 3, 1, 5\)"),
    (lambda: nn.AvgPool3d(2)(np.zeros((2, 2), np.float32)), ValueError,
     r"AvgPool3d\(kernel 2×2×2, stride 2×2×2\) expected a 5-D input"),
    (lambda: nn.AdaptiveAvgPool2d(3)(np.zeros((2, 2), np.float32)), ValueError,
     r"AdaptiveAvgPool2d\(output 3×3\) expected a 4-D input"),
    (lambda: nn.MaxPool2d(3, padding=2), ValueError,
     r"MaxPool2d: padding must be at most half of kernel_size"),
    (lambda: nn.AvgPool2d(2, stride=0), ValueError, r"AvgPool2d: stride must be positive"),
    (lambda: nn.AdaptiveAvgPool3d((1, 2)), ValueError,
     r"AdaptiveAvgPool3d: output_size must be a non-negative int or a tuple of 3"),
])
def test_bad_input_is_explained(call, error, text):
    with pytest.raises(error, match=text):
        call()
