"""Which kernels run: ``CNNLAB_KERNELS``, ``forced_kernels`` and the compiled path's absence."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import functional as F
from cnnlab.ops import kernels
from cnnlab.ops.conv import choose_algorithm


@pytest.mark.parametrize("value, expected", [
    ("numpy", "numpy"), (" NumPy ", "numpy"), ("compiled", "compiled"), ("auto", "auto"),
    ("", "auto"),
])
def test_the_environment_variable_names_the_path(value, expected, monkeypatch):
    monkeypatch.setenv("CNNLAB_KERNELS", value)
    assert kernels.requested() == expected


def test_an_unknown_path_is_refused_in_one_sentence(monkeypatch):
    monkeypatch.setenv("CNNLAB_KERNELS", "fast")
    with pytest.raises(ValueError, match="CNNLAB_KERNELS: expected one of auto, numpy, "
                                         "compiled, received 'fast'."):
        kernels.use_compiled()
    with pytest.raises(ValueError, match="forced_kernels: expected one of"):
        with kernels.forced_kernels("gpu"):
            pass


def test_numpy_never_compiles_and_auto_follows_the_installation(monkeypatch):
    monkeypatch.setenv("CNNLAB_KERNELS", "numpy")
    assert not kernels.use_compiled() and kernels.active() == "numpy"
    assert choose_algorithm(1, 6, (5, 5), (1, 1), 1, (28, 28)) == "gemm"
    monkeypatch.setenv("CNNLAB_KERNELS", "auto")
    monkeypatch.setattr(kernels, "_installed", False)
    assert not kernels.use_compiled()
    monkeypatch.setattr(kernels, "_installed", True)
    assert kernels.use_compiled() and kernels.active() == "compiled"


def test_compiled_without_numba_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    monkeypatch.setattr(kernels, "_installed", False)
    with pytest.raises(ValueError, match=r"needs numba, which is not installed \(pip install "
                                           r"\"cnnlab\[fast\]\"\)"):
        kernels.use_compiled()


def test_the_innermost_forced_path_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    with kernels.forced_kernels("numpy"):
        with kernels.forced_kernels("auto"):
            assert kernels.requested() == "auto"
        assert kernels.requested() == "numpy"
    assert kernels.requested() == "compiled" and kernels._forced == []


@pytest.mark.skipif(not kernels.numba_installed(), reason="needs numba (cnnlab[fast])")
def test_both_paths_give_the_same_lenet_layer_to_float32_rounding(rng):
    x = rng.standard_normal((8, 1, 28, 28), dtype=np.float32)
    w = rng.standard_normal((6, 1, 5, 5), dtype=np.float32)
    out = {}
    for path in ("numpy", "compiled"):
        with kernels.forced_kernels(path):
            out[path] = F.conv2d(x, w, None, padding=2).data
    assert out["compiled"].dtype == np.float32
    np.testing.assert_allclose(out["compiled"], out["numpy"], rtol=1e-5, atol=1e-5)
    assert not np.array_equal(out["compiled"], np.zeros_like(out["compiled"]))


# ------------------------------------------------------------------ threads: steady under load

@pytest.fixture(autouse=True)
def _default_thread_policy():
    """Every test here ends with the process's own thread policy: ``cnnlab train`` run
    in-process (below) calls ``threads.steady()`` and, owning its process, never restores it."""
    from cnnlab import threads

    yield
    threads.restore()


def test_steady_makes_blas_single_threaded_and_splits_gemms(monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    from cnnlab import threads
    from cnnlab.ops import parallel

    def counts(api: str) -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == api]

    monkeypatch.delenv("CNNLAB_BLAS_THREADS", raising=False)
    threads.restore()                          # whatever an earlier test (or process) left
    with threadpool_limits(limits=2):          # two threads everywhere, so that 1 shows
        before, openmp = counts("blas"), counts("openmp")
        assert before and set(before) == {2}
        try:
            assert threads.steady() is True
            assert set(counts("blas")) == {1}
            assert counts("openmp") == openmp              # only BLAS is limited
            assert parallel._split_gemms
        finally:
            threads.restore()
        assert counts("blas") == before
        assert not parallel._split_gemms
        threads.restore()                      # a second restore changes nothing
        assert counts("blas") == before and not parallel._split_gemms
    monkeypatch.setenv("CNNLAB_BLAS_THREADS", "default")
    assert threads.steady() is False and not parallel._split_gemms


@pytest.mark.parametrize("pools", [[], [{"user_api": "openmp", "num_threads": 2}]])
def test_steady_does_nothing_without_a_blas_library(pools, monkeypatch):
    import threadpoolctl

    from cnnlab import threads
    from cnnlab.ops import parallel

    monkeypatch.delenv("CNNLAB_BLAS_THREADS", raising=False)
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: pools)
    threads.restore()
    assert threads.steady() is False
    assert threads._limiter is None and not parallel._split_gemms


@pytest.mark.parametrize("a_shape, b_shape", [
    ((96, 700), (700, 640)),          # split by columns
    ((3000, 400), (400, 120)),        # more rows than columns: split by rows
    ((2, 16, 150), (2, 150, 4000)),   # stacked (groups)
    ((16, 150), (2, 150, 4000)),      # broadcast
    ((4, 5), (5, 6)),                 # too small to split
])
def test_split_gemms_give_numpys_product_for_any_thread_count(a_shape, b_shape, rng,
                                                              monkeypatch):
    from cnnlab.ops import parallel

    a = rng.standard_normal(a_shape, dtype=np.float32)
    b = rng.standard_normal(b_shape, dtype=np.float32)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    results = []
    monkeypatch.setattr(parallel, "_split_gemms", True)
    try:
        for count in (1, 2, 3):
            parallel.set_num_threads(count)
            results.append(parallel.matmul(a, b))
    finally:
        parallel.set_num_threads(parallel._default_threads())
    for result in results:
        assert result.shape == expected.shape and result.dtype == np.float32
        np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(results[1], results[2])


def test_the_command_refuses_a_wrong_kernels_setting_in_one_sentence(monkeypatch, capsys,
                                                                      tmp_path):
    from cnnlab.cli import main

    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    monkeypatch.setattr(kernels, "_installed", False)
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == ('cnnlab train: error: CNNLAB_KERNELS=compiled needs numba, which is not '
                   'installed (pip install "cnnlab[fast]").\n')
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ the switch and the compiler
def test_an_unset_variable_means_auto(monkeypatch):
    monkeypatch.delenv("CNNLAB_KERNELS", raising=False)
    assert kernels.requested() == "auto"


def test_numba_installed_is_whether_numba_can_be_imported(monkeypatch):
    import importlib.util

    try:
        import numba  # noqa: F401
        importable = True
    except ImportError:
        importable = False
    assert kernels.numba_installed() is importable
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "numba" else find_spec(name, *args))
    assert kernels.numba_installed() is False
    monkeypatch.setattr(kernels, "_installed", None)          # checked once, then remembered
    assert kernels._available() is False and kernels._installed is False


def _add_bias(z, b):
    """Adds ``b`` to every entry of ``z``, in place."""
    for i in range(z.shape[0]):
        z[i] += b


_add_bias_kernel = kernels.jit(_add_bias)


def _add_twice(z, b):
    """Calls another kernel of its module (compiled code calling compiled code)."""
    _add_bias_kernel(z, b)
    _add_bias_kernel(z, b)


def _dispatcher(kernel):
    """The numba dispatcher behind a :func:`kernels.jit` kernel."""
    return kernel.dispatcher()


@pytest.mark.skipif(not kernels.numba_installed(), reason="needs numba (cnnlab[fast])")
def test_jit_compiles_once_without_the_gil_cached_with_fastmath_and_keeps_the_loops():
    kernel = kernels.jit(_add_bias)
    assert kernel.__name__ == "_add_bias" and kernel.__doc__ == _add_bias.__doc__
    assert kernel.py_func is _add_bias
    z = np.zeros(3)
    kernel(z, 1.5)
    kernel(z, 1.0)                                   # the second call reuses the compiled code
    np.testing.assert_array_equal(z, [2.5, 2.5, 2.5])
    compiled = _dispatcher(kernel)
    assert compiled.py_func.__code__ is _add_bias.__code__   # the same loops, compiled
    assert compiled is _dispatcher(kernel)                    # once
    assert compiled.targetoptions["nogil"] is True            # threads run kernels side by side
    assert compiled.targetoptions["fastmath"] == {"reassoc", "contract"}
    assert type(compiled._cache).__name__ == "FunctionCache"  # cached on disk, not NullCache


@pytest.mark.skipif(not kernels.numba_installed(), reason="needs numba (cnnlab[fast])")
def test_a_kernel_calls_another_kernel_as_compiled_code():
    outer = kernels.jit(_add_twice)
    z = np.zeros(2)
    outer(z, 1.5)
    np.testing.assert_array_equal(z, [3.0, 3.0])
    assert _add_twice.__globals__["_add_bias_kernel"] is _add_bias_kernel   # module untouched
    assert outer.dispatcher().signatures                                     # it compiled


@pytest.mark.skipif(not kernels.numba_installed(), reason="needs numba (cnnlab[fast])")
def test_the_compiled_loops_are_the_python_loops(rng):
    """``py_func``: the plain-Python loops of a compiled kernel give its numbers."""
    from cnnlab.ops import conv_compiled

    x = rng.standard_normal((2, 2, 5, 6))
    w = rng.standard_normal((3, 2, 2, 4))
    b = rng.standard_normal(3)
    z = conv_compiled.correlate(x, w, b, (1, 1))
    loops = np.empty_like(z)
    conv_compiled._correlate_flat.py_func(x.reshape(2, 2, 30), w, b, loops,
                                          np.empty((2, 3, 0, 0), np.int32), 6, 1, 1, 0, 0, 4)
    np.testing.assert_allclose(loops, z, rtol=1e-12, atol=1e-12)
    # the weight gradient, whose third (lone) channel is computed as a pair with itself:
    # the Python loops index every array, so a read past the last channel would raise
    dz = rng.standard_normal(z.shape)
    _, dk, db = conv_compiled.gradients(dz, x, w, (1, 1), 1, False, True, True)
    np.testing.assert_allclose(db, dz.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)
    dzw = np.zeros((2, 3, 4 * 6))
    dzw.reshape(2, 3, 4, 6)[..., :3] = dz
    for chunks in (1, 2):                          # the images in one chunk, or two
        parts = np.empty((chunks, *w.shape))
        conv_compiled._weight_grad_flat.py_func(dzw, x.reshape(2, 2, 30), parts, 6, 3 * 6 + 3,
                                                1, 1, 0, 4 * chunks)
        np.testing.assert_allclose(parts.sum(axis=0), dk, rtol=1e-12, atol=1e-12)
    windows = np.lib.stride_tricks.sliding_window_view(x[1], (2, 4), axis=(1, 2))
    np.testing.assert_allclose(parts[1], np.einsum("oij,cijae->ocae", dz[1], windows),
                               rtol=1e-12, atol=1e-12)           # chunk 1: the second image


@pytest.mark.skipif(not kernels.numba_installed(), reason="needs numba (cnnlab[fast])")
def test_wide_vectors_marks_the_compiled_function_for_512_bit_vectors():
    """A kernel that calls ``wide_vectors`` compiles to an LLVM function whose attribute asks
    for 512-bit vectors; one that does not keeps LLVM's default; in Python it does nothing."""
    import numba

    assert kernels.wide_vectors() is None
    wide = kernels._wide_vectors_intrinsic()
    assert kernels._wide_vectors_intrinsic() is wide              # made once

    def marked(z):
        wide()
        z[0] += 1.0

    def plain(z):
        z[0] += 1.0

    z = np.zeros(1)
    for body, expected in ((marked, True), (plain, False)):
        compiled = numba.njit(body)
        compiled(z)
        ir = compiled.inspect_llvm(compiled.signatures[0])
        assert ('"prefer-vector-width"="512"' in ir) is expected
    assert z[0] == 2.0


