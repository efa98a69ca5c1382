"""Inverted dropout: statistics, seeding, the fixed-mask gradient, train/eval and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab import functional as F
from cnnlab import nn
from cnnlab.autograd import gradcheck


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_statistics_fraction_zeroed_and_mean_preserved(p, dtype):
    x = np.ones((400, 500), dtype)
    y = F.dropout(x, p, generator=np.random.default_rng(0)).data
    assert y.dtype == dtype
    kept = y != 0
    # 200,000 draws: the zeroed fraction is within 5 standard deviations of p
    assert abs((1 - kept.mean()) - p) < 5 * np.sqrt(p * (1 - p) / x.size)
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)   # survivors scaled by 1/(1-p)
    assert abs(y.mean() - 1) < 5 * np.sqrt(p / (1 - p) / x.size)  # E[y] = x


def test_mask_is_bernoulli_drawn_from_the_given_generator(rng):
    x = rng.standard_normal((3, 4, 5))
    y = F.dropout(x, 0.25, generator=np.random.default_rng(42)).data
    keep = np.random.default_rng(42).random(x.shape) >= 0.25      # the same draws
    np.testing.assert_allclose(y, np.where(keep, x / 0.75, 0.0), rtol=1e-15, atol=0)


def test_hand_worked_case():
    x = cnnlab.tensor(np.array([1.0, 2.0, 3.0, 4.0]), requires_grad=True)
    gen = np.random.default_rng(7)
    keep = np.random.default_rng(7).random(4) >= 0.5
    y = F.dropout(x, 0.5, generator=gen)
    np.testing.assert_array_equal(y.data, np.array([2.0, 4.0, 6.0, 8.0]) * keep)
    y.backward(np.array([1.0, 1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(x.grad, 2.0 * keep)          # dy · m / (1 - p)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2, 2)])
@pytest.mark.parametrize("p", [0.2, 0.6])
def test_gradcheck_with_a_fixed_mask(shape, p, rng):
    x = rng.standard_normal(shape)
    result = gradcheck(lambda x: F.dropout(x, p, generator=np.random.default_rng(3)), [x])
    assert result, str(result)


def test_gradient_uses_the_forward_mask(rng):
    x = cnnlab.tensor(rng.standard_normal((50, 40)), requires_grad=True)
    y = F.dropout(x, 0.4)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    np.testing.assert_allclose(x.grad, dy * (y.data / x.data), rtol=1e-12)
    assert 0 < (x.grad == 0).mean() < 1


def test_same_seed_same_mask_other_seed_other_mask():
    x = np.ones((64, 64), np.float32)

    def draw(seed):
        return F.dropout(x, 0.5, generator=np.random.default_rng(seed)).data

    np.testing.assert_array_equal(draw(1), draw(1))
    assert (draw(1) != draw(2)).any()
    # The default generator: cnnlab.manual_seed makes F.dropout and nn.Dropout repeat.
    layer = nn.Dropout(0.5)
    cnnlab.manual_seed(5)
    first = F.dropout(x).data, layer(x).data
    cnnlab.manual_seed(5)
    second = F.dropout(x).data, layer(x).data
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert (first[0] != first[1]).any()                # consecutive calls draw new masks
    cnnlab.manual_seed(6)
    assert (F.dropout(x).data != first[0]).any()


def test_eval_mode_and_p_zero_are_the_identity(rng):
    x = cnnlab.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    layer = nn.Dropout(0.9)
    layer.eval()
    assert layer(x) is x
    layer.train()
    y = layer(x)
    assert y is not x and (y.data == 0).any()


def test_p_one_zeroes_everything_and_blocks_the_gradient(rng):
    x = cnnlab.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    y = F.dropout(x, 1.0)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.data, 0)
    y.backward(np.ones((3, 4), np.float32))
    np.testing.assert_array_equal(x.grad, 0)


def test_float32_in_float32_out(rng):
    x = cnnlab.tensor(rng.standard_normal((8, 8)).astype(np.float32), requires_grad=True)
    y = F.dropout(x, 0.3)
    assert y.dtype == np.float32
    y.backward(np.ones((8, 8), np.float32))
    assert x.grad.dtype == np.float32


def test_no_gradient_recorded_for_an_array_input():
    y = F.dropout(np.ones(10), 0.5)
    assert not y.requires_grad


def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    assert repr(nn.Dropout()) == repr(torch.nn.Dropout())
    assert repr(nn.Dropout(0.25)) == repr(torch.nn.Dropout(0.25))


def test_eval_matches_torch_and_train_scale_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((20, 30))
    np.testing.assert_array_equal(F.dropout(x, 0.3, training=False).data,
                                  torch.nn.functional.dropout(torch.tensor(x), 0.3,
                                                              training=False).numpy())
    # Masks come from different generators; the surviving values must agree: x / (1 - p).
    ours = F.dropout(x, 0.3).data
    theirs = torch.nn.functional.dropout(torch.tensor(x), 0.3).numpy()
    np.testing.assert_allclose(ours[ours != 0], x[ours != 0] / 0.7, rtol=1e-12)
    np.testing.assert_allclose(theirs[theirs != 0], x[theirs != 0] / 0.7, rtol=1e-12)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", None, True])
def test_bad_probability(p):
    message = (r"dropout probability p must be between 0 and 1, received "
               + repr(p).replace(".", r"\."))
    with pytest.raises(ValueError, match=message):
        F.dropout(np.ones(3), p)
    with pytest.raises(ValueError, match=message):
        nn.Dropout(p)


def test_bad_generator_and_dtype():
    with pytest.raises(TypeError, match=r"dropout generator must be a numpy\.random\.Generator, "
                       r"received int"):
        F.dropout(np.ones(3), 0.5, generator=3)
    with pytest.raises(TypeError, match=r"dropout input must hold floating-point numbers, "
                       r"received dtype int64"):
        F.dropout(np.ones(3, dtype=np.int64), 0.5)
