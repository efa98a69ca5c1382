"""The autograd core: Tensor construction and dtypes, every operator's forward value (against
NumPy) and gradient (float64 gradcheck, PyTorch where it applies), and backward semantics."""

from __future__ import annotations

import operator
import sys
import threading

import numpy as np
import pytest

import cnnlab
from cnnlab import functional as F
from cnnlab.autograd import (
    Tensor,
    as_tensor,
    enable_grad,
    gradcheck,
    is_grad_enabled,
    needs_grad,
    no_grad,
    record,
    tensor,
)
from cnnlab.ops import conv as conv_ops
from cnnlab.ops import elementwise as ew


def check_grad(fn, inputs, **kwargs) -> None:
    result = gradcheck(fn, inputs, **kwargs)
    assert result, str(result)


def rand(rng: np.random.Generator, shape, low: float = 0.5, high: float = 1.5,
         signed: bool = True) -> np.ndarray:
    """float64 values with |v| in [low, high]: safe for division, log and powers."""
    values = rng.uniform(low, high, shape)
    if signed:
        values *= rng.choice([-1.0, 1.0], shape)
    return np.asarray(values, dtype=np.float64)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


# ------------------------------------------------------------------ construction and dtypes
@pytest.mark.parametrize("data, expected", [
    ([1.0, 2.0], np.float32),                     # lists of floats: float32
    ([1, 2.5], np.float32),
    (1.5, np.float32),                            # Python float: float32
    ([1, 2], np.int64),                           # int lists and Python ints stay int (PyTorch)
    (3, np.int64),
    ([True, False], np.bool_),
    (np.arange(3.0), np.float64),                 # float64 arrays stay float64
    (np.arange(3, dtype=np.float32), np.float32),
    (np.arange(3, dtype=np.int32), np.int32),     # int arrays stay int
    (np.arange(3), np.int64),
    (np.float64(2.0), np.float64),                # NumPy scalars are 0-d arrays
    (np.float32(2.0), np.float32),
    (np.ones(2, dtype=np.float16), np.float32),   # other floats become float32
])
def test_constructor_dtype(data, expected):
    t = tensor(data)
    assert isinstance(t.data, np.ndarray)
    assert t.dtype == expected
    np.testing.assert_array_equal(t.data, np.asarray(data))


def test_forced_dtype_and_float64_array_kept_as_is():
    a = np.arange(6.0).reshape(2, 3)
    t = tensor(a)
    assert t.data is a and t.shape == (2, 3) and t.ndim == 2 and t.size == 6
    assert tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert Tensor(a, dtype=np.float32).dtype == np.float32
    assert tensor(t).data is a                   # a Tensor wraps the same array


@pytest.mark.parametrize("expr, expected", [
    (lambda t: t * 2.5, np.float32),              # Python float keeps float32
    (lambda t: 2.5 * t, np.float32),
    (lambda t: t + 1, np.float32),
    (lambda t: t / 3, np.float32),
    (lambda t: t ** 2.0, np.float32),
    (lambda t: 2.0 ** t, np.float32),
    (lambda t: t * np.float64(2.0), np.float32),  # NumPy scalars behave like Python scalars
    (lambda t: np.float64(2.0) * t, np.float32),
    (lambda t: t ** np.float64(2.0), np.float32),
    (lambda t: t * np.arange(3), np.float32),     # int arrays take the float dtype (PyTorch)
    (lambda t: np.arange(3) - t, np.float32),
    (lambda t: t * np.array([True, False, True]), np.float32),
    (lambda t: t * np.ones(3), np.float64),       # float64 arrays promote, as in PyTorch
    (lambda t: t.sum(), np.float32),
    (lambda t: t.mean(), np.float32),
    (lambda t: t.max(), np.float32),
    (lambda t: t.exp(), np.float32),
    (lambda t: t @ t, np.float32),
])
def test_float32_stays_float32(expr, expected):
    t = tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = expr(t)
    assert isinstance(y, Tensor)
    assert y.dtype == expected
    y.sum().backward()
    assert t.grad.dtype == np.float32           # leaf gradients keep the leaf's dtype