@pytest.mark.skipif(not kernels.numba_installed(), reason="needs numba (cnnlab[fast])")
def test_distinct_arrays_marks_the_pointer_arguments_noalias():
    """A kernel that calls ``distinct_arrays`` compiles to an LLVM function whose array
    arguments are ``noalias``; one that does not has none there; in Python it does nothing."""
    import re

    import numba

    assert kernels.distinct_arrays() is None
    distinct = kernels._distinct_arrays_intrinsic()
    assert kernels._distinct_arrays_intrinsic() is distinct       # made once

    def marked(src, dst):
        distinct()
        dst[0] = src[0] + 1.0

    def plain(src, dst):
        dst[0] = src[0] + 1.0

    src, dst = np.ones(1), np.zeros(1)
    for body, expected in ((marked, True), (plain, False)):
        compiled = numba.njit(body)
        compiled(src, dst)
        ir = compiled.inspect_llvm(compiled.signatures[0])
        define = next(line for line in ir.splitlines()
                      if line.startswith("define") and body.__name__ in line)
        arrays = {name for attributes, name in           # (field 4: the data pointer)
                  re.findall(r'ptr ([^%]*)%"?arg\.(src|dst)\.4\b', define)
                  if "noalias" in attributes}
        assert (arrays == {"src", "dst"}) is expected, define
        assert dst[0] == 2.0


