"""What a PyTorch user reaches for first works with torch's names, numbers and gradients.

Each conformance test runs the same call in cnnlab and in torch (skipped without torch) and
compares outputs and gradients; the rest check the documented semantics with literal answers.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import cnnlab
from cnnlab import tensor

RNG = np.random.default_rng(7)
X = RNG.standard_normal((3, 4, 5))          # no ties: max/min indices are unique


def _torch():
    return pytest.importorskip("torch")


def _both(x: np.ndarray):
    torch = _torch()
    return tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


def _close(ours, theirs, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(np.asarray(ours.data if hasattr(ours, "data") else ours),
                               theirs.detach().numpy(), rtol=rtol, atol=atol)


# ------------------------------------------------------------------ tensor methods vs torch
DIFFERENTIABLE = [
    ("sum()", lambda t: t.sum()),
    ("sum(dim=1)", lambda t: t.sum(dim=1)),
    ("sum(dim=1, keepdim=True)", lambda t: t.sum(dim=1, keepdim=True)),
    ("sum((0, 2))", lambda t: t.sum((0, 2))),
    ("sum(dim=-1, keepdim=True)", lambda t: t.sum(dim=-1, keepdim=True)),
    ("mean()", lambda t: t.mean()),
    ("mean(1)", lambda t: t.mean(1)),
    ("mean(dim=(1, 2), keepdim=True)", lambda t: t.mean(dim=(1, 2), keepdim=True)),
    ("max()", lambda t: t.max()),
    ("min()", lambda t: t.min()),
    ("max(1).values", lambda t: t.max(1).values),
    ("max(dim=-1, keepdim=True)[0]", lambda t: t.max(dim=-1, keepdim=True)[0]),
    ("min(0).values", lambda t: t.min(0).values),
    ("min(dim=2, keepdim=True).values", lambda t: t.min(dim=2, keepdim=True).values),
    ("amax(dim=(0, 2))", lambda t: t.amax(dim=(0, 2))),
    ("amin(1, keepdim=True)", lambda t: t.amin(1, keepdim=True)),
    ("clone()", lambda t: t.clone()),
    ("float()", lambda t: t.float()),
    ("double()", lambda t: t.double()),
    ("relu()", lambda t: t.relu()),
    ("sigmoid()", lambda t: t.sigmoid()),
    ("tanh()", lambda t: t.tanh()),
    ("softmax(dim=1)", lambda t: t.softmax(dim=1)),
    ("log_softmax(-1)", lambda t: t.log_softmax(-1)),
    ("view(3, -1)", lambda t: t.view(3, -1)),
    ("reshape(-1)", lambda t: t.reshape(-1)),
    ("permute(2, 0, 1)", lambda t: t.permute(2, 0, 1)),
    ("flatten(1)", lambda t: t.flatten(1)),
    ("unsqueeze(0)", lambda t: t.unsqueeze(0)),
    ("unsqueeze(-1)", lambda t: t.unsqueeze(-1)),
    ("unsqueeze(1).squeeze()", lambda t: t.unsqueeze(1).squeeze()),
    ("unsqueeze(1).squeeze(1)", lambda t: t.unsqueeze(1).squeeze(1)),
    ("squeeze(0) of size 3 is a no-op", lambda t: t.squeeze(0)),
    ("unsqueeze(2).squeeze((0, 2))", lambda t: t.unsqueeze(2).squeeze((0, 2))),
    ("transpose(0, 2)", lambda t: t.transpose(0, 2)),
    ("contiguous().cpu()", lambda t: t.contiguous().cpu()),
]


@pytest.mark.parametrize("name, op", DIFFERENTIABLE, ids=[n for n, _ in DIFFERENTIABLE])
def test_method_value_and_gradient_match_torch(name, op):
    ours, theirs = _both(X)
    y, q = op(ours), op(theirs)
    assert y.shape == tuple(q.shape)
    assert y.dtype == np.dtype(str(q.dtype).removeprefix("torch."))
    _close(y, q)
    g = RNG.standard_normal(y.shape)
    y.backward(g.astype(y.dtype))
    q.backward(__import__("torch").tensor(g, dtype=q.dtype))
    _close(ours.grad, theirs.grad)


INDEXING = [
    ("max(1).indices", lambda t: t.max(1).indices),
    ("min(dim=0, keepdim=True)[1]", lambda t: t.min(dim=0, keepdim=True)[1]),
    ("argmax()", lambda t: t.argmax()),
    ("argmax(1)", lambda t: t.argmax(1)),
    ("argmax(dim=-1, keepdim=True)", lambda t: t.argmax(dim=-1, keepdim=True)),
    ("argmin(0)", lambda t: t.argmin(0)),
    ("long()", lambda t: t.long()),
    ("int()", lambda t: t.int()),
    ("bool()", lambda t: t.bool()),
]


@pytest.mark.parametrize("name, op", INDEXING, ids=[n for n, _ in INDEXING])
def test_integer_results_match_torch_and_carry_no_gradient(name, op):
    ours, theirs = _both(X * 3)
    y, q = op(ours), op(theirs)
    np.testing.assert_array_equal(y.data, q.numpy())
    assert y.dtype == np.dtype(str(q.dtype).removeprefix("torch."))
    assert not y.requires_grad and not q.requires_grad


def test_queries_match_torch():
    ours, theirs = _both(X)
    assert ours.size() == tuple(theirs.size())
    assert [ours.size(d) for d in (0, 1, 2, -1)] == [theirs.size(d) for d in (0, 1, 2, -1)]
    assert ours.size(dim=1) == 4
    assert ours.dim() == theirs.dim() == 3
    assert ours.numel() == theirs.numel() == 60
    assert ours.tolist() == theirs.tolist()
    assert tensor(2.5).tolist() == 2.5 and tensor(3).item() == 3
    assert ours.shape == tuple(theirs.shape)


def test_size_is_still_the_element_count():
    """NumPy's ``t.size`` (an int) keeps working beside torch's ``t.size()``."""
    t = tensor(np.zeros((3, 4)))
    assert t.size == 12 and t.size + 1 == 13 and isinstance(t.size, int)
    assert f"{t.size:,}" == "12" and sum(p.size for p in (t, t)) == 24
    assert pickle.loads(pickle.dumps(t.size)) == 12
    with pytest.raises(IndexError, match=r"size\(\): dim 2 is out of range for a 2-D tensor"):
        t.size(2)


def test_max_with_dim_sends_the_gradient_to_the_returned_index_only():
    t = tensor([[1.0, 5.0, 5.0], [2.0, 0.0, 2.0]], requires_grad=True)
    values, indices = t.max(dim=1)
    np.testing.assert_array_equal(values.data, [5.0, 2.0])
    np.testing.assert_array_equal(indices.data, [1, 0])           # the first maximum
    values.backward(np.array([1.0, 10.0], np.float32))
    np.testing.assert_array_equal(t.grad, [[0, 1, 0], [10, 0, 0]])
    t.grad = None
    t.max(axis=1).sum().backward()                                 # NumPy's amax: ties share
    np.testing.assert_array_equal(t.grad, [[0, 0.5, 0.5], [0.5, 0, 0.5]])


def test_numpy_is_refused_while_the_tensor_requires_grad():
    t = tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Use tensor\.detach\(\)\.numpy\(\) instead"):
        t.numpy()
    assert t.detach().numpy() is t.data
    y = t * 2
    with pytest.raises(RuntimeError, match="requires grad"):
        y.numpy()
    with cnnlab.no_grad():
        np.testing.assert_array_equal((t * 2).numpy(), [2.0, 4.0])


def test_casts_to_the_same_dtype_return_the_tensor_itself():
    t = tensor([1.0, 2.0], requires_grad=True)
    assert t.float() is t and t.to(np.float32) is t and t.to("cpu") is t
    d = t.double()
    assert d.dtype == np.float64 and d.requires_grad
    (d * d).sum().backward()
    assert t.grad.dtype == np.float32
    np.testing.assert_array_equal(t.grad, [2.0, 4.0])


def test_clone_copies_the_data():
    t = tensor([1.0, 2.0])
    c = t.clone()
    c.data[0] = 9.0
    assert t.data[0] == 1.0


@pytest.mark.parametrize("call, error, match", [
    (lambda t: t.unsqueeze(4), IndexError, r"unsqueeze\(\): dim 4 is out of range.*\[-4, 3\]"),
    (lambda t: t.squeeze(3), IndexError, r"squeeze\(\): dim 3 is out of range"),
    (lambda t: t.max(dim=(0, 1)), TypeError, r"max\(dim\) takes one int dim.*amax"),
    (lambda t: t.argmax(1.5), TypeError, r"argmax\(\) expects dim to be one int"),
    (lambda t: t.sum(dim=1, axis=1), TypeError, r"sum\(\) takes dim or axis, not both"),
    (lambda t: t.softmax(3), IndexError, r"softmax\(\): dim 3 is out of range"),
    (lambda t: t.sum(dim=5), ValueError, r"axis 5 is out of range for a 3-D tensor"),
])
def test_bad_dims_name_the_method_and_the_range(call, error, match):
    with pytest.raises(error, match=match):
        call(tensor(X))
