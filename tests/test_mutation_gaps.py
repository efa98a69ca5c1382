"""Gaps the mutation test found (tests/MUTATION.md): each test here fails on a mutant that the
older tests let through. The sections below name their module; the first is ops/conv.py's:

Nested ``forced_algorithm`` blocks (the inner one wins, the outer one comes back), and the
boundaries of the rule that picks the algorithm: exactly 16 channel pairs with a 7×7 kernel is
still the FFT, 17 is not; exactly 49 taps is, 48 is not; the rows path's depth and size limits.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.ops import conv as conv_ops
from cnnlab.ops.conv import choose_algorithm, conv_forward, forced_algorithm

VALID = ((0, 0), (0, 0))


def algorithm_used(x: np.ndarray, w: np.ndarray) -> str:
    return conv_forward(x, w, None, (1, 1), VALID, (1, 1))[1].algorithm


@pytest.mark.usefixtures("numpy_kernels")
def test_nested_forced_algorithms_the_inner_one_wins():
    x, w = np.ones((1, 1, 9, 9)), np.ones((1, 1, 3, 3))
    assert algorithm_used(x, w) == "gemm"                       # the rule's choice
    with forced_algorithm("rows"):
        assert algorithm_used(x, w) == "rows"
        with forced_algorithm("fft"):
            assert choose_algorithm(1, 1, (3, 3), (1, 1), 1) == "fft"
            z, cache = conv_forward(x, w, None, (1, 1), VALID, (1, 1))
            assert cache.algorithm == "fft"
            np.testing.assert_allclose(z, 9.0)
        assert algorithm_used(x, w) == "rows"                   # the outer block comes back
    assert algorithm_used(x, w) == "gemm" and conv_ops._forced == []


def test_a_forced_block_ends_even_when_its_body_raises():
    with forced_algorithm("gemm"):
        with pytest.raises(RuntimeError, match="inside"):
            with forced_algorithm("fft"):
                raise RuntimeError("inside")
        assert conv_ops._forced == ["gemm"]
    assert conv_ops._forced == []


def test_an_explicit_algorithm_beats_a_forced_one():
    x, w = np.ones((1, 1, 9, 9)), np.ones((1, 1, 3, 3))
    with forced_algorithm("fft"):
        cache = conv_forward(x, w, None, (1, 1), VALID, (1, 1), algorithm="gemm")[1]
    assert cache.algorithm == "gemm"


@pytest.mark.usefixtures("numpy_kernels")
@pytest.mark.parametrize("c_in, c_out, kernel, expected", [
    (4, 4, (7, 7), "fft"),              # exactly 16 channel pairs with a 7×7 kernel
    (1, 16, (7, 7), "fft"),
    (16, 1, (7, 7), "fft"),
    (17, 1, (7, 7), "gemm"),            # 17 pairs
    (4, 5, (7, 7), "gemm"),             # 20 pairs
    (1, 1, (1, 49), "fft"),             # exactly 49 taps
    (1, 1, (6, 8), "gemm"),             # 48 taps
    (1, 1, (7, 7, 1), "fft"),
])
def test_the_fft_rule_at_its_boundaries(c_in, c_out, kernel, expected):
    stride = (1,) * len(kernel)
    assert choose_algorithm(c_in, c_out, kernel, stride, 1) == expected
    assert choose_algorithm(c_in, c_out, kernel, (2,) + stride[1:], 1) == "gemm"


@pytest.mark.usefixtures("numpy_kernels")
def test_the_fft_boundary_in_a_real_convolution():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 10, 10)), rng.standard_normal((4, 4, 7, 7))
    z, cache = conv_forward(x, w, None, (1, 1), VALID, (1, 1))
    assert cache.algorithm == "fft"
    with forced_algorithm("gemm"):
        reference = conv_forward(x, w, None, (1, 1), VALID, (1, 1))[0]
    np.testing.assert_allclose(z, reference, rtol=1e-10, atol=1e-10)
    x17, w17 = x[:, :1].repeat(17, axis=1), w[:1, :1].repeat(17, axis=1)    # 17 pairs
    assert conv_forward(x17, w17, None, (1, 1), VALID, (1, 1))[1].algorithm == "gemm"


@pytest.mark.usefixtures("numpy_kernels")
@pytest.mark.parametrize("c_in, kernel, size, expected", [
    (32, (2, 2), (24, 24), "rows"),     # C_in·k_w = 64 exactly, 24×24 exactly
    (21, (3, 3), (32, 32), "gemm"),     # depth 63
    (32, (2, 2), (23, 40), "gemm"),     # one side below 24
    (32, (2, 2), (40, 23), "gemm"),
    (64, (1, 1), (32, 32), "rows"),
])
def test_the_rows_rule_at_its_boundaries(c_in, kernel, size, expected):
    assert choose_algorithm(c_in, 8, kernel, (1, 1), 1, size) == expected
    assert choose_algorithm(c_in, 8, kernel, (1, 2), 1, size) == "gemm"
    assert choose_algorithm(c_in, 8, kernel, (1, 1), 2, size) == "gemm"


@pytest.mark.usefixtures("numpy_kernels")
@pytest.mark.parametrize("c_in, c_out, groups, expected", [
    (2, 2, 2, "depthwise"), (1, 1, 1, "gemm"), (2, 4, 2, "gemm"), (4, 2, 2, "gemm"),
])
def test_the_depthwise_rule(c_in, c_out, groups, expected):
    assert choose_algorithm(c_in, c_out, (3, 3), (1, 1), groups, (8, 8)) == expected


# ----------------------------------------------------------------------------- ops/dropout.py
def test_dropout_with_p_one_returns_zeros_for_the_output_and_the_mask():
    from cnnlab.ops.dropout import dropout_backward, dropout_forward

    x = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    y, mask = dropout_forward(x, 1.0, np.random.default_rng(0))
    for array in (y, mask):
        assert array.shape == (2, 3) and array.dtype == np.float32
        np.testing.assert_array_equal(array, 0)
    np.testing.assert_array_equal(dropout_backward(np.ones_like(x), mask), 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_draws_its_uniforms_in_the_input_dtype(dtype):
    from cnnlab.ops.dropout import dropout_forward

    x = np.random.default_rng(1).standard_normal((5, 40)).astype(dtype)
    y, mask = dropout_forward(x, 0.25, np.random.default_rng(42))
    keep = np.random.default_rng(42).random(x.shape, dtype=dtype) >= 0.25   # the same draws
    np.testing.assert_array_equal(mask, np.where(keep, dtype(1 / 0.75), 0).astype(dtype))
    np.testing.assert_array_equal(y, x * mask)
    assert y.dtype == mask.dtype == dtype


def test_dropout_of_half_precision_draws_in_float64():
    from cnnlab.ops.dropout import dropout_forward

    x = np.ones((4, 8), dtype=np.float16)
    y, mask = dropout_forward(x, 0.5, np.random.default_rng(7))
    keep = np.random.default_rng(7).random(x.shape) >= 0.5
    np.testing.assert_array_equal(mask, np.where(keep, 2, 0).astype(np.float16))
    assert y.dtype == mask.dtype == np.float16


# ----------------------------------------------------------------------------- ops/shapes.py
def test_shape_helpers_over_all_axes():
    from cnnlab.ops.shapes import conv_output_sizes, windows_overlap

    assert conv_output_sizes((9, 8), (3, 2), (2, 1), ((1, 0), (0, 2)), (1, 3)) == (4, 7)
    with pytest.raises(ValueError, match=r"^kernel 3×5 \(dilated span 3×9\) is larger than the "
                                         r"padded input 4×8 \(input 4×8, padding \(\(0, 0\), "
                                         r"\(0, 0\)\)\)\.$"):
        conv_output_sizes((4, 8), (3, 5), (1, 1), ((0, 0), (0, 0)), (1, 2))
    assert windows_overlap((3, 3), (3, 2), (1, 1))            # columns: stride 2 < span 3
    assert not windows_overlap((3, 3), (3, 3), (1, 1))
    assert windows_overlap((2,), (2,), (2,))                  # span 3 with dilation 2
    assert not windows_overlap((2,), (3,), (2,))


def test_shape_messages_and_defaults():
    from cnnlab.ops.shapes import conv_output_size, conv_transpose_output_size, padding_pairs

    with pytest.raises(ValueError, match=r"larger than the padded input of size 4 \(input 2, "
                                         r"padding 1\+1\)\.$"):
        conv_output_size(2, 5, p=1)
    assert conv_transpose_output_size(3, 3) == 5              # stride 1, no output padding
    assert conv_transpose_output_size(3, 3, 2) == 7
    with pytest.raises(TypeError, match=r"^padding \(before, after\) pair must be an int or a "
                                        r"tuple of 2 ints, received \(1, 2, 3\)\.$"):
        padding_pairs(((1, 2, 3), (0, 0)), 2)
    with pytest.raises(TypeError, match=r"^padding must be an int, a tuple of 2 ints, 2 "
                                        r"\(before, after\) pairs"):
        padding_pairs((1, 2, 3), 2)
    with pytest.raises(TypeError, match=r"^padding must be an int, a tuple of 2 ints"):
        padding_pairs(("ab", "cd"), 2)


# ----------------------------------------------------------------------------- ops/norm.py
def test_batch_norm_backward_computes_only_what_is_asked():
    from cnnlab.ops.norm import batch_norm_backward, batch_norm_forward

    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal((4, 3, 2, 2))
    mean, var = np.zeros(3), np.ones(3)
    _, cache = batch_norm_forward(x, mean, var, np.ones(3), np.zeros(3), False, 0.1, 1e-5)
    dx, dweight, dbias = batch_norm_backward(dy, cache)          # defaults: all three
    assert dx is not None and dweight is not None and dbias is not None
    dx, dweight, dbias = batch_norm_backward(dy, cache, need_dweight=False, need_dbias=False)
    assert dweight is None and dbias is None and dx is not None


def test_batch_norm_in_float32_with_float64_running_statistics():
    from cnnlab.ops.norm import batch_norm_forward

    x = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    y, _ = batch_norm_forward(x, np.ones(3), np.full(3, 4.0), None, np.ones(3), False, 0.1, 0.0)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, (x - 1) / 2 + 1, rtol=1e-6)


# ----------------------------------------------------------------------------- ops/activation.py
def test_softmax_shifts_each_row_by_its_own_maximum():
    """Rows of very different sizes: a shift by the global maximum underflows the small row."""
    from cnnlab.ops.activation import softmax_forward

    y, _ = softmax_forward(np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]]), 1)
    np.testing.assert_allclose(y, [[0.25, 0.75], [0.5, 0.5]], rtol=1e-12)


# ----------------------------------------------------------------------------- autograd/tensor.py
def test_tensor_comparisons_and_argmax():
    import cnnlab

    t = cnnlab.tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]))
    np.testing.assert_array_equal(t < 2.0, [[True, False, False], [False, True, False]])
    np.testing.assert_array_equal(t <= 2.0, [[True, False, True], [False, True, False]])
    np.testing.assert_array_equal(t.argmax(axis=1), [1, 0])
    np.testing.assert_array_equal(t.argmax(axis=0), [1, 0, 1])
    assert t.argmax().item() == 3


def test_an_int_scalar_with_a_bool_tensor_gives_int64():
    import cnnlab

    total = cnnlab.tensor(np.array([True, False])) + 2
    assert total.dtype == np.int64
    np.testing.assert_array_equal(total.data, [3, 2])


def test_backward_without_grad_says_why():
    import cnnlab

    with pytest.raises(RuntimeError, match=r"^backward\(\) needs a tensor that requires grad; "
                                           r"this one was computed from tensors that do not "
                                           r"\(or under no_grad\(\)\)\.$"):
        cnnlab.tensor(np.ones(2)).sum().backward()


# ----------------------------------------------------------------------------- ops/elementwise.py
def test_max_backward_keeps_the_gradient_dtype_and_shares_ties():
    from cnnlab.ops.elementwise import max_backward

    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], dtype=np.float32)
    y = x.max(axis=1)
    dx = max_backward(np.ones(2, np.float32), x, y, (1,), False)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, [[0, 0.5, 0.5], [1, 0, 0]])


def test_pow_backward_at_zero_is_quiet_and_follows_torch():
    import warnings

    from cnnlab.ops.elementwise import pow_backward

    a, b = np.array([0.0, 2.0, 0.0]), np.array([2.0, 3.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # log(0) and 0 ** -1 must stay quiet
        da, db = pow_backward(np.ones(3), a, b, a ** b, True, True)
    np.testing.assert_allclose(da, [0.0, 12.0, 0.0])
    np.testing.assert_allclose(db, [0.0, 8 * np.log(2.0), 0.0])


# ----------------------------------------------------------------------------- ops/pad.py
@pytest.mark.parametrize("mode, expected", [
    ("constant", [-1, -1, 0, 1, 2, -1]),
    ("reflect", [2, 1, 0, 1, 2, 1]),
    ("replicate", [0, 0, 0, 1, 2, 2]),
    ("circular", [1, 2, 0, 1, 2, 0]),
])
def test_the_input_position_each_padded_position_copies(mode, expected):
    from cnnlab.ops.pad import source_index

    assert source_index(3, 2, 1, mode).tolist() == expected


def test_padding_that_does_not_fit_its_mode():
    from cnnlab.ops.pad import check_pad_fits

    check_pad_fits((3, 3), ((3, 0), (0, 3)), "circular")          # pad = n: allowed
    check_pad_fits((3,), ((9, 9),), "constant")
    with pytest.raises(ValueError, match=r"^circular padding must not exceed the input size, "
                                         r"received padding \(0, 4\) for an axis of size 3\.$"):
        check_pad_fits((5, 3), ((0, 0), (0, 4)), "circular")
    with pytest.raises(ValueError, match=r"^reflect padding must be smaller than the input "
                                         r"size, received padding \(3, 0\) for an axis of size "
                                         r"3\.$"):
        check_pad_fits((3,), ((3, 0),), "reflect")


# ----------------------------------------------------------------------------- autograd
def test_a_backward_step_in_float64_still_gives_a_float32_gradient():
    import cnnlab
    from cnnlab.autograd.tensor import record

    x = cnnlab.tensor(np.ones(3, np.float32), requires_grad=True)
    seen = []

    def step(scale):                                  # records dy's dtype, answers in float64
        return lambda dy: (seen.append(dy.dtype) or np.asarray(dy, np.float64) * scale,)

    y = record(x.data * 2, (x,), step(2))
    z = record(y.data * 3, (y,), step(3))
    z.backward(np.ones(3, np.float32))
    assert seen == [np.float32, np.float32]         # each step gets dy in its output's dtype
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, 6)


def test_gradcheck_reports_the_first_of_equal_entries_and_uses_seed_0():
    from cnnlab.autograd import gradcheck

    flat = gradcheck(lambda x: (x * 0).sum(), [np.zeros(3)])        # every entry exact
    assert flat.ok and flat.worst_input == 0 and flat.worst_index == (0,)
    assert flat.max_abs_error == 0.0
    scaled = gradcheck(lambda x: x * 2, [np.ones(1)])
    assert scaled.analytic == pytest.approx(2 * np.random.default_rng(0).standard_normal(1)[0])


def test_gradcheck_without_float_inputs_passes_and_prints():
    import cnnlab
    from cnnlab.autograd import gradcheck

    result = gradcheck(lambda t: cnnlab.tensor(t.astype(np.float64)).sum(), [np.arange(3)])
    assert result.ok and result.max_abs_error == 0.0 and result.worst_index == ()
    assert str(result) == ("gradients match: worst |analytic - numeric| = 0 at input -1, "
                           "index () (analytic 0, numeric 0)")


# ------------------------------------------------------------------ ops/conv_fft.py, parallel.py
def test_fft_lengths_have_only_the_factors_2_3_5_and_7():
    from cnnlab.ops.conv_fft import fast_length

    assert [fast_length(n) for n in (1, 11, 13, 25, 121, 127)] == [1, 12, 14, 25, 125, 128]


def test_block_bounds():
    from cnnlab.ops.parallel import split

    assert split(5, 1) == [0, 1, 2, 3, 4, 5]
    assert split(5, 2) == [0, 1, 3, 5]                    # the fewest blocks, near-equal
    assert split(64, 17) == [0, 16, 32, 48, 64]
    assert split(10, 100) == [0, 10]
    assert split(0, 4) == [0]
    assert split(3, 0) == [0, 1, 2, 3]                    # a block holds at least one item


def test_an_array_with_no_axis_as_long_as_the_thread_count_is_copied_whole():
    from cnnlab.ops import parallel

    previous = parallel.num_threads()
    parallel.set_num_threads(4096)
    try:
        src = np.arange(1 << 20, dtype=np.float32).reshape(1024, 1024)
        dst = np.empty_like(src)
        parallel.copyto(dst, src)                          # no axis of 4096: one call
        np.testing.assert_array_equal(dst, src)
    finally:
        parallel.set_num_threads(previous)


# ------------------------------------------------------- the survivors of fresh samples (seed 2)
def test_tensor_messages_and_repr():
    import cnnlab

    with pytest.raises(TypeError, match=r"^a tensor needs numeric data, received str 'abc' "
                                        r"\(NumPy dtype <U3\)\.$"):
        cnnlab.tensor("abc")
    with pytest.raises(ValueError, match=r"to match the only axis of the second, received "
                                         r"shapes \(3,\) and \(4,\)\.$"):
        cnnlab.tensor(np.ones(3)) @ cnnlab.tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"to match the second-to-last axis of the second, "
                                         r"received shapes \(2, 3\) and \(2, 3\)\.$"):
        cnnlab.tensor(np.ones((2, 3))) @ cnnlab.tensor(np.ones((2, 3)))
    assert repr(cnnlab.tensor(np.array([1.0, 2.5]))) == "tensor([1. , 2.5], dtype=float64)"


def test_pool_size_rounds_down_by_default_and_same_padding_uses_the_stride():
    from cnnlab.ops.shapes import pool_output_size, resolve_padding

    assert pool_output_size(5, 2, 2) == 2 and pool_output_size(5, 2, 2, ceil_mode=True) == 3
    assert resolve_padding("same", (8,), (3,), (2,), (1,)) == ((0, 1),)


@pytest.mark.parametrize("stride", [(2, 2), (1, 1)])                  # assignment, np.add.at
def test_max_pool_backward_keeps_float32(stride):
    from cnnlab.ops.pool import max_pool_backward, max_pool_forward

    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    y, cache = max_pool_forward(x, (2, 2), stride, (0, 0), (1, 1))
    dx = max_pool_backward(np.ones_like(y), cache)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert dx.sum() == y.size


# ------------------------- the survivors of parallel.py's fresh sample (seed 4), after the fork fix
def test_zero_threads_in_the_environment_falls_back_to_the_default(monkeypatch):
    from cnnlab.ops import parallel

    monkeypatch.setenv("CNNLAB_NUM_THREADS", "0")
    assert parallel._default_threads() >= 1


def test_gemms_are_split_only_when_asked_and_only_when_large(monkeypatch, spy_blocks,
                                                              two_threads):
    parallel, calls = two_threads, spy_blocks
    monkeypatch.setattr(parallel, "_GEMM_BLOCK", 1 << 20)    # the rule, not the tuned size
    a = np.ones((96, 700), dtype=np.float32)
    b = np.ones((700, 640), dtype=np.float32)
    monkeypatch.setattr(parallel, "_split_gemms", False)
    np.testing.assert_array_equal(parallel.matmul(a, b), 700.0)
    assert calls == []                                    # off: one np.matmul, however large
    monkeypatch.setattr(parallel, "_split_gemms", True)
    np.testing.assert_array_equal(parallel.matmul(a[:4, :5], b[:5, :6]), 5.0)
    assert calls == []                                    # on, but too small to split
    np.testing.assert_array_equal(parallel.matmul(a, b), 700.0)
    assert calls == [list(range(0, 641, 32))]             # 20 blocks of 32 columns


# ------------------ the survivors of the third pass (seed 5): ops/conv_fft.py, ops/pool.py
def test_the_fft_path_keeps_a_half_precision_layer_in_half_precision():
    """NumPy's FFT of float16 data is complex64, so dK comes back float32 unless cast."""
    from cnnlab.ops.conv import conv_backward, conv_forward

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 8, 8)).astype(np.float16)
    w = rng.standard_normal((3, 2, 5, 5)).astype(np.float16)
    grads = {}
    for algorithm in ("fft", "gemm"):
        z, cache = conv_forward(x, w, None, (1, 1), VALID, (1, 1), algorithm=algorithm)
        grads[algorithm] = conv_backward(np.ones_like(z), cache)
    assert [g.dtype for g in grads["fft"]] == [np.float16] * 3
    for fft, gemm in zip(grads["fft"], grads["gemm"]):
        np.testing.assert_allclose(fft.astype(np.float32), gemm, rtol=2e-2, atol=2e-2)


