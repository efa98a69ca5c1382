"""``Tensor``: an ndarray that remembers how it was computed, and reverse-mode differentiation.

Every differentiable operation makes its output with :func:`record`, giving the output its parent
tensors and a closure ``backward(dy) -> (d_parent_0, d_parent_1, ...)``. ``Tensor.backward``
orders the recorded graph topologically (iteratively, so deep graphs cannot overflow the stack)
and applies the chain rule from the output back to the leaves, accumulating into ``.grad``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np

from ..ops import elementwise as ew
from .grad_mode import is_grad_enabled

Backward = Callable[[np.ndarray], Sequence["np.ndarray | None"]]
ArrayLike = "Tensor | np.ndarray | float | int | Sequence"


def _to_array(data, dtype=None) -> np.ndarray:
    """float32 by default; float64 and integer arrays are kept as given (like PyTorch)."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    if isinstance(data, np.ndarray):
        if data.dtype == np.float64 or data.dtype == np.float32:
            return data
        if np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_:
            return data
        return data.astype(np.float32)
    array = np.asarray(data)
    if np.issubdtype(array.dtype, np.integer) and not isinstance(data, numbers.Number):
        return array
    return array.astype(np.float32)


class Tensor:
    """An ``np.ndarray`` (``.data``) with an optional gradient (``.grad``, same shape).

    Args:
        data: array-like; float32 unless it is already a float64 or integer ndarray.
        requires_grad: record operations on this tensor so ``backward`` can reach it.
        dtype: force a NumPy dtype (e.g. ``np.float64`` for gradient checks).

    Example:
        >>> import cnnlab
        >>> x = cnnlab.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad
        array([[2., 4.],
               [6., 8.]], dtype=float32)
    """

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "__weakref__")
    __array_priority__ = 1000          # ndarray <op> Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data: np.ndarray = _to_array(data, dtype)
        self.grad: np.ndarray | None = None
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Backward | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ----------------------------------------------------------------- properties
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
    def size(self) -> int:
        return self.data.size

    @property
    def T(self) -> Tensor:  # noqa: N802 (NumPy's name)
        return self.transpose()

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{grad})"

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a tensor with one element, received shape {self.shape}."
            )
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (no gradient flows through it)."""
        return Tensor(self.data)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(
                f"only floating-point tensors can require gradients, received dtype "
                f"{self.data.dtype}."
            )
        self.requires_grad = flag
        return self

    def zero_grad(self) -> None:
        self.grad = None

    # ----------------------------------------------------------------- backward
    def backward(self, grad: np.ndarray | Tensor | float | None = None) -> None:
        """Accumulate ``d self / d leaf`` (times ``grad``) into ``.grad`` of every leaf.

        ``grad`` defaults to 1 for a one-element tensor; otherwise it must have ``self.shape``.
        The graph is freed afterwards (as PyTorch does without ``retain_graph``).
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
        grads: dict[int, np.ndarray] = {id(self): seed}
        for node in reversed(_topological_order(self)):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:
                g = np.asarray(g, dtype=node.data.dtype)
                node.grad = g.copy() if node.grad is None else node.grad + g
                continue
            parent_grads = node._backward(g)
            for parent, pg in zip(node._parents, parent_grads):
                if pg is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg
            node._backward, node._parents = None, ()         # free the graph as we go

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other) -> Tensor:
        a, b = self, _wrap(other, self)
        return record(a.data + b.data, (a, b), lambda dy: (
            ew.unbroadcast(dy, a.shape), ew.unbroadcast(dy, b.shape)))

    def __radd__(self, other) -> Tensor:
        return _wrap(other, self) + self

    def __sub__(self, other) -> Tensor:
        a, b = self, _wrap(other, self)
        return record(a.data - b.data, (a, b), lambda dy: (
            ew.unbroadcast(dy, a.shape), ew.unbroadcast(-dy, b.shape)))

    def __rsub__(self, other) -> Tensor:
        return _wrap(other, self) - self

    def __mul__(self, other) -> Tensor:
        a, b = self, _wrap(other, self)
        return record(a.data * b.data, (a, b), lambda dy: (
            ew.unbroadcast(dy * b.data, a.shape) if a.requires_grad else None,
            ew.unbroadcast(dy * a.data, b.shape) if b.requires_grad else None))

    def __rmul__(self, other) -> Tensor:
        return _wrap(other, self) * self

    def __truediv__(self, other) -> Tensor:
        a, b = self, _wrap(other, self)
        return record(a.data / b.data, (a, b), lambda dy: (
            ew.unbroadcast(dy / b.data, a.shape) if a.requires_grad else None,
            ew.unbroadcast(-dy * a.data / (b.data * b.data), b.shape)
            if b.requires_grad else None))

    def __rtruediv__(self, other) -> Tensor:
        return _wrap(other, self) / self

    def __neg__(self) -> Tensor:
        return record(-self.data, (self,), lambda dy: (-dy,))

    def __pow__(self, exponent) -> Tensor:
        a = self
        if isinstance(exponent, numbers.Real) and not isinstance(exponent, Tensor):
            p = exponent
            return record(a.data ** p, (a,), lambda dy: (dy * p * a.data ** (p - 1),))
        b = _wrap(exponent, self)
        y = a.data ** b.data
        return record(y, (a, b), lambda dy: (
            ew.unbroadcast(dy * b.data * a.data ** (b.data - 1), a.shape)
            if a.requires_grad else None,
            ew.unbroadcast(dy * y * np.log(a.data), b.shape) if b.requires_grad else None))

    def __matmul__(self, other) -> Tensor:
        a, b = self, _wrap(other, self)
        return record(a.data @ b.data, (a, b), lambda dy: _matmul_backward(dy, a, b))

    def __rmatmul__(self, other) -> Tensor:
        return _wrap(other, self) @ self

    # Comparisons give plain boolean arrays: they have no gradient.
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

    # ----------------------------------------------------------------- reductions
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        shape, axes = self.shape, ew.normalize_axes(axis, self.ndim)
        return record(self.data.sum(axis=axes, keepdims=keepdims), (self,),
                      lambda dy: (ew.sum_backward(dy, shape, axes, keepdims),))

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        shape, axes = self.shape, ew.normalize_axes(axis, self.ndim)
        count = int(np.prod([shape[a] for a in axes])) if shape else 1
        return record(self.data.mean(axis=axes, keepdims=keepdims), (self,),
                      lambda dy: (ew.sum_backward(dy / count, shape, axes, keepdims),))

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        x, axes = self.data, ew.normalize_axes(axis, self.ndim)
        y = x.max(axis=axes, keepdims=keepdims)
        return record(y, (self,), lambda dy: (ew.max_backward(dy, x, y, axes, keepdims),))

    def argmax(self, axis: int | None = None) -> np.ndarray:
        return self.data.argmax(axis=axis)

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        old = self.shape
        return record(self.data.reshape(shape), (self,), lambda dy: (dy.reshape(old),))

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        start, end = start_dim % max(self.ndim, 1), end_dim % max(self.ndim, 1)
        shape = self.shape[:start] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def transpose(self, *axes) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            axes = tuple(reversed(range(self.ndim)))
        elif len(axes) == 2 and self.ndim != 2:
            i, j = (a % self.ndim for a in axes)          # torch-style swap of two axes
            perm = list(range(self.ndim))
            perm[i], perm[j] = perm[j], perm[i]
            axes = tuple(perm)
        inverse = tuple(np.argsort(axes))
        return record(self.data.transpose(axes), (self,), lambda dy: (dy.transpose(inverse),))

    def permute(self, *axes) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        inverse = tuple(np.argsort(axes))
        return record(self.data.transpose(axes), (self,), lambda dy: (dy.transpose(inverse),))

    def __getitem__(self, index) -> Tensor:
        index = _data(index) if isinstance(index, Tensor) else index
        shape, dtype = self.shape, self.dtype

        def backward(dy: np.ndarray):
            dx = np.zeros(shape, dtype=dtype)
            if _is_basic_index(index):
                dx[index] = dy
            else:
                np.add.at(dx, index, dy)          # repeated indices must add up
            return (dx,)

        return record(self.data[index], (self,), backward)


