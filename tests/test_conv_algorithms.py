"""Every convolution algorithm against the loop reference and finite differences.

``test_conv.py`` checks the automatic choice over the whole grid; here each algorithm is forced
(``ops.conv.forced_algorithm``) over every geometry it supports, so a path that the rule seldom
picks is still proven right.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference
from helpers import close
from test_conv import CASES, CONV, _fits, _inputs, _pads

from cnnlab import Tensor, gradcheck, models, random
from cnnlab import functional as F
from cnnlab.ops import conv as conv_ops
from cnnlab.ops import kernels, parallel
from cnnlab.ops.conv import choose_algorithm, conv_backward, conv_forward, forced_algorithm

FFT_CASES = [c for c in CASES if c[2] == 1 and c[4] == 1]       # stride 1, one group


SMALL = {1: (7,), 2: (6, 5), 3: (4, 5, 4)}       # gradcheck sizes


def _skip_unless_fits(nd, padding, stride, dilation, mode, rng):
    if not _fits(nd, padding, stride, dilation, mode, rng):
        pytest.skip("reflect padding must be smaller than the input")


def _matches_reference(algorithm, nd, padding, stride, dilation, mode, rng, tol, groups=1,
                       flip=False):
    """The forced ``algorithm`` against the loop reference (``groups`` > 1: depthwise)."""
    channels = {"c_in": groups, "c_out": groups, "groups": groups} if groups > 1 else {}
    x, w, b = _inputs(rng, nd, **channels)
    with forced_algorithm(algorithm):
        y = CONV[nd](x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     padding_mode=mode, flip_kernel=flip)
    pads, s, d = _pads(nd, x.shape, w.shape[2:], padding, stride, dilation)
    np.testing.assert_allclose(y.data, reference.conv_nd(x, w, b, s, pads, d, groups, mode,
                                                         flip), rtol=tol, atol=tol)


def _passes_gradcheck(algorithm, nd, padding, stride, dilation, mode, rng, groups=1):
    """Finite differences on small float64 inputs, with the forced ``algorithm``."""
    c_out = groups if groups > 1 else 3
    x, w, b = _inputs(rng, nd, n=2, c_in=2, c_out=c_out, groups=groups, spatial=SMALL[nd])
    with forced_algorithm(algorithm):
        result = gradcheck(lambda x, w, b: CONV[nd](x, w, b, stride=stride, padding=padding,
                                                   dilation=dilation, groups=groups,
                                                   padding_mode=mode), [x, w, b])
    assert result, str(result)


@pytest.mark.parametrize("nd,padding,stride,dilation,groups,mode", FFT_CASES)
def test_fft_matches_loop_reference(nd, padding, stride, dilation, groups, mode, rng):
    _skip_unless_fits(nd, padding, stride, dilation, mode, rng)
    _matches_reference("fft", nd, padding, stride, dilation, mode, rng, 1e-11, flip=nd == 2)


@pytest.mark.parametrize("nd,padding,stride,dilation,groups,mode",
                         [c for c in FFT_CASES if c[0] < 3 or c[1] == "same"])
def test_fft_gradcheck(nd, padding, stride, dilation, groups, mode, rng):
    _skip_unless_fits(nd, padding, stride, dilation, mode, rng)
    _passes_gradcheck("fft", nd, padding, stride, dilation, mode, rng)


ROWS_CASES = [c for c in CASES if c[0] == 2 and c[2] == 1 and c[4] == 1]   # 2-D, stride 1, 1 group


@pytest.mark.parametrize("nd,padding,stride,dilation,groups,mode", ROWS_CASES)
def test_rows_matches_loop_reference_and_gradcheck(nd, padding, stride, dilation, groups, mode,
                                                   rng):
    _skip_unless_fits(nd, padding, stride, dilation, mode, rng)
    _matches_reference("rows", nd, padding, stride, dilation, mode, rng, 1e-12, flip=True)
    _passes_gradcheck("rows", nd, padding, stride, dilation, mode, rng)


DEPTHWISE_CASES = [c for c in CASES if c[0] < 3 or c[1] in (1, "same")]


@pytest.mark.parametrize("nd,padding,stride,dilation,groups,mode", DEPTHWISE_CASES)
def test_depthwise_matches_loop_reference_and_gradcheck(nd, padding, stride, dilation, groups,
                                                        mode, rng):
    _skip_unless_fits(nd, padding, stride, dilation, mode, rng)
    _matches_reference("depthwise", nd, padding, stride, dilation, mode, rng, 1e-12, groups=3)
    if groups == 1:                      # the grid's groups axis means nothing here: once
        _passes_gradcheck("depthwise", nd, padding, stride, dilation, mode, rng, groups=2)


DIRECT_CASES = [c for c in CASES if c[0] < 3 and c[2] == 1]        # 1-D and 2-D, stride 1
needs_numba = pytest.mark.skipif(not kernels.numba_installed(),
                                 reason="the compiled kernels need numba (cnnlab[fast])")


@needs_numba
@pytest.mark.parametrize("nd,padding,stride,dilation,groups,mode", DIRECT_CASES)
def test_direct_matches_loop_reference_and_gradcheck(nd, padding, stride, dilation, groups,
                                                     mode, rng):
    """The compiled loops, dense and depthwise, in float64 (compiled for both precisions)."""
    _skip_unless_fits(nd, padding, stride, dilation, mode, rng)
    _matches_reference("direct", nd, padding, stride, dilation, mode, rng, 1e-12,
                       flip=nd == 2)
    _matches_reference("direct", nd, padding, stride, dilation, mode, rng, 1e-12, groups=3)
    _passes_gradcheck("direct", nd, padding, stride, dilation, mode, rng)
    if groups == 1:
        _passes_gradcheck("direct", nd, padding, stride, dilation, mode, rng, groups=2)


@needs_numba
@pytest.mark.parametrize("c_in, c_out, groups, kernel", [
    (6, 4, 2, (5, 5)), (4, 8, 4, (3, 3)), (2, 3, 1, (1, 1)), (3, 2, 1, (2, 7)), (2, 2, 1, (6, 4)),
    (6, 6, 2, (2, 9)), (4, 5, 1, (3, 11)), (3, 1, 1, (2, 8)),
])
def test_direct_handles_groups_and_every_kernel_width(c_in, c_out, groups, kernel, rng):
    """Kernel rows are applied five taps at a time, then three, then one by one (widths 1 to
    11), to pairs of output channels, the last channel of a group with an odd count alone
    (3 a group, 5, 1), in grouped layers whose groups read different input channels."""
    x = rng.standard_normal((3, c_in, 9, 11))
    w = rng.standard_normal((c_out, c_in // groups, *kernel))
    b = rng.standard_normal(c_out)
    pads = ((1, 2), (0, 1))
    with forced_algorithm("direct"):
        y = F.conv2d(x, w, b, padding=pads, groups=groups)
        result = gradcheck(lambda x, w: F.conv2d(x, w, None, padding=pads, groups=groups),
                           [x, w])
    np.testing.assert_allclose(y.data, reference.conv_nd(x, w, b, (1, 1), pads, (1, 1), groups),
                               rtol=1e-12, atol=1e-12)
    assert result, str(result)


@pytest.mark.parametrize("shape, kernel, dilation", [
    ((1, 1, 512, 512), (1, 1, 11, 11), (1, 1)),        # the blur of the benchmark
    ((4, 3, 40, 33), (2, 3, 7, 5), (2, 1)),
    ((2, 2, 50), (3, 2, 9), (3,)),
    ((8, 32, 31, 28), (16, 32, 3, 3), (1, 1)),         # a deep 3×3 layer, odd height
    ((4, 16, 23, 30), (8, 16, 3, 3), (2, 3)),          # dilated: phases of unequal sizes
])
def test_fft_rows_and_gemm_agree_in_float32(shape, kernel, dilation, rng):
    x = rng.standard_normal(shape, dtype=np.float32)
    w = rng.standard_normal(kernel, dtype=np.float32)
    nd = len(shape) - 2
    pads = tuple((k // 2, k // 2) for k in kernel[2:])
    results = {}
    algorithms = ("gemm", "fft") + (("rows",) if nd == 2 else ())
    algorithms += ("direct",) if kernels.numba_installed() else ()
    if kernels.numba_installed() and kernel[2:] == (3, 3):
        algorithms += ("winograd",)
    algorithms += ("image_gemm",) if kernels.numba_installed() and nd < 3 else ()
    for algorithm in algorithms:
        z, cache = conv_forward(x, w, None, (1,) * nd, pads, dilation, algorithm=algorithm)
        dz = np.random.default_rng(1).standard_normal(z.shape, dtype=np.float32)
        results[algorithm] = (z, *conv_backward(dz, cache, need_db=False)[:2])
    for algorithm in set(results) - {"gemm"}:
        for name, ours, theirs in zip(("z", "dx", "dw"), results[algorithm], results["gemm"]):
            assert ours.dtype == np.float32 and ours.shape == theirs.shape, name
            scale = np.abs(theirs).max()
            assert (np.abs(ours - theirs).max()
                    <= 2e-6 * scale * np.sqrt(np.prod(kernel[1:]))), (algorithm, name)


def test_lenet_trains_the_same_on_either_algorithm(rng):
    """A whole training step: every path gives GEMM's gradients to float64 rounding."""
    x = rng.standard_normal((4, 1, 28, 28))
    y = rng.integers(0, 10, 4)
    grads = {}
    algorithms = ("gemm", "fft", "rows")
    algorithms += ("direct", "image_gemm") if kernels.numba_installed() else ()
    for algorithm in algorithms:
        random.manual_seed(0)
        net = models.lenet5().double()
        with forced_algorithm(algorithm):
            F.cross_entropy(net(x), y).backward()
        grads[algorithm] = [p.grad for p in net.parameters()]
    for algorithm in algorithms[1:]:
        for ours, theirs in zip(grads[algorithm], grads["gemm"]):
            close(ours, theirs, 1e-10)