def test_an_average_window_all_in_the_padding_is_zero():
    """Per-side padding as large as the kernel: the first window holds no input position, so
    without ``count_include_pad`` it averages nothing (0, not 0/0) and passes no gradient."""
    from cnnlab.ops.pool import avg_pool_backward, avg_pool_forward

    x = np.array([[[1.0, 2.0, 3.0]]], dtype=np.float32)
    y, cache = avg_pool_forward(x, (2,), (2,), ((2, 0),), count_include_pad=False)
    np.testing.assert_array_equal(y, [[[0.0, 1.5]]])
    np.testing.assert_array_equal(avg_pool_backward(np.ones_like(y), cache), [[[0.5, 0.5, 0.0]]])


# ------------------------------------------------- ops/parallel.py, third pass (seed 5)
@pytest.fixture
def two_threads():
    from cnnlab.ops import parallel

    previous = parallel.num_threads()
    parallel.set_num_threads(2)
    yield parallel
    parallel.set_num_threads(previous)


def test_the_thread_count_is_read_from_the_environment_once(monkeypatch):
    from cnnlab.ops import parallel

    monkeypatch.setattr(parallel, "_threads", 0)          # not yet known
    monkeypatch.setenv("CNNLAB_NUM_THREADS", "3")
    assert parallel.num_threads() == 3
    monkeypatch.setenv("CNNLAB_NUM_THREADS", "5")
    assert parallel.num_threads() == 3                     # remembered