@pytest.mark.parametrize("expr, expected_dtype, expected", [
    (lambda t: t + 1, np.int64, [2, 3, 4]),
    (lambda t: t * 0.5, np.float32, [0.5, 1.0, 1.5]),   # int * float -> float32 (PyTorch)
    (lambda t: t / 2, np.float32, [0.5, 1.0, 1.5]),     # true division is floating
    (lambda t: t / t, np.float32, [1.0, 1.0, 1.0]),
    (lambda t: t ** 2, np.int64, [1, 4, 9]),
    (lambda t: t * tensor([0.5, 0.5, 0.5]), np.float32, [0.5, 1.0, 1.5]),
])
def test_integer_tensor_arithmetic(expr, expected_dtype, expected):
    y = expr(tensor([1, 2, 3]))
    assert y.dtype == expected_dtype
    np.testing.assert_array_equal(y.data, expected)
    assert not y.requires_grad


@pytest.mark.parametrize("make", [
    lambda: tensor([1, 2], requires_grad=True),
    lambda: Tensor(np.arange(3), requires_grad=True),
    lambda: tensor([True], requires_grad=True),
    lambda: tensor([1, 2]).requires_grad_(),
])
def test_integer_tensors_cannot_require_grad(make):
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        make()


def test_requires_grad_attribute_is_checked():
    t = tensor([1, 2])
    with pytest.raises(TypeError, match="received dtype int64"):
        t.requires_grad = True
    f = tensor([1.0])
    f.requires_grad = True
    assert f.requires_grad and f.is_leaf
    assert f.requires_grad_(False) is f and not f.requires_grad


def test_data_access_helpers():
    t = tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.numpy() is t.data
    assert np.asarray(t) is t.data
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert len(t) == 2
    rows = list(t)
    assert all(isinstance(r, Tensor) for r in rows)
    np.testing.assert_array_equal(rows[1].data, [3.0, 4.0])
    one = tensor([[2.5]])
    assert one.item() == 2.5 and type(one.item()) is float
    assert float(one) == 2.5 and int(tensor(3.7)) == 3
    assert bool(tensor(0.0)) is False and bool(tensor([1.0])) is True
    with pytest.raises(ValueError, match=r"one element, received shape \(2, 2\)"):
        t.item()
    with pytest.raises(ValueError):
        bool(t)                                  # ambiguous, as in NumPy and PyTorch
    with pytest.raises(TypeError, match="0-d tensor"):
        list(tensor(1.0))
    with pytest.raises(TypeError, match="0-d tensor"):
        len(tensor(1.0))
    assert "requires_grad=True" in repr(tensor([1.0], requires_grad=True))


def test_iteration_carries_gradient():
    x = tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    total = None
    for k, row in enumerate(x):
        term = row.sum() * (k + 1)
        total = term if total is None else total + term
    total.backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 1.0], [2.0, 2.0]])


def test_comparisons_give_boolean_arrays():
    t = tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(t > 1.5, [False, True, True])
    np.testing.assert_array_equal(t <= tensor([1.0, 1.0, 3.0]), [True, False, True])
    assert isinstance(t < 2, np.ndarray)


# ------------------------------------------------------------------ binary operators, broadcasting
BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
          "truediv": operator.truediv, "pow": operator.pow}
SHAPE_PAIRS = [
    ((), ()), ((), (3,)), ((3,), (3,)), ((2, 3), (3,)), ((2, 3), (1, 3)), ((2, 3), (2, 1)),
    ((1, 3), (2, 1)), ((2, 1, 3), (2, 3)), ((2, 1, 3), (4, 1)), ((2, 1, 3), (1, 3)),
    ((2, 3), ()),
]


def _operands(rng, op_name, shape_a, shape_b):
    a = rand(rng, shape_a, signed=op_name != "pow")        # pow: positive base
    b = rand(rng, shape_b)
    return a, b


@pytest.mark.parametrize("swap", [False, True], ids=["ab", "ba"])
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
@pytest.mark.parametrize("op_name", list(BINARY))
def test_binary_forward_and_gradcheck(rng, op_name, shapes, swap):
    shape_a, shape_b = shapes[::-1] if swap else shapes
    a, b = _operands(rng, op_name, shape_a, shape_b)
    op = BINARY[op_name]
    y = op(tensor(a), tensor(b))
    expected = op(a, b)
    assert y.shape == np.shape(expected) and y.dtype == np.float64
    np.testing.assert_allclose(y.data, expected, rtol=1e-13)
    check_grad(op, [a, b])