@pytest.mark.parametrize("c_in, c_out, kernel, stride, groups, size, expected", [
    (1, 1, (11, 11), (1, 1), 1, (512, 512), "fft"),     # image filtering
    (3, 3, (7, 7), (1, 1), 1, (64, 64), "fft"),
    (1, 6, (5, 5), (1, 1), 1, (28, 28), "gemm"),        # LeNet's first layer: depth 5
    (6, 16, (5, 5), (1, 1), 1, (14, 14), "gemm"),       # LeNet's second layer: depth 30
    (32, 32, (7, 7), (1, 1), 1, (32, 32), "rows"),      # many channel pairs
    (32, 32, (3, 3), (1, 1), 1, (32, 32), "rows"),
    (32, 32, (3, 3), (1, 1), 1, (14, 14), "gemm"),      # small maps: im2col
    (32, 32, (3, 3), (1, 1), 1, (), "gemm"),            # size unknown
    (32, 64, (3, 3), (2, 2), 1, (32, 32), "gemm"),      # strided
    (32, 32, (3, 3, 3), (1, 1, 1), 1, (32,) * 3, "gemm"),   # 3-D
    (1, 1, (11, 11), (2, 2), 1, (512, 512), "gemm"),    # strided
    (4, 4, (7, 7), (1, 1), 2, (32, 32), "gemm"),        # grouped
    (64, 64, (3, 3), (1, 1), 64, (32, 32), "depthwise"),
    (8, 8, (5, 5), (2, 2), 8, (32, 32), "depthwise"),
    (8, 16, (3, 3), (1, 1), 8, (32, 32), "gemm"),       # depth multiplier 2: GEMM
    (1, 1, (3, 3), (1, 1), 1, (32, 32), "gemm"),
    (1, 1, (4, 4, 4), (1, 1, 1), 1, (16,) * 3, "fft"),  # 64 taps in 3-D
])
def test_the_rule_picks_each_algorithm_by_shape(c_in, c_out, kernel, stride, groups, size,
                                                expected):
    with kernels.forced_kernels("numpy"):
        assert choose_algorithm(c_in, c_out, kernel, stride, groups, size) == expected