def test_two_blocks_on_two_threads_run_side_by_side(two_threads):
    """Each block waits for the other at a barrier: only two threads at once get past it."""
    import threading

    barrier, names = threading.Barrier(2, timeout=5), set()

    def block(start, stop):
        names.add(threading.current_thread().name)
        barrier.wait()

    two_threads.run_blocks(block, [0, 1, 2])
    assert len(names) == 2 and any(n.startswith("cnnlab-blocks") for n in names)


def test_a_new_thread_count_ends_the_old_pool_threads_first(two_threads):
    import threading

    two_threads.run_blocks(lambda start, stop: None, [0, 1, 2, 3])
    two_threads.set_num_threads(1)
    assert not [t for t in threading.enumerate() if t.name.startswith("cnnlab-blocks")]


@pytest.fixture
def spy_blocks(monkeypatch, two_threads):
    calls = []

    def spy(fn, bounds):
        calls.append(list(bounds))
        for start, stop in zip(bounds[:-1], bounds[1:]):
            fn(start, stop)

    monkeypatch.setattr(two_threads, "run_blocks", spy)
    return calls


def test_large_element_wise_copies_are_split_over_the_threads(spy_blocks, two_threads):
    src = np.arange(1 << 20, dtype=np.float32)
    for shape, bounds in [((4, 1 << 18), [0, 2, 4]), ((1, 1 << 20), [0, 1 << 19, 1 << 20])]:
        dst = np.empty(shape, dtype=np.float32)
        two_threads.copyto(dst, src.reshape(shape))             # the first axis of >= 2 items
        np.testing.assert_array_equal(dst, src.reshape(shape))
        assert spy_blocks.pop() == bounds
    two_threads.copyto(np.empty(1000), np.ones(1000))           # small: one call
    assert spy_blocks == []


