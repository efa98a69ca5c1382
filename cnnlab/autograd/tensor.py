"""``Tensor``: an ndarray that remembers how it was computed, and reverse-mode differentiation.

Every differentiable operation makes its output with :func:`record`, giving the output its parent
tensors and a closure ``backward(dy) -> (d_parent_0, d_parent_1, ...)``. ``Tensor.backward``
orders the recorded graph topologically (iteratively, so deep graphs cannot overflow the stack)
and applies the chain rule from the output back to the leaves, accumulating into ``.grad``.

dtype rules (PyTorch's, with NumPy's names): lists and Python floats give float32, Python ints
and int lists give int64, bools stay bool, ndarrays and NumPy scalars keep float32 / float64 /
integer / bool dtypes. In arithmetic a Python or NumPy scalar takes the tensor's dtype (float32
stays float32), and an integer operand takes the floating operand's dtype.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from ..ops import elementwise as ew
from .engine import run_backward
from .grad_mode import is_grad_enabled
from .tensor_methods import ElementCount, TensorMethods

Backward = Callable[[np.ndarray], Sequence["np.ndarray | None"]]


def _is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


def _to_array(data, dtype=None) -> np.ndarray:
    """float32 by default; float64, integer and bool arrays are kept as given (like PyTorch)."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    if isinstance(data, (np.ndarray, np.generic)):
        array = np.asarray(data)
        if array.dtype.kind in "iub" or array.dtype in (np.float32, np.float64):
            return array
        if array.dtype.kind != "f":
            raise TypeError(
                f"a tensor needs numeric data, received an array of dtype {array.dtype}."
            )
        return array.astype(np.float32)
    array = np.asarray(data)
    if array.dtype.kind in "iub":
        return array
    if array.dtype.kind not in "f":
        raise TypeError(
            f"a tensor needs numeric data, received {type(data).__name__} {data!r:.60} "
            f"(NumPy dtype {array.dtype})."
        )
    return array.astype(np.float32)