@needs_numba
@pytest.mark.parametrize("c_in, c_out, kernel, stride, groups, expected", [
    (1, 6, (5, 5), (1, 1), 1, "direct"),              # LeNet's first layer
    (3, 8, (7, 7), (1, 1), 1, "direct"),              # RGB input, few outputs
    (3, 9, (7, 7), (1, 1), 1, "image_gemm"),          # more than DIRECT_MAX_OUTPUTS
    (1, 32, (3, 3), (1, 1), 1, "image_gemm"),
    (6, 6, (3, 3), (1, 1), 2, "direct"),              # grouped: 3 channels and 3 outputs a group
    (4, 32, (3, 3), (1, 1), 2, "direct"),             # grouped: image_gemm takes one group only
    (1, 1, (11, 11), (1, 1), 1, "direct"),            # image filtering
    (2, 2, (9,), (1,), 1, "direct"),                  # 1-D
    (64, 64, (3, 3), (1, 1), 64, "direct"),           # depthwise
    (8, 8, (3, 3), (1, 1), 2, "gemm"),                # 4 channels a group
    (4, 8, (3, 3), (1, 1), 1, "image_gemm"),          # 4 input channels, 3×3
    (15, 8, (3, 3), (1, 1), 1, "image_gemm"),         # below WINOGRAD_MIN_CHANNELS
    (16, 8, (3, 3), (1, 1), 1, "winograd"),
    (32, 32, (3, 3), (1, 1), 1, "winograd"),          # CIFAR-like
    (64, 64, (3, 3), (1, 1), 1, "winograd"),          # ImageNet-like
    (4, 8, (5, 5), (1, 1), 1, "image_gemm"),          # not 3×3: the batch's window matrix
    (64, 128, (1, 1), (1, 1), 1, "image_gemm"),       # 1×1
    (8, 16, (1,), (1,), 1, "image_gemm"),             # 1×1, 1-D
    (4, 4, (7, 7), (1, 1), 1, "fft"),                 # 16 channel pairs, 7×7: the FFT's rule
    (4, 5, (7, 7), (1, 1), 1, "image_gemm"),          # 20 channel pairs
    (32, 64, (3, 3), (2, 2), 1, "image_gemm"),        # strided: im2col image by image
    (4, 4, (3, 3), (2, 2), 2, "gemm"),                # strided and grouped
    (4, 4, (3, 3, 3), (2, 2, 2), 1, "gemm"),          # strided 3-D
    (6, 16, (5, 5), (1, 1), 1, "image_gemm"),         # LeNet's second layer
    (8, 8, (5, 5), (2, 2), 8, "depthwise"),           # strided: the NumPy taps
    (1, 6, (5, 5), (2, 2), 1, "image_gemm"),
    (1, 1, (4, 4, 4), (1, 1, 1), 1, "fft"),           # 3-D
])
def test_with_compiled_kernels_the_rule_takes_direct_for_few_input_channels(
        c_in, c_out, kernel, stride, groups, expected):
    with kernels.forced_kernels("compiled"):
        assert choose_algorithm(c_in, c_out, kernel, stride, groups, (32, 32)) == expected


@needs_numba
@pytest.mark.parametrize("c_in, size, expected", [
    (16, (12, 12), "winograd"), (15, (12, 12), "image_gemm"), (64, (11, 64), "image_gemm"),
    (64, (12, 11), "image_gemm"), (128, (8, 8), "image_gemm"), (64, (), "image_gemm"),
])
def test_with_compiled_kernels_winograd_needs_channels_and_planes_large_enough(c_in, size,
                                                                             expected):
    with kernels.forced_kernels("compiled"):
        assert choose_algorithm(c_in, 64, (3, 3), (1, 1), 1, size) == expected


@needs_numba
@pytest.mark.parametrize("size, relu_after, expected", [
    ((16, 16), False, "winograd"), ((16, 16), True, "image_gemm"), ((27, 40), True, "image_gemm"),
    ((28, 28), True, "winograd"),
])
def test_with_compiled_kernels_a_relu_after_keeps_small_planes_on_fused_image_gemm(
        size, relu_after, expected):
    """image_gemm applies a following ReLU and pooling in the cache; Winograd runs them as
    passes of their own, which costs more than its fewer multiplications save on small planes."""
    with kernels.forced_kernels("compiled"):
        assert choose_algorithm(32, 64, (3, 3), (1, 1), 1, size, relu_after=relu_after) == expected
        if relu_after:                             # what conv_relu_forward asks for
            x = np.ones((1, 32, *size), np.float32)
            _, cache = conv_ops.conv_relu_forward(x, np.ones((64, 32, 3, 3), np.float32), None,
                                                  (1, 1), ((1, 1), (1, 1)), (1, 1), keep=True)
            assert cache.conv.algorithm == expected