@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
@pytest.mark.parametrize("op_name", list(BINARY))
def test_binary_matches_torch(rng, op_name, shapes):
    torch = pytest.importorskip("torch")
    a, b = _operands(rng, op_name, *shapes)
    op = BINARY[op_name]
    ta, tb = tensor(a, requires_grad=True), tensor(b, requires_grad=True)
    g = rng.standard_normal(np.broadcast_shapes(a.shape, b.shape))
    op(ta, tb).backward(g)
    pa, pb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    op(pa, pb).backward(torch.tensor(g))
    np.testing.assert_allclose(ta.grad, pa.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tb.grad, pb.grad.numpy(), rtol=1e-10, atol=1e-12)


LEFT_OPERANDS = {
    "int": 2, "float": 2.5, "np.float64": np.float64(2.5),
    "0-d array": np.array(2.5), "array": np.array([[0.5], [1.5]]),
}


@pytest.mark.parametrize("left", list(LEFT_OPERANDS))
@pytest.mark.parametrize("op_name", list(BINARY))
def test_reflected_operators(rng, op_name, left):
    """``2 - t``, ``np_array * t``, ``2 ** t``...: a Tensor with the right value and gradient."""
    other = LEFT_OPERANDS[left]
    op = BINARY[op_name]
    x = rand(rng, (2, 3), signed=op_name != "pow")       # pow: a positive base on the right
    y = op(other, tensor(x, requires_grad=True))
    assert isinstance(y, Tensor) and y.requires_grad
    np.testing.assert_allclose(y.data, op(other, x), rtol=1e-13)
    check_grad(lambda t: op(other, t), [x])
    z = op(tensor(x, requires_grad=True), other)     # and on the right
    assert isinstance(z, Tensor) and z.requires_grad
    np.testing.assert_allclose(z.data, op(x, other), rtol=1e-13)
    check_grad(lambda t: op(t, other), [x])


def test_reflected_literal_gradients():
    x = tensor([1.0, 2.0, 4.0], requires_grad=True)
    (2 - x).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, -1.0, -1.0])
    x.grad = None
    (np.array([1.0, 2.0, 3.0]) * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0, 3.0])
    x.grad = None
    (8 / x).sum().backward()                       # d(8/x) = -8/x^2
    np.testing.assert_array_equal(x.grad, [-8.0, -2.0, -0.5])
    x.grad = None
    (2 ** x).sum().backward()                      # d(2^x) = 2^x ln 2
    np.testing.assert_allclose(x.grad, np.array([2.0, 4.0, 16.0]) * np.log(2), rtol=1e-6)


@pytest.mark.parametrize("p", [2, 3, 0.5, -1, -2.5, 1, np.float64(2.0), np.int64(3)])
def test_pow_scalar_exponent(rng, p):
    x = rand(rng, (2, 3), signed=False)
    np.testing.assert_allclose((tensor(x) ** p).data, x ** p, rtol=1e-13)
    check_grad(lambda t: t ** p, [x])