class Tensor(TensorMethods):
    """An ``np.ndarray`` (``.data``) with an optional gradient (``.grad``, same shape).

    Args:
        data: array-like; float32 unless it is already a float64, integer or bool ndarray.
        requires_grad: record operations on this tensor so ``backward`` can reach it
            (floating-point tensors only).
        dtype: force a NumPy dtype (e.g. ``np.float64`` for gradient checks).

    Beside NumPy's spellings it has torch's methods (``size()``, ``dim()``, ``sum(dim,
    keepdim)``, ``max(dim)``, ``float()``, ``clone()``, ``relu()``, ``unsqueeze``...), from
    :class:`~cnnlab.autograd.tensor_methods.TensorMethods`.

    Shape:
        ``.shape`` is ``.data.shape``; ``.grad`` has the same shape once ``backward`` reached it.

    Example:
        >>> import cnnlab
        >>> x = cnnlab.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad
        array([[2., 4.],
               [6., 8.]], dtype=float32)
    """

    __slots__ = ("data", "grad", "_requires_grad", "_parents", "_backward", "__weakref__")
    __array_priority__ = 1000          # ndarray <op> Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data: np.ndarray = _to_array(data, dtype)
        self.grad: np.ndarray | None = None
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Backward | None = None
        self._requires_grad = False
        if requires_grad:
            self.requires_grad = True

    # ----------------------------------------------------------------- properties
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag and not _is_float(self.data.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients, received dtype "
                f"{self.data.dtype}."
            )
        self._requires_grad = bool(flag)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> ElementCount:
        """The number of elements (an int); ``t.size()`` / ``t.size(dim)`` as in torch."""
        return ElementCount(self.data.shape)

    @property
    def T(self) -> Tensor:  # noqa: N802 (NumPy's name)
        """All axes reversed (``x.transpose()``)."""
        return self.transpose()

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor.")
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor.")
        return (self[i] for i in range(len(self.data)))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """``np.asarray(t)`` gives ``t.data`` (without gradient tracking)."""
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def __bool__(self) -> bool:
        return bool(self.data)          # one element only, as NumPy and PyTorch require

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{grad})"

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a tensor with one element, received shape {self.shape}."
            )
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data (shared, same dtype), cut from the graph: no gradient flows through."""
        return _constant(self.data)

    def astype(self, dtype) -> Tensor:
        """A copy converted to ``dtype``; the gradient flows back converted to this dtype."""
        source = self.data.dtype
        return record(self.data.astype(dtype), (self,), lambda dy: (dy.astype(source),))

    def requires_grad_(self, flag: bool = True) -> Tensor:
        self.requires_grad = flag
        return self

    def zero_grad(self) -> None:
        self.grad = None

    # ----------------------------------------------------------------- backward
    def backward(self, grad: np.ndarray | Tensor | float | None = None,
                 retain_graph: bool = False) -> None:
        """Accumulate ``d self / d leaf`` (times ``grad``) into ``.grad`` of every leaf.

        ``grad`` defaults to 1 for a one-element tensor; otherwise it must have ``self.shape``.
        Leaves add to an existing ``.grad`` (as PyTorch does); other tensors keep none. The
        graph is freed afterwards unless ``retain_graph=True`` (as in PyTorch), and a second
        ``backward`` through a freed graph raises ``RuntimeError``.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() needs a tensor that requires grad; this one was computed from "
                "tensors that do not (or under no_grad())."
            )
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward() without a gradient needs a one-element tensor, received shape "
                    f"{self.shape}; pass grad with that shape."
                )
            seed = np.ones_like(self.data)
        else:
            seed = np.asarray(grad.data if isinstance(grad, Tensor) else grad,
                              dtype=self.data.dtype)
            if seed.shape != self.shape:
                raise ValueError(
                    f"backward() expected grad of shape {self.shape}, received {seed.shape}."
                )
        run_backward(self, seed, retain_graph)

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other) -> Tensor:
        a, b = _operands(self, other)
        need_a, need_b = needs_grad(a, b)
        return record(a.data + b.data, (a, b), lambda dy: (
            ew.unbroadcast(dy, a.shape) if need_a else None,
            ew.unbroadcast(dy, b.shape) if need_b else None))

    def __radd__(self, other) -> Tensor:
        return _wrap(other, self) + self

    def __sub__(self, other) -> Tensor:
        a, b = _operands(self, other)
        need_a, need_b = needs_grad(a, b)
        return record(a.data - b.data, (a, b), lambda dy: (
            ew.unbroadcast(dy, a.shape) if need_a else None,
            ew.unbroadcast(-dy, b.shape) if need_b else None))

    def __rsub__(self, other) -> Tensor:
        return _wrap(other, self) - self

    def __mul__(self, other) -> Tensor:
        a, b = _operands(self, other)
        need_a, need_b = needs_grad(a, b)
        return record(a.data * b.data, (a, b), lambda dy: (
            ew.unbroadcast(dy * b.data, a.shape) if need_a else None,
            ew.unbroadcast(dy * a.data, b.shape) if need_b else None))

    def __rmul__(self, other) -> Tensor:
        return _wrap(other, self) * self

    def __truediv__(self, other) -> Tensor:
        a, b = _operands(self, other)
        if not _is_float(a.dtype):                      # int / int -> float32, as in PyTorch
            a, b = _constant(a.data.astype(np.float32)), _constant(b.data.astype(np.float32))
        need_a, need_b = needs_grad(a, b)
        return record(a.data / b.data, (a, b), lambda dy: (
            ew.unbroadcast(dy / b.data, a.shape) if need_a else None,
            ew.unbroadcast(-dy * a.data / (b.data * b.data), b.shape) if need_b else None))

    def __rtruediv__(self, other) -> Tensor:
        return _wrap(other, self) / self

    def __neg__(self) -> Tensor:
        return record(-self.data, (self,), lambda dy: (-dy,))

    def __pow__(self, exponent) -> Tensor:
        if isinstance(exponent, (numbers.Real, np.generic)) and not isinstance(exponent, Tensor):
            return _pow_scalar(self, exponent.item() if isinstance(exponent, np.generic)
                               else exponent)
        a, b = _operands(self, exponent)
        y = a.data ** b.data
        need = needs_grad(a, b)
        return record(y, (a, b), lambda dy: ew.pow_backward(dy, a.data, b.data, y, *need))

    def __rpow__(self, other) -> Tensor:
        return _wrap(other, self) ** self

    def __matmul__(self, other) -> Tensor:
        a, b = _operands(self, other)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(
                f"matmul (@) needs operands with at least one dimension, received shapes "
                f"{a.shape} and {b.shape}."
            )
        need = needs_grad(a, b)
        try:
            data = a.data @ b.data
        except ValueError:
            raise ValueError(
                f"matmul (@) needs the last axis of the first operand to match the "
                f"{'only' if b.ndim == 1 else 'second-to-last'} axis of the second, received "
                f"shapes {a.shape} and {b.shape}."
            ) from None
        return record(data, (a, b), lambda dy: ew.matmul_backward(dy, a.data, b.data, *need))

    def __rmatmul__(self, other) -> Tensor:
        return _wrap(other, self) @ self

    # Comparisons give plain boolean arrays: they have no gradient. ``==`` stays identity
    # (tensors are dict keys in optimisers); compare ``t.data`` for elementwise equality.
    def __lt__(self, other):
        return self.data < _data(other)

    def __le__(self, other):
        return self.data <= _data(other)

    def __gt__(self, other):
        return self.data > _data(other)

    def __ge__(self, other):
        return self.data >= _data(other)

    __hash__ = object.__hash__

    # ----------------------------------------------------------------- elementwise functions
    def exp(self) -> Tensor:
        y = np.exp(self.data)
        return record(y, (self,), lambda dy: (dy * y,))

    def log(self) -> Tensor:
        x = self.data
        return record(np.log(x), (self,), lambda dy: (dy / x,))

    def sqrt(self) -> Tensor:
        y = np.sqrt(self.data)
        return record(y, (self,), lambda dy: (dy / (2 * y),))

    def abs(self) -> Tensor:
        x = self.data
        return record(np.abs(x), (self,), lambda dy: (dy * np.sign(x),))

    __abs__ = abs

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        old = self.shape
        try:
            data = self.data.reshape(shape)
        except ValueError:
            raise ValueError(
                f"cannot reshape a tensor of shape {old} ({self.size} elements) into "
                f"{tuple(shape)}."
            ) from None
        return record(data, (self,), lambda dy: (dy.reshape(old),))

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge axes ``start_dim..end_dim`` into one (a 0-d tensor becomes shape ``(1,)``)."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = (ew.normalize_axes(d, self.ndim)[0] for d in (start_dim, end_dim))
        if start > end:
            raise ValueError(
                f"flatten() needs start_dim <= end_dim, received {start_dim} and {end_dim} for "
                f"shape {self.shape}."
            )
        merged = math.prod(self.shape[start:end + 1])
        return self.reshape(self.shape[:start] + (merged,) + self.shape[end + 1:])

    def transpose(self, *axes) -> Tensor:
        """``t.transpose(i, j)`` swaps two axes (PyTorch); ``t.transpose()`` reverses all axes;
        ``t.transpose((2, 0, 1))`` or ``t.transpose(2, 0, 1)`` on a 3-D tensor permutes (NumPy).
        """
        if not axes:
            return self.permute(tuple(reversed(range(self.ndim))))
        if len(axes) == 2 and all(isinstance(a, numbers.Integral) for a in axes):
            i, j = ew.normalize_axes(axes, self.ndim)      # PyTorch's swap of two axes
            perm = list(range(self.ndim))
            perm[i], perm[j] = perm[j], perm[i]
            return self.permute(perm)
        return self.permute(*axes)

    def permute(self, *axes) -> Tensor:
        """Reorder axes: output axis ``k`` is input axis ``axes[k]`` (negative axes allowed)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        try:
            perm = ew.normalize_axes(axes, self.ndim)
        except (TypeError, ValueError):
            perm = None
        if perm is None or sorted(perm) != list(range(self.ndim)):
            raise ValueError(
                f"permute() needs a permutation of the {self.ndim} axes, received {axes} for "
                f"shape {self.shape}."
            )
        inverse = tuple(np.argsort(perm))
        return record(self.data.transpose(perm), (self,), lambda dy: (dy.transpose(inverse),))

    def __getitem__(self, index) -> Tensor:
        index = _index_data(index)
        shape, dtype = self.shape, self.dtype

        def backward(dy: np.ndarray):
            dx = np.zeros(shape, dtype=dtype)
            if _is_basic_index(index):
                dx[index] = dy
            else:
                np.add.at(dx, index, dy)          # repeated indices must add up
            return (dx,)

        return record(self.data[index], (self,), backward)


def _pow_scalar(a: Tensor, p: float) -> Tensor:
    """``y = a^p`` for a number ``p``: ``dy/da = p a^(p-1)`` (0 for ``p = 0``, as in PyTorch)."""
    x = a.data
    if not _is_float(x.dtype) and not isinstance(p, numbers.Integral):
        x = x.astype(np.float32)
    return record(x ** p, (a,), lambda dy: (ew.pow_scalar_backward(dy, x, p),))


def _is_basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (slice, numbers.Integral, type(None), type(Ellipsis)))
               and not isinstance(i, (bool, np.bool_)) for i in items)


def _index_data(index):
    """Tensors used as indices (alone, in tuples or lists) become their ndarrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(_index_data(i) for i in index)
    if isinstance(index, list) and any(isinstance(i, Tensor) for i in index):
        return [_index_data(i) for i in index]
    return index