def test_a_stack_of_gemms_is_split_into_whole_gemms(spy_blocks, two_threads, monkeypatch):
    monkeypatch.setattr(two_threads, "_split_gemms", True)
    monkeypatch.setattr(two_threads, "_GEMM_BLOCK", 1 << 20)   # the rule, not the tuned size
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 64, 128)), rng.standard_normal((128, 512))
    for left, right in [(a, b), (b.T, a.transpose(0, 2, 1))]:   # (4, m, k) @ (k, n) and back
        np.testing.assert_allclose(two_threads.matmul(left, right), np.matmul(left, right),
                                   rtol=1e-12)
        assert spy_blocks.pop() == [0, 1, 2, 3, 4]              # 16.8 M multiply-adds: 4 blocks
    one = two_threads.matmul(np.ones((1, 96, 700)), np.ones((1, 700, 640)))
    np.testing.assert_array_equal(one, 700.0)
    assert spy_blocks.pop() == list(range(0, 641, 32))          # a stack of one: its columns


@pytest.mark.parametrize("cpus, expected", [(3, 3), (None, 1), (64, 8)])
def test_without_sched_getaffinity_the_cpu_count_is_the_default(monkeypatch, cpus, expected):
    import os

    from cnnlab.ops import parallel

    monkeypatch.delenv("CNNLAB_NUM_THREADS", raising=False)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)     # not Linux
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert parallel._default_threads() == expected


