"""Convolution and transposed convolution, 1-, 2- and 3-D: loop reference, gradcheck, PyTorch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import reference

from cnnlab import functional as F
from cnnlab import nn
from cnnlab.autograd import gradcheck
from cnnlab.ops.shapes import resolve_padding

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 5, 4)}
KERNEL = {1: (3,), 2: (3, 2), 3: (2, 3, 2)}

# Every padding form, per dimension: int, per-axis tuple, explicit (before, after) pairs, names.
PADDINGS = {
    1: [0, 2, (1,), ((0, 2),), "valid", "same"],
    2: [0, 1, (2, 0), ((1, 0), (0, 2)), "valid", "same"],
    3: [1, (0, 1, 1), ((1, 0), (0, 1), (2, 1)), "valid", "same"],
}


def _inputs(rng, nd, n=2, c_in=4, c_out=6, groups=1, spatial=None, kernel=None):
    spatial = spatial or SPATIAL[nd]
    kernel = kernel or KERNEL[nd]
    x = rng.standard_normal((n, c_in, *spatial))
    w = rng.standard_normal((c_out, c_in // groups, *kernel))
    b = rng.standard_normal(c_out)
    return x, w, b


def conv_cases():
    """nd × padding form × stride × dilation × groups × padding_mode (valid combinations)."""
    cases = []
    for nd in (1, 2, 3):
        strides = [1, 2] if nd < 3 else [1, (2, 1, 2)]
        dilations = [1, 2] if nd < 3 else [1, (1, 2, 1)]
        for padding, stride, dilation, groups, mode in itertools.product(
                PADDINGS[nd], strides, dilations, (1, 2), ("zeros", "reflect", "replicate",
                                                            "circular")):
            if nd == 3 and (groups == 2 or mode in ("replicate",)) and padding not in (1, "same"):
                continue                                  # keep the 3-D grid affordable
            cases.append((nd, padding, stride, dilation, groups, mode))
    return cases


CASES = conv_cases()


def _pads(nd, x_shape, kernel, padding, stride, dilation):
    stride = (stride,) * nd if isinstance(stride, int) else tuple(stride)
    dilation = (dilation,) * nd if isinstance(dilation, int) else tuple(dilation)
    return resolve_padding(padding, x_shape[2:], kernel, stride, dilation), stride, dilation


def _fits(nd, padding, stride, dilation, mode, rng):
    """Skip combinations the contract rejects (reflect needs pad < n), keep the rest."""
    x, w, _ = _inputs(rng, nd)
    pads, _, _ = _pads(nd, x.shape, w.shape[2:], padding, stride, dilation)
    if mode == "reflect":
        return all(max(p) < n for p, n in zip(pads, x.shape[2:]))
    return True


@pytest.mark.parametrize("nd,padding,stride,dilation,groups,mode", CASES)
def test_conv_matches_loop_reference(nd, padding, stride, dilation, groups, mode, rng):
    if not _fits(nd, padding, stride, dilation, mode, rng):
        pytest.skip("reflect padding must be smaller than the input")
    x, w, b = _inputs(rng, nd, groups=groups)
    flip = (nd == 2 and groups == 1)      # also exercise the true convolution on a slice
    y = CONV[nd](x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
                 padding_mode=mode, flip_kernel=flip)
    pads, s, d = _pads(nd, x.shape, w.shape[2:], padding, stride, dilation)
    expected = reference.conv_nd(x, w, b, s, pads, d, groups, mode, flip)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)


GRAD_CASES = [c for c in CASES if c[0] < 3 or c[1] in (1, "same")]


@pytest.mark.parametrize("nd,padding,stride,dilation,groups,mode", GRAD_CASES)
def test_conv_gradcheck(nd, padding, stride, dilation, groups, mode, rng):
    if not _fits(nd, padding, stride, dilation, mode, rng):
        pytest.skip("reflect padding must be smaller than the input")
    small = {1: (7,), 2: (6, 5), 3: (4, 5, 4)}[nd]      # gradcheck costs 2 forwards per entry
    kw = dict(n=1 if nd == 3 else 2, c_in=2, c_out=2, spatial=small)
    x, w, b = _inputs(rng, nd, groups=groups, **kw)
    result = gradcheck(lambda x, w, b: CONV[nd](x, w, b, stride=stride, padding=padding,
                                               dilation=dilation, groups=groups,
                                               padding_mode=mode), [x, w, b])
    assert result, str(result)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_depthwise_conv(nd, rng):
    x, w, b = _inputs(rng, nd, c_in=3, c_out=6, groups=3)
    y = CONV[nd](x, w, b, padding="same", groups=3)
    pads, s, d = _pads(nd, x.shape, w.shape[2:], "same", 1, 1)
    np.testing.assert_allclose(y.data, reference.conv_nd(x, w, b, s, pads, d, 3), atol=1e-12)
    assert gradcheck(lambda x, w: CONV[nd](x, w, padding="same", groups=3), [x, w])


def test_flip_kernel_is_rot180(rng):
    x, w, _ = _inputs(rng, 2)
    flipped = F.conv2d(x, w[:, :, ::-1, ::-1].copy())
    np.testing.assert_array_equal(F.conv2d(x, w, flip_kernel=True).data, flipped.data)
    result = gradcheck(lambda x, w: F.conv2d(x, w, stride=2, flip_kernel=True), [x, w])
    assert result, str(result)


def test_input_gradient_is_the_lecture_formula(rng):
    """dX = (dZ dilated by the stride, zero-padded by d*(k-1)) ⋆ rot180(K), computed literally."""
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 2))
    s, d, p = (2, 3), (2, 1), (1, 2)
    xt = nn.Parameter(x)
    y = F.conv2d(xt, w, stride=s, padding=p, dilation=d)
    dz = rng.standard_normal(y.shape)
    y.backward(dz)
    # Dilate dZ by the stride: dZ[o] lands at o*s.
    dilated = np.zeros((2, 4, (y.shape[2] - 1) * s[0] + 1, (y.shape[3] - 1) * s[1] + 1))
    dilated[:, :, ::s[0], ::s[1]] = dz
    padded_size = [n + 2 * pp for n, pp in zip(x.shape[2:], p)]
    pads = [(di * (k - 1), size + di * (k - 1) - di * (k - 1) - m)
            for di, k, size, m in zip(d, w.shape[2:], padded_size, dilated.shape[2:])]
    # After padding, correlate with rot180(K) with input/output channels swapped, dilation d.
    dz_full = np.pad(dilated, ((0, 0), (0, 0), *pads))
    k_rot = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    dxp = F.conv2d(dz_full, k_rot, dilation=d).data
    dx = dxp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]]
    np.testing.assert_allclose(xt.grad, dx, atol=1e-12)


def test_weight_gradient_is_x_correlated_with_dz(rng):
    """dK = X ⋆ dZ: for stride 1, a correlation of each input channel with each dZ channel."""
    x = rng.standard_normal((1, 2, 6, 6))
    w = nn.Parameter(rng.standard_normal((3, 2, 3, 3)))
    y = F.conv2d(x, w)
    dz = rng.standard_normal(y.shape)
    y.backward(dz)
    dk = F.conv2d(x.transpose(1, 0, 2, 3), dz.transpose(1, 0, 2, 3)).data   # (C_in, C_out, 3, 3)
    np.testing.assert_allclose(w.grad, dk.transpose(1, 0, 2, 3), atol=1e-12)


def test_bias_gradient_is_sum_of_dz(rng):
    x, w, b = _inputs(rng, 2)
    bt = nn.Parameter(b)
    y = F.conv2d(x, w, bt, padding=1)
    dz = rng.standard_normal(y.shape)
    y.backward(dz)
    np.testing.assert_allclose(bt.grad, dz.sum(axis=(0, 2, 3)))


def test_hand_worked_conv_with_padding_and_stride():
    # 3×3 image, 2×2 kernel of ones, padding 1, stride 2: sums of the corners' windows.
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = F.conv2d(x, np.ones((1, 1, 2, 2)), padding=1, stride=2)
    np.testing.assert_array_equal(y.data[0, 0], [[1, 5], [11, 28]])


def test_same_padding_with_stride_two_puts_extra_pixel_at_end():
    x = np.arange(6.0).reshape(1, 1, 6)
    y = F.conv1d(x, np.array([[[1.0, 10.0, 100.0]]]), stride=2, padding="same")
    # TensorFlow: total padding 1 → (0, 1); windows start at 0, 2, 4.
    np.testing.assert_array_equal(y.data[0, 0], [0 + 10 + 200, 2 + 30 + 400, 4 + 50 + 0])


def test_float32_stays_float32(rng):
    x, w, b = (a.astype(np.float32) for a in _inputs(rng, 2))
    xt = nn.Parameter(x)
    y = F.conv2d(xt, w, b, padding=1)
    assert y.dtype == np.float32
    y.sum().backward()
    assert xt.grad.dtype == np.float32


def test_unbatched_input(rng):
    x, w, b = _inputs(rng, 2)
    np.testing.assert_allclose(F.conv2d(x[0], w, b).data, F.conv2d(x, w, b).data[0])


# ----------------------------------------------------------------------- transposed convolution
T_CASES = [(nd, stride, padding, output_padding, dilation, groups)
           for nd in (1, 2, 3)
           for stride, padding, output_padding, dilation, groups in [
               (1, 0, 0, 1, 1), (2, 0, 1, 1, 1), (2, 1, 1, 1, 2), (3, 2, 0, 2, 1), (2, 1, 0, 2, 2),
               (1, 1, 0, 1, 2), (1, 0, 1, 2, 1)]     # output_padding >= stride, < dilation
           if not (nd == 3 and stride == 3)]


@pytest.mark.parametrize("nd,stride,padding,output_padding,dilation,groups", T_CASES)
def test_conv_transpose_matches_reference_and_gradcheck(nd, stride, padding, output_padding,
                                                        dilation, groups, rng):
    spatial = {1: (5,), 2: (4, 3), 3: (3, 2, 3)}[nd]
    x = rng.standard_normal((2, 4, *spatial))
    w = rng.standard_normal((4, 6 // groups, *KERNEL[nd]))
    b = rng.standard_normal(6)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
              groups=groups)
    y = CONV_T[nd](x, w, b, **kw)
    expected = reference.conv_transpose_nd(x, w, b, (stride,) * nd, ((padding, padding),) * nd,
                                           (output_padding,) * nd, (dilation,) * nd, groups)
    np.testing.assert_allclose(y.data, expected, atol=1e-12)
    result = gradcheck(lambda x, w, b: CONV_T[nd](x, w, b, **kw), [x, w, b])
    assert result, str(result)


def test_conv_transpose_is_adjoint_of_conv(rng):
    """<conv(x), y> == <x, conv_transpose(y)> for the same weight: the definition of transpose."""
    x = rng.standard_normal((2, 3, 8, 7))
    w = rng.standard_normal((5, 3, 3, 3))
    y = rng.standard_normal(F.conv2d(x, w, stride=2, padding=1).shape)
    lhs = (F.conv2d(x, w, stride=2, padding=1).data * y).sum()
    back = F.conv_transpose2d(y, w, stride=2, padding=1, output_padding=(1, 0))
    assert back.shape == x.shape
    np.testing.assert_allclose(lhs, (x * back.data).sum())


# ----------------------------------------------------------------------- PyTorch conformance
def _torch_pad(torch, x, pads, mode):
    flat = [v for pair in reversed(pads) for v in pair]
    torch_mode = {"zeros": "constant"}.get(mode, mode)
    return torch.nn.functional.pad(x, flat, mode=torch_mode)


TORCH_CASES = [c for c in CASES if c[0] < 3 or c[1] in (1, "same", "valid")]


@pytest.mark.parametrize("nd,padding,stride,dilation,groups,mode", TORCH_CASES)
def test_conv_matches_torch(nd, padding, stride, dilation, groups, mode, rng):
    torch = pytest.importorskip("torch")
    if not _fits(nd, padding, stride, dilation, mode, rng):
        pytest.skip("reflect padding must be smaller than the input")
    x, w, b = _inputs(rng, nd, groups=groups)
    xt, wt, bt = (nn.Parameter(a) for a in (x, w, b))
    y = CONV[nd](xt, wt, bt, stride=stride, padding=padding, dilation=dilation, groups=groups,
                 padding_mode=mode)
    dz = rng.standard_normal(y.shape)
    y.backward(dz)

    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    pads, s, d = _pads(nd, x.shape, w.shape[2:], padding, stride, dilation)
    conv = getattr(torch.nn.functional, f"conv{nd}d")
    ty = conv(_torch_pad(torch, tx, pads, mode), tw, tb, stride=s, dilation=d, groups=groups)
    ty.backward(torch.tensor(dz))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), atol=1e-10)
    for ours, theirs in ((xt, tx), (wt, tw), (bt, tb)):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), atol=1e-10)


@pytest.mark.parametrize("nd,stride,padding,output_padding,dilation,groups", T_CASES)
def test_conv_transpose_matches_torch(nd, stride, padding, output_padding, dilation, groups,
                                      rng):
    torch = pytest.importorskip("torch")
    spatial = {1: (5,), 2: (4, 3), 3: (3, 2, 3)}[nd]
    x = rng.standard_normal((2, 4, *spatial))
    w = rng.standard_normal((4, 6 // groups, *KERNEL[nd]))
    b = rng.standard_normal(6)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
              groups=groups)
    xt, wt, bt = (nn.Parameter(a) for a in (x, w, b))
    y = CONV_T[nd](xt, wt, bt, **kw)
    dz = rng.standard_normal(y.shape)
    y.backward(dz)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = getattr(torch.nn.functional, f"conv_transpose{nd}d")(tx, tw, tb, **kw)
    ty.backward(torch.tensor(dz))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), atol=1e-10)
    for ours, theirs in ((xt, tx), (wt, tw), (bt, tb)):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), atol=1e-10)


def test_conv_layers_state_dict_match_torch():
    torch = pytest.importorskip("torch")
    pairs = [
        (nn.Conv1d(2, 4, 3, groups=2, bias=False), torch.nn.Conv1d(2, 4, 3, groups=2, bias=False)),
        (nn.Conv2d(3, 8, (3, 5), stride=2, padding="valid"), torch.nn.Conv2d(3, 8, (3, 5), 2)),
        (nn.Conv3d(2, 4, 3), torch.nn.Conv3d(2, 4, 3)),
        (nn.ConvTranspose2d(4, 6, 3, groups=2), torch.nn.ConvTranspose2d(4, 6, 3, groups=2)),
    ]
    for ours, theirs in pairs:
        mine = ours.state_dict()
        ref = theirs.state_dict()
        assert list(mine) == list(ref)
        assert all(mine[k].shape == tuple(ref[k].shape) for k in mine)


def test_default_init_bound_matches_torch_rule():
    layer = nn.Conv2d(6, 16, 5)
    bound = 1 / np.sqrt(6 * 25)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.bias.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.8 * bound     # uniform, not collapsed
    assert layer.weight.dtype == np.float32


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,error,match", [
    (lambda: nn.Conv2d(3, 8, 3)(np.zeros((2, 1, 9, 9), np.float32)), ValueError,
     r"Conv2d\(3→8, kernel 3×3\) expected input with 3 channels, received 1 "
     r"\(input shape \(2, 1, 9, 9\)"),
    (lambda: F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 5, 5))), ValueError,
     r"kernel 5×5 \(dilated span 5×5\) is larger than the padded input 4×4"),
    (lambda: F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), dilation=2), ValueError,
     r"dilated span 5×5\) is larger than the padded input 4×4"),
    (lambda: F.conv2d(np.zeros((1, 4, 4)), np.zeros((1, 1, 3))), ValueError,
     r"conv2d expected a 4-D weight"),
    (lambda: F.conv2d(np.zeros((4, 4)), np.zeros((1, 1, 3, 3))), ValueError,
     r"conv2d expected a 4-D input \(N, C, H, W\) or 3-D unbatched input, received shape"),
    (lambda: F.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((6, 2, 3, 3)), groups=3), ValueError,
     r"input channels \(4\) must be divisible by groups \(3\)"),
    (lambda: F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 3, 3)), np.zeros(3)), ValueError,
     r"expected bias of shape \(2,\), received \(3,\)"),
    (lambda: F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 3, 3)), stride=0), ValueError,
     r"stride must be positive, received \(0, 0\)"),
    (lambda: F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 3, 3)), padding_mode="mirror"),
     ValueError, r"padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', "
                 r"received 'mirror'"),
    (lambda: F.conv2d(np.zeros((1, 1, 3, 3)), np.zeros((2, 1, 3, 3)), padding=3,
                      padding_mode="reflect"), ValueError,
     r"reflect padding must be smaller than the input size, received padding \(3, 3\)"),
    (lambda: F.conv2d(np.zeros((1, 1, 5, 5), np.int64), np.zeros((2, 1, 3, 3))), TypeError,
     r"conv2d input must hold floating-point numbers, received dtype int64"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError,
     r"Conv2d: output channels \(6\) must be divisible by groups \(4\)"),
    (lambda: nn.Conv2d(4, 6, (3, 3, 3)), TypeError,
     r"kernel_size must be an int or a tuple of 2 ints, received \(3, 3, 3\)"),
    (lambda: F.conv_transpose2d(np.zeros((1, 2, 3, 3)), np.zeros((2, 1, 3, 3)), stride=2,
                                output_padding=2), ValueError,
     r"output_padding must be smaller than stride or dilation"),
])
def test_bad_input_messages(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("make,error,match", [
    (lambda: nn.Conv2d(3, 8, 3, padding=-1), ValueError,
     r"Conv2d\(3→8, kernel 3×3\): padding must be non-negative, received -1"),
    (lambda: nn.Conv2d(3, 8, 3, padding="full"), ValueError,
     r"Conv2d\(3→8, kernel 3×3\): padding must be one of 'valid', 'same', received 'full'"),
    (lambda: nn.Conv2d(3, 8, 3, padding=1.5), TypeError, r"padding must be an int.*received 1.5"),
    (lambda: nn.Conv1d(3, 8, 3, stride=(1, 2)), TypeError,
     r"Conv1d\(3→8, kernel 3\): stride must be an int or a tuple of 1 ints"),
    (lambda: nn.ConvTranspose2d(3, 8, 3, padding="same"), ValueError,
     r"padding of a transposed convolution must be numeric"),
    (lambda: nn.ConvTranspose2d(3, 8, 3, stride=2, output_padding=-1), ValueError,
     r"output_padding must be non-negative, received \(-1, -1\)"),
    (lambda: nn.ConvTranspose2d(3, 8, 3, stride=2, output_padding=2), ValueError,
     r"output_padding must be smaller than stride or dilation"),
    (lambda: nn.Conv2d(3, 8, 3, output_padding=1), TypeError, r"output_padding"),
    (lambda: nn.Conv2d(0, 8, 3), ValueError, r"Conv2d: in_channels must be a positive int"),
])
def test_layer_arguments_are_checked_at_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_float64_input_runs_at_the_weights_precision(rng):
    layer = nn.Conv2d(2, 3, 3)
    x = nn.Parameter(rng.standard_normal((1, 2, 5, 5)))
    y = layer(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float64 and layer.weight.grad.dtype == np.float32
    expected = F.conv2d(x.data.astype(np.float32), layer.weight.data, layer.bias.data)
    np.testing.assert_array_equal(y.data, expected.data)


def test_integer_weights_are_refused():
    with pytest.raises(TypeError, match=r"conv2d weight must hold floating-point numbers, "
                                        r"received dtype int64"):
        F.conv2d(np.zeros((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.int64))


def test_error_deep_in_sequential_names_the_layer():
    net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.Conv2d(4, 4, 5), nn.Conv2d(4, 4, 5))
    with pytest.raises(ValueError, match=r"layer 2 \(Conv2d\) received input of shape "
                                         r"\(1, 4, 2, 2\): Conv2d\(4→4, kernel 5×5\): kernel "
                                         r"5×5 \(dilated span 5×5\) is larger"):
        net(np.zeros((1, 1, 10, 10), np.float32))


def test_checked_arguments_are_remembered_by_their_repr_and_never_excuse_a_mistake():
    """A convolution's arguments are checked once for each combination of shapes and values
    (``functional.conv._RESOLVED``); the key is their repr, so ``True`` is not taken for the
    ``1`` checked before it, a mistake raises every time, and the memory is bounded."""
    from cnnlab.functional import conv as fconv

    x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((2, 1, 3, 3), np.float32)
    fconv._RESOLVED.clear()
    a = F.conv2d(x, w, groups=2, stride=(1, 1)).data
    assert len(fconv._RESOLVED) == 1
    np.testing.assert_array_equal(F.conv2d(x, w, groups=2, stride=(1, 1)).data, a)
    assert len(fconv._RESOLVED) == 1                       # the same call: remembered
    for _ in range(2):
        with pytest.raises(ValueError, match=r"groups must be a positive int, received True"):
            F.conv2d(x, np.ones((2, 2, 3, 3), np.float32), groups=True)
        with pytest.raises(TypeError, match=r"stride must be an int or a tuple of 2 ints, "
                                            r"received \(1, True\)"):
            F.conv2d(x, w, groups=2, stride=(1, True))
    assert len(fconv._RESOLVED) == 1                       # mistakes are never remembered
    assert F.conv2d(x, w, groups=2, padding="same").shape == (1, 2, 5, 5)
    assert F.conv2d(x[:, :, :4], w, groups=2, padding="same").shape == (1, 2, 4, 5)
    assert len(fconv._RESOLVED) == 3                       # per shape: "same" resolves anew
    for size in range(fconv._RESOLVED_MAX):
        F.conv2d(np.ones((1, 2, 3, 3 + size), np.float32), w, groups=2)
    assert len(fconv._RESOLVED) <= fconv._RESOLVED_MAX
