"""Tensor methods with PyTorch's names and semantics: reductions, casts, shapes, activations.

``Tensor`` inherits them from :class:`TensorMethods`, so ``t.sum(dim=1, keepdim=True)``,
``t.max(1)`` (values and indices), ``t.size()``, ``t.float()``, ``t.unsqueeze(0)`` and
``t.relu()`` behave as in ``torch``. The NumPy spellings stay: ``t.sum(axis=1, keepdims=True)``,
and ``t.max(axis=1)`` is NumPy's ``amax`` (one number per row, ties share the gradient).

Every method that torch differentiates records its backward here too; integer results
(indices, ``long()``) carry no gradient, as in torch.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from ..ops import activation as act
from ..ops import elementwise as ew
from . import tensor as _tensor


class ElementCount(int):
    """``t.size``: the number of elements (NumPy's ``ndarray.size``), callable as torch's.

    ``t.size`` is an int (``t.size == 12`` for shape ``(3, 4)``), ``t.size()`` the shape
    ``(3, 4)`` (torch's ``torch.Size`` is a tuple too) and ``t.size(1)`` or ``t.size(-1)`` is 4.
    """

    def __new__(cls, shape: tuple[int, ...]) -> ElementCount:
        count = super().__new__(cls, math.prod(shape))
        count.shape = tuple(shape)
        return count

    def __call__(self, dim: int | None = None) -> tuple[int, ...] | int:
        if dim is None:
            return self.shape
        if not self.shape:
            raise IndexError(f"size({dim!r}): a 0-d tensor has no dimensions.")
        return self.shape[_one_dim(dim, len(self.shape), "size")]

    def __reduce__(self):
        return int, (int(self),)              # pickles and copies as a plain int


class ValuesIndices(NamedTuple):
    """What ``t.max(dim)`` and ``t.min(dim)`` return, as torch's ``return_types.max``."""

    values: _tensor.Tensor
    indices: _tensor.Tensor


def _one_dim(dim, ndim: int, method: str, extra: int = 0) -> int:
    """A single dim in ``[-ndim - extra, ndim + extra)``, as a non-negative index."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{method}() expects dim to be one int, received {dim!r}.")
    span = max(ndim + extra, 1)
    if not -span <= dim < span:
        raise IndexError(
            f"{method}(): dim {dim} is out of range for a {ndim}-D tensor (expected a dim in "
            f"[{-span}, {span - 1}])."
        )
    return int(dim) % span


def _reduce_args(method: str, dim, keepdim: bool, axis, keepdims) -> tuple[object, bool]:
    """Merge torch's ``dim``/``keepdim`` with NumPy's ``axis``/``keepdims`` (one of each)."""
    if axis is not None and dim is not None:
        raise TypeError(f"{method}() takes dim or axis, not both (received dim={dim!r}, "
                        f"axis={axis!r}).")
    if keepdims is not None and keepdim:
        raise TypeError(f"{method}() takes keepdim or keepdims, not both.")
    axis = dim if axis is None else axis
    if isinstance(axis, list):
        axis = tuple(axis)
    return axis, bool(keepdim if keepdims is None else keepdims)


class TensorMethods:
    """The torch-style part of :class:`~cnnlab.autograd.Tensor`'s interface (see module doc)."""

    __slots__ = ()

    # ------------------------------------------------------------ shape queries and export
    def dim(self) -> int:
        """Number of axes (torch's ``t.dim()``, NumPy's ``t.ndim``)."""
        return self.data.ndim

    def numel(self) -> int:
        """Number of elements."""
        return int(self.data.size)

    def tolist(self):
        """The values as (nested) Python lists of Python numbers; a 0-d tensor gives a number."""
        return self.data.tolist()

    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shared, not copied); refused while it requires a gradient.

        As in torch: ``t.detach().numpy()`` is the way to take the values out of the graph.
        """
        if self.requires_grad:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                "instead."
            )
        return self.data

    def cpu(self):
        """The tensor itself: cnnlab tensors always live in host memory."""
        return self

    def contiguous(self):
        """The tensor itself (NumPy handles strides; torch code calls this before ``view``)."""
        return self

    # ------------------------------------------------------------ copies and casts
    def clone(self):
        """A copy of the data that stays in the graph: the gradient flows back unchanged."""
        return _tensor.record(self.data.copy(), (self,), lambda dy: (dy,))

    def to(self, dtype):
        """``t.to(np.float64)`` casts (a new tensor, in the graph); ``t.to("cpu")`` is ``t``.

        As in torch, a cast to the dtype the tensor already has returns the tensor itself.
        """
        if isinstance(dtype, str) and dtype == "cpu":
            return self
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"to() expects a NumPy dtype (e.g. np.float64) or 'cpu', received "
                            f"{dtype!r}.") from None
        return self if dtype == self.data.dtype else self.astype(dtype)

    def float(self):
        """float32 (torch's ``float``); a float32 tensor is returned as it is."""
        return self.to(np.float32)

    def double(self):
        """float64; a float64 tensor is returned as it is."""
        return self.to(np.float64)

    def long(self):
        """int64 (no gradient, as torch)."""
        return self.to(np.int64)

    def int(self):
        """int32 (no gradient, as torch)."""
        return self.to(np.int32)

    def bool(self):
        """bool (no gradient)."""
        return self.to(np.bool_)

    # ------------------------------------------------------------ activations
    def relu(self):
        """``max(x, 0)``; the gradient is ``dy`` where ``x > 0`` and 0 elsewhere (also at 0)."""
        y, cache = act.relu_forward(self.data)
        return _tensor.record(y, (self,), lambda dy: (act.relu_backward(dy, cache),))

    def sigmoid(self):
        """``1 / (1 + exp(-x))``; ``dx = dy · y (1 - y)``."""
        y, cache = act.sigmoid_forward(self.data)
        return _tensor.record(y, (self,), lambda dy: (act.sigmoid_backward(dy, cache),))

    def tanh(self):
        """``tanh(x)``; ``dx = dy · (1 - y²)``."""
        y, cache = act.tanh_forward(self.data)
        return _tensor.record(y, (self,), lambda dy: (act.tanh_backward(dy, cache),))

    def softmax(self, dim: int):
        """``exp(x) / Σ_dim exp(x)`` along ``dim`` (required, as torch warns without it)."""
        axis = _one_dim(dim, self.ndim, "softmax")
        y, cache = act.softmax_forward(self.data, axis)
        return _tensor.record(y, (self,), lambda dy: (act.softmax_backward(dy, cache),))

    def log_softmax(self, dim: int):
        """``x - log Σ_dim exp(x)`` along ``dim``, computed stably."""
        axis = _one_dim(dim, self.ndim, "log_softmax")
        y, cache = act.log_softmax_forward(self.data, axis)
        return _tensor.record(y, (self,), lambda dy: (act.log_softmax_backward(dy, cache),))

    # ------------------------------------------------------------ shape
    def unsqueeze(self, dim: int):
        """A new axis of size 1 at ``dim`` (``-1`` appends, as in torch)."""
        axis = _one_dim(dim, self.ndim, "unsqueeze", extra=1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def squeeze(self, dim: int | tuple[int, ...] | None = None):
        """Drop axes of size 1: all of them, or those among ``dim`` (others are left, as torch)."""
        if dim is None:
            axes = range(self.ndim)
        elif isinstance(dim, (tuple, list)):
            axes = [_one_dim(d, self.ndim, "squeeze") for d in dim]
        else:
            axes = [_one_dim(dim, self.ndim, "squeeze")]
        drop = {a for a in axes if self.ndim and self.shape[a] == 1}
        return self.reshape(tuple(n for a, n in enumerate(self.shape) if a not in drop))

    # ------------------------------------------------------------ reductions
    def sum(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False, *,
            axis: int | tuple[int, ...] | None = None, keepdims: bool | None = None):
        """Sum over ``dim`` (all axes by default): torch's ``dim``/``keepdim`` or NumPy's
        ``axis``/``keepdims``; the gradient is ``dy`` broadcast over the summed axes."""
        axis, keepdims = _reduce_args("sum", dim, keepdim, axis, keepdims)
        shape, axes = self.shape, ew.normalize_axes(axis, self.ndim)
        return _tensor.record(self.data.sum(axis=axes, keepdims=keepdims), (self,),
                              lambda dy: (ew.sum_backward(dy, shape, axes, keepdims),))

    def mean(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False, *,
             axis: int | tuple[int, ...] | None = None, keepdims: bool | None = None):
        """Mean over ``dim`` (all axes by default); ``dx = dy / count`` over the reduced axes."""
        axis, keepdims = _reduce_args("mean", dim, keepdim, axis, keepdims)
        shape, axes = self.shape, ew.normalize_axes(axis, self.ndim)
        count = math.prod(shape[a] for a in axes)
        return _tensor.record(self.data.mean(axis=axes, keepdims=keepdims), (self,),
                              lambda dy: (ew.sum_backward(dy / count, shape, axes, keepdims),))

    def amax(self, dim: int | tuple[int, ...] = (), keepdim: bool = False):
        """Largest value over ``dim`` (all axes for ``()``, as ``torch.amax``).

        Ties share the gradient equally: each of ``m`` equal maxima gets ``dy / m``.
        """
        return self._extreme(np.max, None if dim == () else dim, keepdim)

    def amin(self, dim: int | tuple[int, ...] = (), keepdim: bool = False):
        """Smallest value over ``dim`` (all axes for ``()``); ties share the gradient."""
        return self._extreme(np.min, None if dim == () else dim, keepdim)

    def max(self, dim: int | None = None, keepdim: bool = False, *,
            axis: int | tuple[int, ...] | None = None, keepdims: bool | None = None):
        """torch's ``max``: ``t.max()`` is the largest value (ties share the gradient) and
        ``t.max(dim)`` the pair ``(values, indices)`` along ``dim``, whose gradient goes to the
        first largest entry of each slice (the index returned).

        With NumPy's ``axis=``/``keepdims=`` it is ``amax`` (one tensor; ties share).
        """
        return self._max_or_min(np.max, np.argmax, "max", dim, keepdim, axis, keepdims)

    def min(self, dim: int | None = None, keepdim: bool = False, *,
            axis: int | tuple[int, ...] | None = None, keepdims: bool | None = None):
        """torch's ``min``, the mirror of :meth:`max`."""
        return self._max_or_min(np.min, np.argmin, "min", dim, keepdim, axis, keepdims)

    def argmax(self, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None):
        """Index of the first largest entry along ``dim`` (of the flattened tensor for
        ``None``), an int64 tensor without gradient, as torch's ``argmax``."""
        return self._arg(np.argmax, "argmax", axis if dim is None else dim, keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None):
        """Index of the first smallest entry along ``dim``, as :meth:`argmax`."""
        return self._arg(np.argmin, "argmin", axis if dim is None else dim, keepdim)

    # ------------------------------------------------------------ their shared work
    def _extreme(self, reduce, axis, keepdims: bool):
        x, axes = self.data, ew.normalize_axes(axis, self.ndim)
        if x.size == 0:
            raise ValueError(f"cannot reduce an empty tensor of shape {self.shape}.")
        y = reduce(x, axis=axes, keepdims=keepdims)
        return _tensor.record(y, (self,),
                              lambda dy: (ew.max_backward(dy, x, y, axes, keepdims),))

    def _max_or_min(self, reduce, arg, name, dim, keepdim, axis, keepdims):
        if axis is not None or keepdims is not None:        # NumPy's spelling: amax / amin
            if dim is not None:
                raise TypeError(f"{name}() takes dim or axis, not both.")
            return self._extreme(reduce, axis, bool(keepdims) or keepdim)
        if dim is None:
            return self._extreme(reduce, None, False)
        if isinstance(dim, (tuple, list)):
            raise TypeError(f"{name}(dim) takes one int dim, received {dim!r}; "
                            f"a{name}(dim=...) reduces several axes.")
        indices = self._arg(arg, name, dim, True)                # (..., 1, ...) int64
        if not self.ndim:                                        # a 0-d tensor is its own max
            return ValuesIndices(self.clone(), indices)
        axis = _one_dim(dim, self.ndim, name)
        x, idx, shape = self.data, indices.data, self.shape
        values = np.take_along_axis(x, idx, axis)

        def backward(dy: np.ndarray):
            dx = np.zeros(shape, dtype=dy.dtype)
            np.put_along_axis(dx, idx, dy if keepdim else np.expand_dims(dy, axis), axis)
            return (dx,)                                         # only the chosen entry

        if not keepdim:
            values, indices = np.squeeze(values, axis), indices.squeeze(axis)
        return ValuesIndices(_tensor.record(values, (self,), backward), indices)

    def _arg(self, arg, name: str, dim, keepdim: bool):
        x = self.data
        if x.size == 0:
            raise ValueError(f"{name}() of an empty tensor of shape {self.shape}.")
        if dim is None:
            return _tensor.Tensor(np.asarray(arg(x), dtype=np.int64))
        if not x.ndim:
            _one_dim(dim, 0, name)
            return _tensor.Tensor(np.zeros((), dtype=np.int64))
        axis = _one_dim(dim, x.ndim, name)
        return _tensor.Tensor(arg(x, axis=axis, keepdims=keepdim).astype(np.int64))