@needs_numba
@pytest.mark.parametrize("dilation, size, expected", [
    ((1, 1), (32, 32), "winograd"), ((2, 2), (32, 32), "winograd"), ((1, 2), (24, 24), "winograd"),
    ((), (32, 32), "winograd"), ((2, 2), (22, 22), "image_gemm"), ((1, 2), (24, 22), "image_gemm"),
    ((3, 3), (32, 32), "image_gemm"),
])
def test_with_compiled_kernels_dilated_3x3_layers_take_winograd_on_large_phases(dilation, size,
                                                                            expected):
    """A dilated layer is d_h·d_w phase planes of size / d: Winograd where those are at least
    WINOGRAD_MIN_SIZE (12) high and wide."""
    with kernels.forced_kernels("compiled"):
        assert choose_algorithm(64, 64, (3, 3), (1, 1), 1, size, dilation) == expected
        z, cache = conv_forward(np.ones((1, 64, *size)), np.ones((2, 64, 3, 3)), None,
                                (1, 1), ((2, 2), (2, 2)), dilation or (1, 1))
    assert cache.algorithm == expected


def test_unsupported_or_unknown_algorithms_are_refused():
    x, w = np.ones((1, 2, 6, 6)), np.ones((2, 1, 3, 3))
    with pytest.raises(ValueError, match="FFT algorithm needs stride 1 and one group, received "
                                         r"stride \(1, 1\) and groups 2"):
        conv_forward(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1), groups=2, algorithm="fft")
    with pytest.raises(ValueError, match="depthwise algorithm needs groups = input channels = "
                                         "output channels, received groups 1, 2 input and 2"):
        conv_forward(x, np.ones((2, 2, 3, 3)), None, (1, 1), ((0, 0),) * 2, (1, 1),
                     algorithm="depthwise")
    with pytest.raises(ValueError, match=r"rows algorithm needs a 2-D kernel, stride 1 and one "
                                         r"group, received kernel \(3, 3\), stride \(2, 2\)"):
        conv_forward(x, w[:, :1].repeat(2, 1), None, (2, 2), ((0, 0),) * 2, (1, 1),
                     algorithm="rows")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        conv_forward(x, w[:, :1].repeat(2, 1), None, (1, 1), ((0, 0),) * 2, (1, 1),
                     algorithm="strassen")
    with pytest.raises(ValueError, match=r"direct algorithm needs a 1-D or 2-D kernel and "
                                         r"stride 1, received kernel \(3, 3\) and stride \(2, 2\)"):
        conv_forward(x, w[:, :1].repeat(2, 1), None, (2, 2), ((0, 0),) * 2, (1, 1),
                     algorithm="direct")
    with pytest.raises(ValueError, match="forced_algorithm: expected one of"):
        with forced_algorithm("strassen"):
            pass
    assert conv_ops._forced == []