def _data(value):
    return value.data if isinstance(value, Tensor) else value


def _wrap(value, like: Tensor) -> Tensor:
    """Operands become Tensors; Python and NumPy scalars take ``like``'s dtype where it can hold
    them (float32 stays float32; an int tensor with a float scalar gives float32)."""
    if isinstance(value, Tensor):
        return value
    if type(value) in (int, float, bool) or isinstance(
            value, (numbers.Real, np.bool_, np.integer, np.floating)):
        if _is_float(like.dtype) or isinstance(value, (bool, np.bool_)):
            dtype = like.dtype
        elif isinstance(value, numbers.Integral):
            dtype = like.dtype if np.issubdtype(like.dtype, np.integer) else np.int64
        else:
            dtype = np.float32
        return _constant(np.asarray(value, dtype=dtype))
    return Tensor(value)


def _operands(a: Tensor, other) -> tuple[Tensor, Tensor]:
    """``(a, other)`` as Tensors of compatible dtypes: an integer or bool operand takes the
    floating one's dtype (PyTorch's rule; NumPy would give float64 for float32 with int64)."""
    b = _wrap(other, a)
    a_float, b_float = _is_float(a.dtype), _is_float(b.dtype)
    if a_float and not b_float:
        b = _constant(b.data.astype(a.dtype))
    elif b_float and not a_float:
        a = _constant(a.data.astype(b.dtype))
    return a, b