# ---------------------------------------------- autograd/engine.py, third pass (seed 5)
def test_a_second_backward_through_a_freed_graph_says_so_in_one_sentence():
    import cnnlab

    x = cnnlab.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"^backward\(\) reached a tensor whose graph an "
                                           r"earlier backward\(\) already freed; pass "
                                           r"retain_graph=True to the first backward\(\) to go "
                                           r"through the graph twice\.$"):
        y.backward()


def test_a_step_may_give_no_gradient_to_an_input_that_requires_one():
    import cnnlab
    from cnnlab.autograd.tensor import record

    x = cnnlab.tensor(np.ones(2), requires_grad=True)
    w = cnnlab.tensor(np.full(2, 3.0), requires_grad=True)
    y = record(x.data * w.data, (x, w), lambda dy: (dy * w.data, None))   # none for w
    y.backward(np.ones(2))
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    assert w.grad is None


def test_a_step_may_give_no_gradient_to_its_first_input():
    import cnnlab
    from cnnlab.autograd.tensor import record

    x = cnnlab.tensor(np.ones(2), requires_grad=True)
    w = cnnlab.tensor(np.full(2, 3.0), requires_grad=True)
    y = record(x.data * w.data, (x, w), lambda dy: (None, dy * x.data))
    y.backward(np.ones(2))                    # the input without a gradient comes first
    assert x.grad is None
    np.testing.assert_array_equal(w.grad, [1.0, 1.0])


