"""``gradcheck`` itself: it passes correct gradients and catches wrong ones, naming the entry."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import functional as F
from cnnlab.autograd import GradcheckResult, Tensor, gradcheck, is_grad_enabled, record, tensor


def square_with_bug(bad_index: tuple[int, ...] | None, offset: float = 1.0):
    """``y = x²`` whose backward is ``2x·dy``, plus ``offset`` at ``bad_index`` if given."""

    def fn(x: Tensor) -> Tensor:
        def backward(dy):
            dx = 2 * x.data * dy
            if bad_index is not None:
                dx = dx.copy()
                dx[bad_index] += offset
            return (dx,)

        return record(x.data ** 2, (x,), backward)

    return fn


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.mark.parametrize("fn, shapes", [
    (lambda x: (x * x).sum(), [(3,)]),
    (lambda x: x.exp() / (1 + x.exp()), [(2, 3)]),
    (lambda a, b: a @ b + b.sum(), [(2, 3), (3, 4)]),
    (lambda a, b: (a * b).max(axis=1), [(2, 3), (3,)]),
    (lambda x, w: F.conv2d(x, w, padding=1), [(1, 2, 4, 4), (3, 2, 3, 3)]),
])
def test_passes_on_correct_gradients(rng, fn, shapes):
    result = gradcheck(fn, [rng.standard_normal(s) for s in shapes])
    assert isinstance(result, GradcheckResult)
    assert result, str(result)
    assert result.ok is True and bool(result) is True
    assert result.max_abs_error < 1e-7
    assert str(result).startswith("gradients match")


def test_passes_on_a_correct_record_backward(rng):
    assert gradcheck(square_with_bug(None), [rng.standard_normal((3, 4))])


@pytest.mark.parametrize("bad_index", [(0, 0), (1, 2), (2, 3)])
def test_fails_on_a_wrong_backward_and_names_the_entry(rng, bad_index):
    x = rng.standard_normal((3, 4))
    result = gradcheck(square_with_bug(bad_index), [x])
    assert not result and result.ok is False
    assert result.worst_input == 0
    assert result.worst_index == bad_index
    assert result.max_abs_error == pytest.approx(1.0, abs=1e-6)
    assert result.analytic - result.numeric == pytest.approx(1.0, abs=1e-6)
    message = str(result)
    assert message.startswith("GRADIENT MISMATCH")
    assert f"index {bad_index}" in message and "input 0" in message


def test_names_the_input_holding_the_wrong_entry(rng):
    bad = square_with_bug((1,))

    def fn(a, b):
        return a.sum() * 3.0 + bad(b)

    result = gradcheck(fn, [rng.standard_normal(2), rng.standard_normal(3)])
    assert not result
    assert (result.worst_input, result.worst_index) == (1, (1,))
    assert "input 1, index (1,)" in str(result)


def test_small_errors_respect_the_tolerances(rng):
    x = rng.standard_normal((2, 2)) + 3.0
    slightly_wrong = square_with_bug((0, 1), offset=1e-3)
    assert not gradcheck(slightly_wrong, [x])
    assert gradcheck(slightly_wrong, [x], atol=1e-2)
    assert gradcheck(square_with_bug((0, 1), offset=1e-6), [x])


def test_nan_and_inf_gradients_fail(rng):
    for value in (np.nan, np.inf):
        result = gradcheck(square_with_bug((1,), offset=value), [rng.standard_normal(3)])
        assert not result, str(result)
        assert result.worst_index == (1,)


def test_integer_inputs_pass_through(rng):
    x = rng.standard_normal((3, 4))
    target = np.array([2, 0, 2])
    seen = []

    def pick(values, index):
        seen.append((type(index), index.dtype))
        return values[np.arange(3), index]

    assert gradcheck(pick, [x, target])
    assert set(seen) == {(np.ndarray, target.dtype)}
    mask = np.array([True, False, True, True])
    assert gradcheck(lambda v, m: v[:, m] * 2.0, [x, mask])
    assert gradcheck(lambda v, i: v[i], [x, tensor([1, 1, 0])])   # an int Tensor too


def test_inputs_become_float64_copies(rng):
    x32 = rng.standard_normal((2, 3)).astype(np.float32)
    before = x32.copy()
    dtypes = []

    def fn(t):
        dtypes.append((t.dtype, t.requires_grad))
        return t * t

    assert gradcheck(fn, [x32])
    assert set(dtypes) == {(np.dtype(np.float64), True)}
    np.testing.assert_array_equal(x32, before)      # the caller's array is untouched
    t = tensor(x32)
    assert gradcheck(fn, [t])                       # Tensor inputs work and stay as they were
    assert t.dtype == np.float32 and t.grad is None


def test_non_contiguous_inputs_are_perturbed(rng):
    x = rng.standard_normal((4, 3)).T               # a transposed (Fortran-order) view
    assert not x.flags.c_contiguous
    assert gradcheck(lambda t: (t * t * t).sum(axis=0), [x])
    assert not gradcheck(square_with_bug((2, 1)), [x])


def test_function_evaluations(rng):
    """One recorded pass plus two unrecorded evaluations per input entry."""
    modes = []

    def fn(a, b):
        modes.append(is_grad_enabled())
        return a * b

    assert gradcheck(fn, [rng.standard_normal((2, 3)), rng.standard_normal(3)])
    assert modes == [True] + [False] * (2 * (6 + 3))


def test_unused_inputs_and_constant_outputs(rng):
    assert gradcheck(lambda a, b: a * 2.0, [rng.standard_normal(2), rng.standard_normal(3)])
    assert gradcheck(lambda a: tensor(np.ones(3)), [rng.standard_normal(2)])
    wrongly_constant = lambda a: Tensor(a.data * 2.0)       # noqa: E731 (drops the graph)
    result = gradcheck(wrongly_constant, [rng.standard_normal(2)])
    assert not result and result.analytic == 0.0 and abs(result.numeric) > 0.1


def test_rejects_non_tensor_outputs(rng):
    with pytest.raises(TypeError, match="fn to return a Tensor, received ndarray"):
        gradcheck(lambda a: a.data * 2, [rng.standard_normal(2)])


def test_random_projection_is_seeded(rng):
    x = rng.standard_normal((2, 3))
    bad = square_with_bug((0, 2), offset=1e-3)
    first, again = gradcheck(bad, [x], seed=3), gradcheck(bad, [x], seed=3)
    assert first == again