@pytest.mark.parametrize("algorithm, groups, stride", [
    ("gemm", 1, (2, 2)), ("rows", 1, (1, 1)), ("depthwise", 8, (1, 1)), ("depthwise", 8, (2, 2)),
    ("fft", 1, (1, 1)),
    pytest.param("direct", 1, (1, 1), marks=needs_numba),
    pytest.param("direct", 8, (1, 1), marks=needs_numba),
])
def test_results_do_not_depend_on_the_number_of_threads(algorithm, groups, stride, rng,
                                                        monkeypatch):
    """Every output element is computed by one block, the same way: bit for bit equal."""
    monkeypatch.setattr(parallel, "_MIN_PARALLEL", 1)          # split even these small arrays
    x = rng.standard_normal((16, 8, 40, 36), dtype=np.float32)
    w = rng.standard_normal((8, 8 // groups, 3, 3), dtype=np.float32)
    results = []
    try:
        for threads in (1, 2, 3):
            parallel.set_num_threads(threads)
            z, cache = conv_forward(x, w, None, stride, ((1, 1), (1, 1)), (1, 1), groups,
                                    algorithm=algorithm)
            dz = np.random.default_rng(1).standard_normal(z.shape, dtype=np.float32)
            results.append((z, *conv_backward(dz, cache)))
    finally:
        parallel.set_num_threads(parallel._default_threads())
    for other in results[1:]:
        for ours, theirs in zip(results[0], other):
            np.testing.assert_array_equal(ours, theirs)


def test_parallel_blocks_cover_the_range_and_pass_errors_on():
    seen = []
    parallel.run_blocks(lambda a, b: seen.append((a, b)), parallel.split(10, 3))
    assert sorted(seen) == [(0, 2), (2, 5), (5, 7), (7, 10)]

    def fail(a, b):
        if a == 7:
            raise RuntimeError("block 7 failed")
    with pytest.raises(RuntimeError, match="block 7 failed"):
        parallel.run_blocks(fail, parallel.split(10, 3))
    with pytest.raises(ValueError, match="set_num_threads: expected a positive int, received 0"):
        parallel.set_num_threads(0)


def test_the_thread_count_comes_from_cnnlab_num_threads(monkeypatch):
    monkeypatch.setenv("CNNLAB_NUM_THREADS", "3")
    assert parallel._default_threads() == 3
    monkeypatch.setenv("CNNLAB_NUM_THREADS", "many")            # not a count: the CPUs
    assert 1 <= parallel._default_threads() <= 8


@needs_numba
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("nd, pads, dilation, flip", [
    (2, ((1, 1), (1, 1)), (1, 1), False),
    (2, ((2, 0), (0, 3)), (2, 1), True),              # uneven padding, dilated rows, rot180
    (2, ((1, 1), (2, 2)), (1, 2), False),             # dilated columns (3×3 in one pass)
    (2, ((3, 3), (0, 2)), (3, 1), False),             # rows paired 3 apart, 3 left alone
    (1, ((3, 1),), (2,), True),
])
@pytest.mark.parametrize("need", [(True, True, True), (False, True, True), (True, False, False)])
def test_compiled_depthwise_pads_itself_and_sums_every_gradient(dtype, tol, nd, pads, dilation,
                                                                flip, need, rng):
    """Depthwise layers padded with zeros run kernels that pad one plane at a time and compute
    dX, dK and dB in one pass: the same numbers as the NumPy depthwise path, and only the
    gradients asked for."""
    spatial = (9, 11)[:nd] if nd == 2 else (13,)
    x = rng.standard_normal((3, 5, *spatial)).astype(dtype)
    w = rng.standard_normal((5, 1, *(3,) * nd)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    results = {}
    for algorithm in ("direct", "depthwise"):
        z, cache = conv_forward(x, w, b, (1,) * nd, pads, dilation, 5, flip_kernel=flip,
                                algorithm=algorithm)
        dz = np.random.default_rng(1).standard_normal(z.shape).astype(dtype)
        results[algorithm] = (z, *conv_backward(dz, cache, *need))
    assert results["direct"][0].dtype == dtype
    assert results["direct"][1].shape == x.shape if need[0] else results["direct"][1] is None
    for got, expected, wanted in zip(results["direct"], results["depthwise"], (True, *need)):
        if not wanted:
            assert got is None
            continue
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)



@needs_numba
def test_row_starts_deal_rows_out_to_parts():
    """Row R of a scratch plane in ``parts`` parts is row R // parts of part R % parts."""
    from cnnlab.ops import conv_compiled

    np.testing.assert_array_equal(conv_compiled._row_starts(5, 2, 3), [0, 9, 3, 12, 6])
    np.testing.assert_array_equal(conv_compiled._row_starts(4, 1, 7), [0, 7, 14, 21])
    np.testing.assert_array_equal(conv_compiled._row_starts(5, 4, 2), [0, 4, 8, 12, 2])


@needs_numba
@pytest.mark.parametrize("height, dilation, pads", [
    (2, 3, (3, 3)),                    # fewer output rows than the dilation: residues skipped
    (4, 2, (2, 2)),                    # every residue's rows in pairs, none alone
    (1, 1, (1, 1)),                    # one row: no pair at all
])
def test_compiled_depthwise_3x3_on_few_rows(height, dilation, pads, rng):
    """dK's flat pass over pairs of rows and the correlation's row table where the planes
    have few rows: the same numbers as the NumPy depthwise path."""
    x = rng.standard_normal((2, 3, height, 7))
    w = rng.standard_normal((3, 1, 3, 3))
    results = {}
    for algorithm in ("direct", "depthwise"):
        z, cache = conv_forward(x, w, None, (1, 1), (pads, (1, 1)), (dilation, 1), 3,
                                algorithm=algorithm)
        dz = np.random.default_rng(1).standard_normal(z.shape)
        results[algorithm] = (z, *conv_backward(dz, cache))
    for got, expected in zip(results["direct"], results["depthwise"]):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


WINOGRAD_CASES = [c for c in CASES if c[0] == 2 and c[2] == 1 and c[4] == 1]


@needs_numba
@pytest.mark.parametrize("nd,padding,stride,dilation,groups,mode", WINOGRAD_CASES)
@pytest.mark.parametrize("spatial", [(6, 5), (7, 9)])
def test_winograd_matches_loop_reference_and_gradcheck(nd, padding, stride, dilation, groups,
                                                       mode, spatial, rng):
    """F(2×2, 3×3) in float64 over every padding form, mode and dilation, on outputs of odd
    and even sizes (the tiles past the edge are cut), with the kernel flipped or not."""
    _skip_unless_fits(nd, padding, stride, dilation, mode, rng)
    for flip in (False, True):
        x, w, b = _inputs(rng, 2, n=2, c_in=4, c_out=3, spatial=spatial, kernel=(3, 3))
        with forced_algorithm("winograd"):
            y = F.conv2d(x, w, b, padding=padding, padding_mode=mode, flip_kernel=flip,
                         dilation=dilation)
        pads, s, d = _pads(2, x.shape, (3, 3), padding, 1, dilation)
        np.testing.assert_allclose(y.data, reference.conv_nd(x, w, b, s, pads, d, 1, mode, flip),
                                   rtol=1e-12, atol=1e-12)
    x, w, b = _inputs(rng, 2, n=2, c_in=2, c_out=3, spatial=spatial, kernel=(3, 3))
    with forced_algorithm("winograd"):
        result = gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=padding, padding_mode=mode,
                                                    flip_kernel=True, dilation=dilation),
                           [x, w, b])
    assert result, str(result)


@needs_numba
@pytest.mark.parametrize("need", [(True, False), (False, True)])
def test_winograd_computes_only_the_gradients_asked_for(need, rng):
    x = rng.standard_normal((2, 5, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 5, 3, 3)).astype(np.float32)
    z, cache = conv_forward(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), algorithm="winograd")
    dz = rng.standard_normal(z.shape).astype(np.float32)
    dx, dw, db = conv_backward(dz, cache, *need, need_db=False)
    expected = conv_backward(dz, conv_forward(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1),
                                              algorithm="gemm")[1], *need, need_db=False)
    assert db is None and expected[2] is None
    for ours, theirs, wanted in zip((dx, dw), expected, need):
        assert (ours is None) == (not wanted)
        if wanted:
            assert ours.dtype == np.float32
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_winograd_refuses_what_it_cannot_compute():
    x = np.ones((1, 2, 6, 6))
    for w, stride, dilation, groups in [(np.ones((2, 2, 5, 5)), (1, 1), (1, 1), 1),
                                        (np.ones((2, 2, 3, 3)), (2, 2), (1, 1), 1),
                                        (np.ones((2, 1, 3, 3)), (1, 1), (1, 1), 2)]:
        with pytest.raises(ValueError, match="winograd algorithm needs a 3×3 kernel, stride 1 "
                                             "and one group, received kernel "
                                             rf"\({w.shape[2]}, {w.shape[3]}\), stride "
                                             rf"\({stride[0]}, {stride[1]}\) and groups "
                                             f"{groups}"):
            conv_forward(x, w, None, stride, ((0, 0), (0, 0)), dilation, groups=groups,
                         algorithm="winograd")