def _constant(array: np.ndarray) -> Tensor:
    """A Tensor around ``array`` as it is (no dtype rules, no gradient)."""
    out = Tensor.__new__(Tensor)
    out.data, out.grad, out._requires_grad, out._parents, out._backward = (
        array, None, False, (), None)
    return out


def record(data: np.ndarray, parents: tuple[Tensor, ...], backward: Backward) -> Tensor:
    """Wrap an op's output; keep ``backward`` only if some parent needs a gradient.

    ``backward(dy)`` must return one gradient (or ``None``) per parent, each of the parent's
    shape, and must not modify ``dy`` in place (it is read-only: other parents may share it).
    Outputs that are not floating-point never require grad.
    """
    out = _constant(np.asarray(data))
    if is_grad_enabled() and out.data.dtype.kind == "f":
        for p in parents:
            if p._requires_grad:
                out._requires_grad, out._parents, out._backward = True, parents, backward
                break
    return out


def needs_grad(*tensors: Tensor | None) -> tuple[bool, ...]:
    """Which inputs of an op will receive a gradient (``False`` for all under ``no_grad``)."""
    if not is_grad_enabled():
        return (False,) * len(tensors)
    return tuple(t is not None and t._requires_grad for t in tensors)


def as_tensor(value) -> Tensor:
    """Tensors pass through; arrays and numbers are wrapped (no gradient)."""
    return value if isinstance(value, Tensor) else Tensor(value)


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Make a :class:`Tensor`: float32 unless ``data`` is a float64/integer/bool array or ``dtype``.

    Example:
        >>> import cnnlab
        >>> cnnlab.tensor([1.0, 2.0]).dtype
        dtype('float32')
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)