def test_pow_zero_exponent_and_zero_base_give_finite_gradients():
    torch = pytest.importorskip("torch")
    x = tensor([0.0, 2.0], requires_grad=True)
    (x ** 0).sum().backward()                      # d x^0 / dx = 0 even at x = 0
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
    a = np.array([0.0, 0.0, 2.0])
    b = np.array([0.0, 2.0, 3.0])
    ta, tb = tensor(a, requires_grad=True), tensor(b, requires_grad=True)
    (ta ** tb).sum().backward()
    pa, pb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (pa ** pb).sum().backward()
    np.testing.assert_allclose(ta.grad, pa.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(tb.grad, pb.grad.numpy(), rtol=1e-12)
    assert np.isfinite(tb.grad).all()


# ------------------------------------------------------------------ unary functions
UNARY = {
    "neg": (operator.neg, np.negative, True),
    "exp": (Tensor.exp, np.exp, True),
    "log": (Tensor.log, np.log, False),
    "sqrt": (Tensor.sqrt, np.sqrt, False),
    "abs": (abs, np.abs, True),
}


@pytest.mark.parametrize("shape", [(), (3,), (2, 3)], ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_forward_and_gradcheck(rng, name, shape):
    fn, ref, signed = UNARY[name]
    x = rand(rng, shape, signed=signed)
    y = fn(tensor(x))
    assert y.shape == shape
    np.testing.assert_allclose(y.data, ref(x), rtol=1e-13)
    check_grad(fn, [x])


def test_unary_literal():
    x = tensor([1.0, 4.0], requires_grad=True)
    (x.log() + x.sqrt() + x.exp()).sum().backward()
    np.testing.assert_allclose(x.grad, [1 + 0.5 + np.e, 0.25 + 0.25 + np.exp(4)], rtol=1e-6)


# ------------------------------------------------------------------ reductions
AXES = [None, 0, 1, -1, (0, 2), (2, 0), (0, 1, 2), ()]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_reduction_forward_and_gradcheck(rng, name, axis, keepdims):
    x = rng.standard_normal((2, 3, 4))                 # distinct values: no ties
    y = getattr(tensor(x), name)(axis=axis, keepdims=keepdims)
    expected = getattr(np, name if name != "max" else "amax")(x, axis=axis, keepdims=keepdims)
    assert isinstance(y.data, np.ndarray) and y.shape == np.shape(expected)
    np.testing.assert_allclose(y.data, expected, rtol=1e-13)
    check_grad(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_full_reduction_is_a_0d_array(name):
    for x in (tensor([[1.0, 2.0], [3.0, 5.0]]), tensor(7.0)):
        y = getattr(x, name)()
        assert type(y.data) is np.ndarray and y.shape == () and y.dtype == np.float32
    y = getattr(tensor(7.0, requires_grad=True), name)(axis=0)   # 0-d accepts axis 0 (PyTorch)
    assert y.shape == ()


def test_reduction_literals():
    x = tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    (x.sum(axis=0) * tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    x.grad = None
    x.mean(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, np.full((2, 3), 1 / 3), rtol=1e-7)
    assert x.mean().item() == 3.5


def test_max_ties_share_the_gradient_equally():
    """Tie rule: the m equal maxima each get dy / m (torch.amax and full torch.max())."""
    x = tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [0, 0, 0]])
    x.grad = None
    x.max(axis=1).backward(np.array([6.0, 3.0]))
    np.testing.assert_array_equal(x.grad, [[0, 3, 3], [1, 1, 1]])
    x.grad = None
    x.max(axis=0, keepdims=True).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 1], [1, 0, 0]])


@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, False), (0, True), ((0, 1), False)])
def test_max_ties_match_torch_amax(axis, keepdims):
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    t = tensor(x, requires_grad=True)
    y = t.max(axis=axis, keepdims=keepdims)
    g = np.arange(1.0, y.size + 1).reshape(y.shape)
    y.backward(g)
    p = torch.tensor(x, requires_grad=True)
    dim = () if axis is None else axis
    q = torch.amax(p, dim=dim, keepdim=keepdims)
    q.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, q.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(t.grad, p.grad.numpy(), rtol=1e-12)


def test_reduction_bad_axis():
    x = tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="axis 2 is out of range for a 2-D tensor"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="repeats an axis"):
        x.mean(axis=(1, -1))
    with pytest.raises(TypeError, match="axis must be an int or a tuple of ints"):
        x.max(axis=1.0)
    np.testing.assert_array_equal(x.sum(axis=np.int64(1)).data, [3.0, 3.0])