@pytest.mark.skipif(not kernels.numba_installed(), reason="needs numba (cnnlab[fast])")
def test_the_short_row_loops_promise_distinct_arrays():
    from cnnlab.ops import conv_compiled as cc

    marked = {name for name in dir(cc) if hasattr(getattr(cc, name), "py_func")
              and "distinct_arrays" in getattr(cc, name).py_func.__code__.co_names}
    assert marked == {"_correlate_3x3", "_correlate_3x3_rows", "_finish"}


@pytest.mark.skipif(not kernels.numba_installed(), reason="needs numba (cnnlab[fast])")
def test_the_direct_and_depthwise_kernels_ask_for_wide_vectors():
    from cnnlab.ops import conv_compiled as cc

    for kernel in (cc._correlate_3x3, cc._correlate_3x3_rows, cc._tap_sums_3x3,
                   cc._depthwise_forward, cc._depthwise_backward, cc._correlate_flat,
                   cc._weight_grad_flat, cc._tap_sums, cc._tap_sums_pair, cc._taps,
                   cc._taps_pair):
        assert "wide_vectors" in kernel.py_func.__code__.co_names, kernel.__name__


@pytest.mark.skipif(not kernels.numba_installed(), reason="needs numba (cnnlab[fast])")
def test_a_kernel_that_divides_follows_numpy_on_a_division_by_zero():
    """``jit(divides=True)``: NumPy's error model (inf, NaN), which lets LLVM vectorise the
    division; a plain ``jit`` kernel raises as Python does."""
    def ratio(a, b, out):
        for i in range(a.size):
            out[i] = a[i] / b[i]

    def ratio_checked(a, b, out):       # (another function: the disk cache is by function)
        for i in range(a.size):
            out[i] = a[i] / b[i]

    numpy_like, python_like = kernels.jit(divides=True)(ratio), kernels.jit(ratio_checked)
    a, b = np.array([1.0, 0.0, -2.0]), np.array([0.0, 0.0, 4.0])
    out = np.empty(3)
    numpy_like(a, b, out)
    assert out[0] == np.inf and np.isnan(out[1]) and out[2] == -0.5
    with pytest.raises(ZeroDivisionError):
        python_like(a, b, out)


@pytest.mark.skipif(not kernels.numba_installed(), reason="needs numba (cnnlab[fast])")
def test_jit_asks_numba_for_numpy_s_error_model_only_where_a_kernel_divides(monkeypatch):
    """(What numba is asked for, seen directly: its disk cache, kept by function and source
    file, could hand back an earlier compilation.)"""
    import numba

    asked = []
    monkeypatch.setattr(numba, "njit", lambda **options: asked.append(options) or (lambda f: f))

    def body(x):
        return x

    kernels.jit(divides=True)(body).dispatcher()
    kernels.jit(body).dispatcher()
    assert [options["error_model"] for options in asked] == ["numpy", "python"]
    assert all(options["nogil"] and options["cache"] for options in asked)