def _is_basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (slice, numbers.Integral, type(None), type(Ellipsis)))
               and not isinstance(i, bool) for i in items)


def _data(value):
    return value.data if isinstance(value, Tensor) else value


def _wrap(value, like: Tensor) -> Tensor:
    """Operands become Tensors; Python scalars take ``like``'s dtype (float32 stays float32)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, numbers.Number):
        return Tensor(np.asarray(value, dtype=like.dtype))
    return Tensor(value)


def _matmul_backward(dy: np.ndarray, a: Tensor, b: Tensor):
    """``Y = A @ B``: ``dA = dY @ Bᵀ``, ``dB = Aᵀ @ dY`` (1-D operands promoted, batches summed)."""
    a2 = a.data if a.ndim > 1 else a.data[None, :]
    b2 = b.data if b.ndim > 1 else b.data[:, None]
    dy2 = dy
    if a.ndim == 1:
        dy2 = np.expand_dims(dy2, -2)
    if b.ndim == 1:
        dy2 = np.expand_dims(dy2, -1)
    da = db = None
    if a.requires_grad:
        da = ew.unbroadcast(dy2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
    if b.requires_grad:
        db = ew.unbroadcast(np.swapaxes(a2, -1, -2) @ dy2, b2.shape).reshape(b.shape)
    return da, db


def _topological_order(root: Tensor) -> list[Tensor]:
    """Parents before children, by an explicit-stack depth-first search (no recursion)."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    return order


def record(data: np.ndarray, parents: tuple[Tensor, ...], backward: Backward) -> Tensor:
    """Wrap an op's output; keep ``backward`` only if some parent needs a gradient."""
    out = Tensor.__new__(Tensor)
    out.data, out.grad = np.asarray(data), None
    if is_grad_enabled() and any(p.requires_grad for p in parents):
        out.requires_grad, out._parents, out._backward = True, parents, backward
    else:
        out.requires_grad, out._parents, out._backward = False, (), None
    return out


def needs_grad(*tensors: Tensor | None) -> tuple[bool, ...]:
    """Which inputs of an op will receive a gradient (``False`` for all under ``no_grad``)."""
    enabled = is_grad_enabled()
    return tuple(enabled and t is not None and t.requires_grad for t in tensors)


def as_tensor(value) -> Tensor:
    """Tensors pass through; arrays and numbers are wrapped (no gradient)."""
    return value if isinstance(value, Tensor) else Tensor(value)


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Make a :class:`Tensor`: float32 unless ``data`` is a float64/integer array or ``dtype``."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)