# ------------------------------------------------------------------ matmul
MATMUL_SHAPES = [
    ((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)), ((3,), (5, 3, 4)),
    ((5, 2, 3), (3,)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_forward_and_gradcheck(rng, shapes):
    a, b = (rng.standard_normal(s) for s in shapes)
    y = tensor(a) @ tensor(b)
    np.testing.assert_allclose(y.data, a @ b, rtol=1e-13)
    check_grad(operator.matmul, [a, b])
    assert isinstance(a @ tensor(b), Tensor) and isinstance(tensor(a) @ b, Tensor)
    check_grad(lambda t: a @ t, [b])            # ndarray on the left
    check_grad(lambda t: t @ b, [a])


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_matches_torch(rng, shapes):
    torch = pytest.importorskip("torch")
    a, b = (rng.standard_normal(s) for s in shapes)
    ta, tb = tensor(a, requires_grad=True), tensor(b, requires_grad=True)
    y = ta @ tb
    g = rng.standard_normal(y.shape)
    y.backward(g)
    pa, pb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    q = pa @ pb
    q.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, q.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ta.grad, pa.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(tb.grad, pb.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_matmul_literal_and_bad_operands():
    a = tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    v = tensor([1.0, -1.0], requires_grad=True)
    (a @ v).sum().backward()                  # y_i = Σ_j a_ij v_j
    np.testing.assert_array_equal(a.grad, [[1.0, -1.0], [1.0, -1.0]])
    np.testing.assert_array_equal(v.grad, [4.0, 6.0])
    with pytest.raises(ValueError, match=r"at least one dimension, received shapes \(\) and"):
        tensor(2.0) @ v


# ------------------------------------------------------------------ indexing
INDICES = {
    "int": 1, "negative int": -1, "slice": slice(1, 3), "negative step": slice(None, None, -1),
    "2-D negative step": (slice(None), slice(4, None, -2)), "int and slice": (1, slice(None)),
    "ellipsis": (Ellipsis, 2), "newaxis": (None, 1), "element": (2, -3),
    "bool mask": np.array([True, False, True, True]),
    "2-D bool mask": np.arange(20).reshape(4, 5) % 3 == 0,
    "repeated ints": np.array([0, 0, 3, 0]), "repeated list": [2, 2, 1],
    "repeated pairs": (np.array([0, 0, 1, 0]), np.array([2, 2, 2, 2])),
    "slice and ints": (slice(None), [1, 1, 4]),
    "2-D int array": np.array([[0, 1], [1, 1]]),
}


@pytest.mark.parametrize("name", list(INDICES))
def test_indexing_forward_and_gradcheck(rng, name):
    index = INDICES[name]
    x = rng.standard_normal((4, 5))
    y = tensor(x)[index]
    np.testing.assert_array_equal(y.data, x[index])
    check_grad(lambda t: t[index], [x])


def test_repeated_indices_add_up():
    x = tensor([10.0, 20.0, 30.0], requires_grad=True)
    x[np.array([0, 0, 2, 0])].backward(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [7.0, 0.0, 3.0])
    m = tensor(np.zeros((2, 2)), requires_grad=True)
    m[[0, 0, 1], [1, 1, 0]].sum().backward()
    np.testing.assert_array_equal(m.grad, [[0.0, 2.0], [1.0, 0.0]])


def test_tensor_indices():
    x = tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    rows = tensor([2, 0, 2])
    y = x[rows]
    np.testing.assert_array_equal(y.data, x.data[[2, 0, 2]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.sum(axis=1), [4.0, 0.0, 8.0])
    x.grad = None
    x[(rows, tensor([1, 1, 3]))].sum().backward()          # Tensors inside a tuple
    np.testing.assert_array_equal(x.grad[2], [0.0, 1.0, 0.0, 1.0])
    x.grad = None
    mask = x > 5.5                                          # boolean array from a comparison
    x[tensor(mask)].sum().backward()
    np.testing.assert_array_equal(x.grad, mask.astype(np.float64))


# ------------------------------------------------------------------ shape operations
SHAPE_OPS = {
    "reshape tuple": (lambda t: t.reshape((4, 6)), lambda a: a.reshape(4, 6)),
    "reshape varargs": (lambda t: t.reshape(3, -1), lambda a: a.reshape(3, -1)),
    "view": (lambda t: t.view(-1), lambda a: a.reshape(-1)),
    "flatten": (lambda t: t.flatten(), lambda a: a.reshape(-1)),
    "flatten(1)": (lambda t: t.flatten(1), lambda a: a.reshape(2, -1)),
    "flatten(0, 1)": (lambda t: t.flatten(0, 1), lambda a: a.reshape(6, 4)),
    "transpose()": (lambda t: t.transpose(), lambda a: a.transpose()),
    "transpose(0, 2)": (lambda t: t.transpose(0, 2), lambda a: a.swapaxes(0, 2)),
    "transpose(-1, -2)": (lambda t: t.transpose(-1, -2), lambda a: a.swapaxes(-1, -2)),
    "transpose(2, 0, 1)": (lambda t: t.transpose(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    "permute": (lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    "permute tuple": (lambda t: t.permute((1, 2, 0)), lambda a: a.transpose(1, 2, 0)),
    "permute negative": (lambda t: t.permute(-1, 0, -2), lambda a: a.transpose(2, 0, 1)),
    ".T": (lambda t: t.T, lambda a: a.T),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_ops_forward_and_gradcheck(rng, name):
    fn, ref = SHAPE_OPS[name]
    x = rng.standard_normal((2, 3, 4))
    y = fn(tensor(x))
    np.testing.assert_array_equal(y.data, ref(x))
    check_grad(fn, [x])


def test_transpose_of_a_matrix_follows_pytorch():
    m = tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    for swapped in (m.transpose(0, 1), m.transpose(1, 0), m.T, m.transpose()):
        np.testing.assert_array_equal(swapped.data, m.data.T)
    m.T.backward(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(m.grad, np.arange(6.0).reshape(3, 2).T)
    assert tensor(5.0).flatten().shape == (1,)
    assert tensor(np.ones((0, 3))).flatten(1).shape == (0, 3)


def test_shape_op_errors():
    x = tensor(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"permutation of the 3 axes, received \(0, 0, 1\)"):
        x.permute(0, 0, 1)
    with pytest.raises(ValueError, match="start_dim <= end_dim"):
        x.flatten(2, 1)


# ------------------------------------------------------------------ backward semantics
def test_backward_default_gradient_for_one_element():
    x = tensor([[2.0, 3.0]], requires_grad=True)
    y = (x * x).sum(axis=1, keepdims=True)            # shape (1, 1): one element
    y.backward()
    np.testing.assert_array_equal(x.grad, [[4.0, 6.0]])
    leaf = tensor(3.0, requires_grad=True)
    leaf.backward()                                   # a leaf can be the root
    assert leaf.grad == 1.0 and type(leaf.grad) is np.ndarray


def test_backward_errors():
    x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"one-element tensor, received shape \(3,\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="needs a tensor that requires grad"):
        tensor([1.0]).backward()
    with pytest.raises(RuntimeError, match="needs a tensor that requires grad"):
        (tensor([1.0]) * 2).sum().backward()
    with pytest.raises(ValueError, match=r"expected grad of shape \(3,\), received \(1, 3\)"):
        (x * 2).backward(np.ones((1, 3)))


def test_accumulation_across_backward_calls_like_torch():
    torch = pytest.importorskip("torch")
    data = np.array([1.0, -2.0, 3.0])
    x = tensor(data, requires_grad=True)
    (x * x).sum().backward()
    first = x.grad
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * data + 3)
    np.testing.assert_array_equal(first, 2 * data)   # an earlier .grad is not changed in place
    p = torch.tensor(data, requires_grad=True)
    (p * p).sum().backward()
    (p * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, p.grad.numpy())


def test_graph_is_freed_unless_retained():
    x = tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])   # unchanged by the failed call
    assert y.grad is None
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0] + np.array([4.0, 8.0]))


def test_diamond_graph_sums_both_paths():
    x = tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0                         # used twice below
    z = (y * y + y.exp() + y).sum()     # dz/dy = 2y + e^y + 1, dy/dx = 3
    z.backward()
    y_val = 3 * x.data
    np.testing.assert_allclose(x.grad, 3 * (2 * y_val + np.exp(y_val) + 1), rtol=1e-6)
    w = tensor([2.0], requires_grad=True)
    (w * w * w).backward()              # the same leaf three times: 3 w^2
    np.testing.assert_array_equal(w.grad, [12.0])
    v = tensor(np.ones(3), requires_grad=True)
    total = v[0]
    for _ in range(99):                 # wide fan-out from one leaf
        total = total + v[0] + v[2]
    total.backward()
    np.testing.assert_array_equal(v.grad, [100.0, 0.0, 99.0])


def test_deep_chain_backward_is_iterative():
    depth = 20_000
    assert depth > sys.getrecursionlimit()
    x = tensor(np.array(1.0), requires_grad=True)          # float64
    y = x
    for _ in range(depth):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001 ** depth, rel=1e-9)


def test_non_leaf_tensors_get_no_grad():
    x = tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = y.sum()
    z.backward()
    assert x.is_leaf and not y.is_leaf and not z.is_leaf
    assert y.grad is None and z.grad is None
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_constants_get_no_grad():
    x = tensor([1.0, 2.0], requires_grad=True)
    c = tensor([3.0, 4.0])
    (x * c + c).sum().backward()
    assert c.grad is None and not c.requires_grad
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_gradients_never_alias():
    seed = np.array([1.0, 2.0])
    a = tensor([0.0, 0.0], requires_grad=True)
    b = tensor([0.0, 0.0], requires_grad=True)
    (a + b).backward(seed)              # both leaves receive the very same dy
    assert a.grad is not b.grad and not np.shares_memory(a.grad, seed)
    a.grad *= 10                        # in-place updates (as optimisers do) stay local
    np.testing.assert_array_equal(b.grad, [1.0, 2.0])
    np.testing.assert_array_equal(seed, [1.0, 2.0])
    a.grad = None
    a.backward(seed)                    # a leaf as the root
    assert not np.shares_memory(a.grad, seed)
    fresh = np.array([5.0, 6.0], dtype=np.float32)     # one new array for two leaves
    a.grad = b.grad = None
    record(a.data + b.data, (a, b), lambda dy: (fresh, fresh)).backward(seed)
    assert not np.shares_memory(a.grad, b.grad)
    c = tensor([1.0, 2.0], requires_grad=True)
    record(c.data * 2, (c,), lambda dy: (dy[::-1],)).backward(seed)     # a view of dy: copied
    assert not np.shares_memory(c.grad, seed)
    block = np.arange(4, dtype=np.float32)      # two views of one new array: one is copied
    a.grad = b.grad = None
    record(a.data + b.data, (a, b), lambda dy: (block[:2], block[1:3])).backward(seed)
    assert not np.shares_memory(a.grad, b.grad)
    np.testing.assert_array_equal(b.grad, [1.0, 2.0])
    d = tensor(np.zeros(2), requires_grad=True, dtype=np.float64)
    record(d.data, (d,), lambda dy: (fresh,)).backward(seed.astype(np.float32))
    assert d.grad.dtype == np.float64          # cast to the leaf's dtype
    e, seed32 = tensor([0.0, 0.0], requires_grad=True), np.ones(2, dtype=np.float32)
    e.backward(seed32)                         # a leaf as the root, dy in its own dtype
    assert not np.shares_memory(e.grad, seed32)


def test_a_new_gradient_array_becomes_the_leafs_without_a_copy():
    x = tensor([1.0, 2.0], requires_grad=True)
    made = []

    def step(dy):
        made.append(dy * 3)
        return (made[0],)

    record(x.data * 3, (x,), step).backward(np.ones(2))
    assert x.grad is made[0]            # the step's own new array: no copy of a large dX


def test_backward_steps_get_a_read_only_dy():
    x = tensor([1.0, 2.0], requires_grad=True)

    def in_place(dy):
        dy *= 2
        return (dy,)

    with pytest.raises(ValueError, match="read-only"):
        record(x.data * 2, (x,), in_place).sum().backward()


def test_bad_backward_steps_are_reported():
    x = tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"gradient of shape \(3,\) for an input of shape"):
        record(x.data, (x,), lambda dy: (np.ones(3),)).sum().backward()
    with pytest.raises(RuntimeError, match="returned 2 gradients for 1 inputs"):
        record(x.data, (x,), lambda dy: (dy, dy)).sum().backward()


def test_leaf_gradient_takes_the_leaf_dtype():
    x = tensor([1.0, 2.0], requires_grad=True)        # float32
    y = x * np.array([0.5, 0.25])                     # float64 result
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [0.5, 0.25])


def test_zero_grad_and_as_tensor():
    x = tensor([1.0], requires_grad=True)
    (x * 2).sum().backward()
    x.zero_grad()
    assert x.grad is None
    assert as_tensor(x) is x
    assert isinstance(as_tensor(np.ones(2)), Tensor) and not as_tensor(np.ones(2)).requires_grad


# ------------------------------------------------------------------ no_grad and detach
def test_no_grad_context_nests_and_restores():
    x = tensor([1.0], requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        with no_grad():
            y = x * 2
        assert not is_grad_enabled()
        with enable_grad():
            z = x * 2
        assert not is_grad_enabled()
        assert needs_grad(x, None) == (False, False)
    assert is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad
    with no_grad(), pytest.raises(RuntimeError):
        (x * 2).backward()               # nothing was recorded
    assert needs_grad(x, None, tensor([1.0])) == (True, False, False)


def test_no_grad_restores_after_exceptions():
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("boom")
    assert is_grad_enabled()
    with no_grad():
        with pytest.raises(KeyError):
            with enable_grad():
                raise KeyError("boom")
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_no_grad_as_decorator():
    @no_grad()
    def called():
        """Docstring kept."""
        return is_grad_enabled()

    @no_grad
    def bare():
        return is_grad_enabled()

    @no_grad()
    def failing():
        raise ValueError("boom")

    assert called() is False and bare() is False and is_grad_enabled()
    assert called.__name__ == "called" and called.__doc__ == "Docstring kept."
    with pytest.raises(ValueError):
        failing()
    assert is_grad_enabled()
    guard = no_grad()                    # one object re-entered
    with guard:
        with guard:
            pass
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_no_grad_is_per_thread():
    seen = []
    with no_grad():
        worker = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        worker.start()
        worker.join()
    assert seen == [True]


def test_detach():
    x = tensor(np.array([1.0, 2.0]), requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and d.dtype == np.float64
    assert np.shares_memory(d.data, x.data)
    (x.detach() * x).sum().backward()      # only the tracked factor contributes: dx = x
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])


def test_top_level_exports():
    assert cnnlab.tensor is tensor and cnnlab.no_grad is no_grad and cnnlab.Tensor is Tensor


# ------------------------------------------------------------------ only needed gradients
def test_only_needed_gradients_are_computed(monkeypatch, rng):
    """Every operator's backward reduces (unbroadcasts) a gradient only for ``x``."""
    calls = []
    original = ew.unbroadcast
    monkeypatch.setattr(ew, "unbroadcast", lambda g, s: calls.append(s) or original(g, s))
    x = tensor(rng.uniform(1, 2, (2, 3)), requires_grad=True)
    c = tensor(rng.uniform(1, 2, (3,)))
    cases = [(op, c, c) for op in (operator.add, operator.sub, operator.mul,
                                   operator.truediv, operator.pow)]
    cases.append((operator.matmul, tensor(np.ones((3, 2))), tensor(np.ones((4, 2)))))
    for op, right, left in cases:
        calls.clear()
        op(x, right).sum().backward()
        assert calls == [(2, 3)], op
        calls.clear()
        op(left, x).sum().backward()
        assert calls == [(2, 3)], op


@pytest.mark.usefixtures("numpy_kernels")        # spies on the im2col path's input gradient
def test_conv2d_skips_the_input_gradient(monkeypatch, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 6, 6))
    w_data = rng.standard_normal((4, 3, 3, 3))
    g = rng.standard_normal((2, 4, 4, 4))
    flags, input_grads = [], []
    conv_backward, input_grad = conv_ops.conv_backward, conv_ops._input_grad

    def spy_backward(dz, cache, *need):
        flags.append(need)
        return conv_backward(dz, cache, *need)

    def spy_input_grad(*args, **kwargs):
        input_grads.append(args[0].shape)
        return input_grad(*args, **kwargs)

    monkeypatch.setattr(conv_ops, "conv_backward", spy_backward)
    monkeypatch.setattr(conv_ops, "_input_grad", spy_input_grad)

    for x_arg in (x, tensor(x)):                 # a plain array, or a Tensor without grad
        flags.clear()
        input_grads.clear()
        w = tensor(w_data, requires_grad=True)
        F.conv2d(x_arg, w).backward(g)
        assert flags == [(False, True, False)]
        assert input_grads == []                 # dX was never computed
        px = torch.tensor(x)
        pw = torch.tensor(w_data, requires_grad=True)
        torch.nn.functional.conv2d(px, pw).backward(torch.tensor(g))
        np.testing.assert_allclose(w.grad, pw.grad.numpy(), rtol=1e-10, atol=1e-10)

    x_t = tensor(x, requires_grad=True)          # the control: now dX is needed
    F.conv2d(x_t, tensor(w_data)).backward(g)
    assert flags[-1] == (True, False, False) and len(input_grads) == 1
    assert x_t.grad.shape == x.shape


def test_shape_mistakes_name_both_shapes():
    t = cnnlab.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\) "
                                         r"\(6 elements\) into \(4, 2\)"):
        t.reshape(4, 2)
    with pytest.raises(ValueError, match=r"matmul \(@\) needs the last axis of the first "
                                         r"operand to match the second-to-last axis of the "
                                         r"second, received shapes \(2, 3\) and \(2, 3\)"):
        t @ t