IMAGE_GEMM_CASES = [c for c in CASES if c[0] < 3 and c[4] == 1]     # 1-D and 2-D, one group


@needs_numba
@pytest.mark.parametrize("nd,padding,stride,dilation,groups,mode", IMAGE_GEMM_CASES)
def test_image_gemm_matches_loop_reference_and_gradcheck(nd, padding, stride, dilation, groups,
                                                         mode, rng):
    """im2col + GEMM image by image (compiled windows), every stride, dilation, padding form
    and mode, in float64."""
    _skip_unless_fits(nd, padding, stride, dilation, mode, rng)
    _matches_reference("image_gemm", nd, padding, stride, dilation, mode, rng, 1e-12,
                       flip=nd == 2)
    _passes_gradcheck("image_gemm", nd, padding, stride, dilation, mode, rng)


@needs_numba
@pytest.mark.parametrize("where", ["x", "w"])
def test_image_gemm_non_finite_values_reach_only_their_own_sums(where, rng):
    """An infinity in X is multiplied into dK only by the taps whose windows hold it, and one
    in K reaches only the dX its tap touches: the NaN and infinities fall where the NumPy
    path puts them (a window matrix on rows of the padded width, whose extra positions read
    the next row's values, would put NaN in every tap's sum unless those positions were
    zeroed)."""
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    if where == "x":
        x[1, 2, 4, 0] = np.inf          # column 0: only the taps e = 0 hold it
    else:
        w[2, 1, 0, 0] = np.inf          # tap (0, 0): never reaches X's last two rows, columns
    grads = {}
    for algorithm in ("image_gemm", "gemm"):
        z, cache = conv_forward(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1),
                                algorithm=algorithm)
        dz = np.ones_like(z)
        grads[algorithm] = conv_backward(dz, cache)[:2]
    for ours, numpy_path in zip(grads["image_gemm"], grads["gemm"]):
        for test in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(test(ours), test(numpy_path))
        assert np.isfinite(ours).sum() > ours.size // 2
        finite = np.isfinite(numpy_path)
        np.testing.assert_allclose(ours[finite], numpy_path[finite], rtol=1e-4, atol=1e-4)


@needs_numba
@pytest.mark.parametrize("stride", [(1, 2), (2, 1)])
def test_image_gemm_strided_along_one_axis_only(stride, rng):
    """A layer strided along one axis only keeps its window matrix like any strided one."""
    _matches_reference("image_gemm", 2, (1, 2), stride, (1, 1), "zeros", rng, 1e-12)
    _passes_gradcheck("image_gemm", 2, (1, 2), stride, (1, 1), "zeros", rng)


@needs_numba
@pytest.mark.parametrize("width, stride", [(15, 1), (16, 1), (17, 1), (16, 2), (17, 2)])
def test_window_matrix_rows_short_and_long_copy_the_same_windows(width, stride, rng):
    """Rows shorter than ``GATHER_MAX_WIDTH`` outputs (or that many, strided) are copied by
    one gather a tap, longer ones row by row: both give the lecture's windows, with padding
    and dilation."""
    from cnnlab.ops import conv_compiled

    kh, kw, pads, dilation = 3, 2, ((1, 2), (2, 1)), (2, 3)
    w_in = (width - 1) * stride + dilation[1] * (kw - 1) + 1 - sum(pads[1])
    x = rng.standard_normal((2, 3, 7, w_in)).astype(np.float32)
    geometry = conv_compiled._geometry(x.shape, (1, 3, kh, kw), pads, (1, stride), dilation)
    oh, ow = geometry[-2:]
    assert ow == width
    cols = conv_compiled._batch_cols(x, 3 * kh * kw, geometry)
    xp = np.pad(x, ((0, 0), (0, 0), *pads))
    for c in range(3):
        for a in range(kh):
            for e in range(kw):
                rows = xp[:, c, a * dilation[0]::1, e * dilation[1]::stride][:, :oh, :ow]
                np.testing.assert_array_equal(cols[(c * kh + a) * kw + e],
                                              rows.reshape(2, oh * ow))
    if stride == 1:                 # images last: cols[r, (i·O_w + j)·B + n], B = 2 images
        last = np.empty((3 * kh * kw, 2 * oh * ow), np.float32)
        conv_compiled._windows_last(x, last, *geometry)
        np.testing.assert_array_equal(last.reshape(-1, oh * ow, 2).transpose(0, 2, 1), cols)


@needs_numba
@pytest.mark.parametrize("dilation", [(1, 1), (2, 3)])
def test_images_last_col2im_adds_each_window_back_where_it_came_from(dilation, rng):
    """The images-last col2im is the adjoint of the images-last window matrix:
    ``<cols(X), D> = <X, col2im(D)>`` for any ``D``, with padding, a row stride and
    dilation."""
    from cnnlab.ops import conv_compiled

    x = rng.standard_normal((3, 2, 11, 13))
    geometry = conv_compiled._geometry(x.shape, (1, 2, 3, 2), ((2, 1), (1, 2)), (2, 1),
                                       dilation)
    rows, size = 2 * 3 * 2, geometry[-2] * geometry[-1]
    cols = np.empty((rows, 3 * size))
    conv_compiled._windows_last(x, cols, *geometry)
    d = rng.standard_normal(cols.shape)
    dx = np.empty_like(x)
    conv_compiled._col2im_last(d, dx, *geometry)
    np.testing.assert_allclose((cols * d).sum(), (x * dx).sum(), rtol=1e-12)