def test_two_leaves_each_keep_the_new_array_their_step_made():
    """Not only the first leaf: each new array becomes its leaf's .grad without a copy."""
    import cnnlab
    from cnnlab.autograd.tensor import record

    a = cnnlab.tensor(np.ones(2), requires_grad=True)
    b = cnnlab.tensor(np.ones(2), requires_grad=True)
    made = []

    def step(dy):
        made[:] = [dy * 2, dy * 3]
        return tuple(made)

    record(a.data + b.data, (a, b), step).backward(np.ones(2))
    assert a.grad is made[0] and b.grad is made[1]


def test_a_tensor_used_beside_a_function_of_itself():
    """``y + 3y``: y sits twice on the search stack; ordering it twice would run (and free)
    its step before the ``3y`` branch has handed it its part of the gradient."""
    import cnnlab

    x = cnnlab.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 2
    (y + y * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [8.0, 8.0])


def test_run_backward_frees_the_graph_unless_asked_to_retain_it():
    import cnnlab
    from cnnlab.autograd.engine import freed, run_backward

    x = cnnlab.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    run_backward(y, np.ones(()), retain_graph=True)
    assert y._backward is not freed
    run_backward(y, np.ones(()))
    assert y._backward is freed
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])


# ------------------------------------------------- ops/parallel.py, third pass (fresh seed 6)
def test_one_thread_from_the_environment_is_one_thread(monkeypatch):
    from cnnlab.ops import parallel

    monkeypatch.setenv("CNNLAB_NUM_THREADS", "1")
    assert parallel._default_threads() == 1