@needs_numba
def test_images_last_layout_only_for_blocks_of_short_unstrided_rows():
    """The images-last window matrix serves blocks of two or more images whose rows of
    windows are shorter than ``GATHER_MAX_WIDTH`` and not strided; the others keep the
    image-by-image layout (one image: nothing to put side by side; long rows: no gain)."""
    from cnnlab.ops import conv_compiled

    def geometry(width, stride):
        return conv_compiled._geometry((1, 1, 5, width), (1, 1, 3, 3), ((1, 1), (1, 1)),
                                       (1, stride), (1, 1))

    assert conv_compiled._images_last(geometry(15, 1), 2)
    assert not conv_compiled._images_last(geometry(15, 1), 1)
    assert not conv_compiled._images_last(geometry(16, 1), 2)
    assert not conv_compiled._images_last(geometry(15, 2), 2)


@needs_numba
@pytest.mark.parametrize("algorithm", ["direct", "image_gemm", "gemm"])
@pytest.mark.parametrize("need_dx, need_dw", [(True, True), (True, False), (False, True),
                                              (False, False)])
def test_bias_gradient_whichever_other_gradients_are_asked_for(algorithm, need_dx, need_dw,
                                                               rng):
    """dB is ``Σ dZ`` over images and positions, whether it comes from the pass the compiled
    kernels make over dZ for dK or dX, or (neither asked for) from a sum of its own."""
    x = rng.standard_normal((3, 2, 7, 8)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    z, cache = conv_forward(x, w, np.zeros(3, np.float32), (1, 1), ((1, 1), (0, 2)), (1, 1),
                            algorithm=algorithm)
    dz = rng.standard_normal(z.shape).astype(np.float32)
    dx, dw, db = conv_backward(dz, cache, need_dx, need_dw, True)
    assert (dx is not None, dw is not None) == (need_dx, need_dw)
    np.testing.assert_allclose(db, dz.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-6,
                               atol=1e-6)
    assert db.dtype == np.float32 and db.shape == (3,)
    assert conv_backward(dz, cache, need_dx, need_dw, False)[2] is None


@needs_numba
def test_image_gemm_refuses_groups_and_3d():
    x = np.ones((1, 2, 6, 6, 6))
    with pytest.raises(ValueError, match=r"image_gemm algorithm needs a 1-D or 2-D kernel and "
                                         r"one group, received kernel \(3, 3, 3\) and groups 1"):
        conv_forward(x, np.ones((2, 2, 3, 3, 3)), None, (1,) * 3, ((0, 0),) * 3, (1,) * 3,
                     algorithm="image_gemm")
    with pytest.raises(ValueError, match=r"received kernel \(3, 3\) and groups 2"):
        conv_forward(x[..., 0], np.ones((2, 1, 3, 3)), None, (1, 1), ((0, 0),) * 2, (1, 1),
                     groups=2, algorithm="image_gemm")


@needs_numba
@pytest.mark.parametrize("mode", ["zeros", "reflect"])
@pytest.mark.parametrize("dilation", [(3, 2), (2, 3), (4, 1)])
def test_winograd_phases_of_any_dilation_and_uneven_padding(mode, dilation, rng):
    """Dilated layers go through as ``d_h·d_w`` phase images; with padding that is not a
    multiple of the dilation each phase starts at a different row and column of X."""
    x = rng.standard_normal((2, 4, 11, 10))
    w = rng.standard_normal((3, 4, 3, 3))
    b = rng.standard_normal(3)
    pads = ((2, 1), (1, 3))
    z, cache = conv_forward(x, w, b, (1, 1), pads, dilation, padding_mode=mode,
                            algorithm="winograd")
    np.testing.assert_allclose(z, reference.conv_nd(x, w, b, (1, 1), pads, dilation, 1, mode),
                               rtol=1e-12, atol=1e-12)
    dz = rng.standard_normal(z.shape)
    expected = conv_backward(dz, conv_forward(x, w, b, (1, 1), pads, dilation,
                                              padding_mode=mode, algorithm="gemm")[1])
    for ours, theirs in zip(conv_backward(dz, cache), expected):
        np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-11)


@needs_numba
@pytest.mark.parametrize("block_bytes", [1, 1 << 40])
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("x_shape, w_shape, pads, stride", [
    ((5, 3, 9, 11), (4, 3, 3, 2), ((1, 0), (2, 1)), (1, 1)),     # 2-D, padded
    ((5, 3, 9, 11), (4, 3, 3, 3), ((1, 1), (1, 1)), (2, 3)),     # strided
    ((4, 2, 13), (3, 2, 4), ((2, 1),), (1,)),                    # 1-D
])
def test_image_gemm_in_blocks_of_images_matches_the_reference(x_shape, w_shape, pads, stride,
                                                              split, block_bytes, rng,
                                                              monkeypatch):
    """The batch goes through in blocks of images (one image a block, so several blocks, or
    the whole batch in one, whose short unstrided rows take the images-last layout): Z and dX
    block by block, dK summed over the blocks in order, whether the blocks run on cnnlab's
    threads (GEMMs split) or one after another; the same bits on 1 thread."""
    from cnnlab.ops import conv_compiled

    monkeypatch.setattr(conv_compiled, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(parallel, "_split_gemms", split)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    ones = (1,) * (len(w_shape) - 2)
    results = []
    for threads in (2, 1):
        parallel.set_num_threads(threads)
        try:
            z, saved, windows = conv_compiled.image_gemm_forward(x, w, b, pads, stride, ones)
            assert windows is None                 # not asked for
            dz = np.cos(np.arange(z.size)).reshape(z.shape)
            dx, dk, db = conv_compiled.image_gemm_backward(dz, saved, w, pads, stride, ones,
                                                           True, True, need_db=True)
            only_dk = conv_compiled.image_gemm_backward(dz, saved, w, pads, stride, ones,
                                                        False, True)
            assert only_dk[2] is None              # dB not asked for
            z_kept, _, windows = conv_compiled.image_gemm_forward(x, w, b, pads, stride, ones,
                                                                  keep_windows=True)
            assert np.array_equal(z_kept, z)
            assert len(windows) == (x_shape[0] if block_bytes == 1 else 1)
            for _ in range(2):                     # kept windows are read, never written
                kept = conv_compiled.image_gemm_backward(dz, saved, w, pads, stride, ones,
                                                         True, True, windows)
                assert np.array_equal(kept[0], dx) and np.array_equal(kept[1], dk)
        finally:
            parallel.set_num_threads(parallel._default_threads())
        results.append((z, dx, dk, db))
        assert only_dk[0] is None and np.array_equal(only_dk[1], dk)
    z_ref = reference.conv_nd(x, w, b, stride, pads, ones, 1)
    with forced_algorithm("gemm"):
        _, cache = conv_forward(x, w, b, stride, pads, ones)
        dx_ref, dk_ref, db_ref = conv_backward(dz, cache)
    for got, expected in zip(results[0], (z_ref, dx_ref, dk_ref, db_ref)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    for two, one in zip(*results):
        assert np.array_equal(two, one)


@needs_numba
def test_image_gemm_keeps_its_window_matrices_only_for_dk_and_only_when_small(rng, monkeypatch):
    """A layer whose weights get a gradient keeps its window matrices for dK (the same bits
    as building them again) while the batch's are at most ``KEEP_WINDOWS_BYTES``; a frozen
    layer, inference, or a larger batch keeps none."""
    from cnnlab.ops import conv_compiled

    x = Tensor(rng.standard_normal((4, 6, 14, 14)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((16, 6, 5, 5)).astype(np.float32), requires_grad=True)
    seen = []
    real_backward = conv_compiled.image_gemm_backward

    def spy(*args):
        seen.append(args[8])                                     # windows
        return real_backward(*args)

    monkeypatch.setattr(conv_compiled, "image_gemm_backward", spy)
    grads = []
    for cap in (1 << 22, 0):
        monkeypatch.setattr(conv_compiled, "KEEP_WINDOWS_BYTES", cap)
        x.grad = w.grad = None
        y = F.conv2d(x, w)
        y.backward(np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape))
        grads.append((x.grad, w.grad))
    assert seen[0] is not None and sum(m.size for m in seen[0]) == 150 * 4 * 100
    assert seen[1] is None                                       # above the cap
    for kept, built in zip(*grads):
        assert np.array_equal(kept, built)
    monkeypatch.setattr(conv_compiled, "KEEP_WINDOWS_BYTES", 1 << 22)
    w.requires_grad = False
    F.conv2d(x, w).sum().backward()                              # frozen weights: no dK
    assert seen[2] is None


def test_winograd_blocks_hold_enough_tiles_for_the_vector_loops(monkeypatch):
    """A block of images holds at least ``MIN_BLOCK_TILES`` tiles where the batch has them,
    even past the L2 budget (shorter passes run in LLVM's scalar loop); the budget rules
    where it allows more."""
    from cnnlab.ops import conv_compiled, conv_winograd

    monkeypatch.setattr(conv_compiled, "BLOCK_BYTES", 1 << 20)
    per_image = 36 * (64 + 64) * 20 * 4                          # 64->64 at 14×14: 368,640 B
    assert conv_compiled.image_blocks(10, per_image)[:2] == [0, 2]
    assert conv_winograd.MIN_BLOCK_TILES == 160
    assert conv_winograd._image_blocks(20, 64, 64, 20, 4) == [0, 10, 20]
    assert conv_winograd._image_blocks(25, 64, 64, 20, 4) == [0, 8, 16, 25]
    assert conv_winograd._image_blocks(3, 64, 64, 20, 4) == [0, 3]
    assert conv_winograd._image_blocks(5, 64, 64, 160, 4) == list(range(6))
    assert conv_winograd._image_blocks(40, 4, 4, 20, 4) == [0, 40]   # the budget: 91 images


@needs_numba
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("block_bytes", [1, 1 << 40])
@pytest.mark.parametrize("pads", [(1, 1), (0, 2)])
def test_winograd_in_blocks_of_images_matches_the_reference(block_bytes, pads, split, rng,
                                                           monkeypatch):
    """Winograd's batch goes through in blocks of images (one image a block, or the whole
    batch in one): Z and dX block by block, dK's transformed sums added over the blocks in
    order, on cnnlab's threads or one block after another; the same bits on 1 thread."""
    from cnnlab.ops import conv_compiled, conv_winograd

    monkeypatch.setattr(conv_compiled, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(conv_winograd, "MIN_BLOCK_TILES", 1)
    monkeypatch.setattr(parallel, "_split_gemms", split)
    x = rng.standard_normal((5, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    out = (7 + 2 * pads[0] - 2, 6 + 2 * pads[1] - 2)
    results = []
    for threads in (2, 1):
        parallel.set_num_threads(threads)
        try:
            z, u, saved = conv_winograd.correlate(x, w, b, pads, out)
            dz = np.cos(np.arange(z.size)).reshape(z.shape)
            dx, dk, db = conv_winograd.gradients(dz, u, saved, pads, True, True, need_db=True)
            only_dx = conv_winograd.gradients(dz, u, saved, pads, True, False)
        finally:
            parallel.set_num_threads(parallel._default_threads())
        results.append((z, dx, dk, db))
        assert only_dx[1] is None and only_dx[2] is None and np.array_equal(only_dx[0], dx)
    full = ((pads[0], pads[0]), (pads[1], pads[1]))
    z_ref = reference.conv_nd(x, w, b, (1, 1), full, (1, 1), 1)
    with forced_algorithm("gemm"):
        _, cache = conv_forward(x, w, b, (1, 1), full, (1, 1))
        dx_ref, dk_ref, db_ref = conv_backward(dz, cache)
    for got, expected in zip(results[0], (z_ref, dx_ref, dk_ref, db_ref)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    for two, one in zip(*results):
        assert np.array_equal(two, one)