def test_a_stack_of_gemms_is_dealt_in_groups_of_whole_gemms(spy_blocks, two_threads,
                                                            monkeypatch):
    monkeypatch.setattr(two_threads, "_split_gemms", True)
    monkeypatch.setattr(two_threads, "_GEMM_BLOCK", 1 << 20)   # the rule, not the tuned size
    a, b = np.ones((8, 32, 64)), np.ones((64, 128))
    np.testing.assert_array_equal(two_threads.matmul(a, b), 64.0)
    assert spy_blocks == [[0, 4, 8]]          # 2 blocks' work (2 × 2**20 multiply-adds): 4 + 4


def test_callers_on_two_threads_share_the_pool_of_one_helper(two_threads):
    """With 2 threads the pool has one helper thread, even when two threads call run_blocks at
    once: both calls' helper tasks run on that one thread, one after the other."""
    import threading
    import time

    helpers, start = set(), threading.Barrier(2, timeout=5)

    def block(first, stop):
        name = threading.current_thread().name
        if name.startswith("cnnlab-blocks"):
            helpers.add(name)
        time.sleep(0.1)

    def call():
        start.wait()
        two_threads.run_blocks(block, [0, 1, 2, 3])

    callers = [threading.Thread(target=call) for _ in range(2)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(10)
    assert len(helpers) == 1


# _validate.py: the float check reads the dtype's kind ("f"); complex numbers are not floats
# (a Tensor refuses them before any layer sees them; the check itself must too).

@pytest.mark.parametrize("dtype", [np.complex64, np.int32, np.bool_])
def test_the_float_check_refuses_complex_integer_and_boolean_arrays(dtype):
    from cnnlab._validate import check_float_array

    with pytest.raises(TypeError, match=f"x must hold floating-point numbers, received dtype "
                                        f"{np.dtype(dtype)}"):
        check_float_array(np.ones(2, dtype), "x")
    for floating in (np.float16, np.float32, np.float64):
        check_float_array(np.ones(2, floating), "x")
