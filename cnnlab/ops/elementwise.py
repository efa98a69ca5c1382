"""Gradients of broadcasting arithmetic, powers, matrix products and reductions.

NumPy broadcasting repeats an operand along new or size-1 axes; the gradient of a repetition is
a sum, so ``unbroadcast`` sums ``grad`` back down to the operand's shape. Each ``*_backward``
computes only the gradients it is asked for (``need_a`` / ``need_b``).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """``None`` -> every axis; ints (NumPy ints too) -> a tuple of non-negative axes.

    A 0-d array accepts axis 0 and -1, as in PyTorch; repeated axes are refused.
    """
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (numbers.Integral, float)) else tuple(axis)
    for a in axes:
        if not isinstance(a, numbers.Integral) or isinstance(a, bool):
            raise TypeError(f"axis must be an int or a tuple of ints, received {axis!r}.")
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a {ndim}-D tensor.")
    if ndim == 0:
        return ()
    normalized = tuple(int(a) % ndim for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis {axis!r} repeats an axis (for a {ndim}-D tensor).")
    return normalized


def expand_reduced(grad: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...],
                   keepdims: bool) -> np.ndarray:
    """Re-insert the reduced axes of ``grad`` (size 1) so that it broadcasts against ``shape``."""
    if not keepdims:
        grad = np.expand_dims(grad, axes) if axes else grad
    return grad


def sum_backward(dy: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...],
                 keepdims: bool) -> np.ndarray:
    """``y = Σ_axes x``  ->  ``dx = dy`` broadcast over the summed axes."""
    return np.broadcast_to(expand_reduced(dy, shape, axes, keepdims), shape).copy()


def max_backward(dy: np.ndarray, x: np.ndarray, y: np.ndarray, axes: tuple[int, ...],
                 keepdims: bool) -> np.ndarray:
    """``y = max_axes x``  ->  ``dx = dy · [x == y] / #ties`` (ties share the gradient)."""
    y_full = expand_reduced(y, x.shape, axes, keepdims)
    mask = (x == y_full).astype(dy.dtype)
    mask /= mask.sum(axis=axes, keepdims=True)
    return mask * expand_reduced(dy, x.shape, axes, keepdims)


def pow_scalar_backward(dy: np.ndarray, x: np.ndarray, p: float) -> np.ndarray:
    """``y = x^p`` for a number ``p``  ->  ``dx = dy · p x^(p-1)`` (0 for ``p = 0``, even at 0)."""
    if p == 0:
        return np.zeros_like(dy)
    return dy * (p * x ** (p - 1))


def pow_backward(dy: np.ndarray, a: np.ndarray, b: np.ndarray, y: np.ndarray, need_a: bool,
                 need_b: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``y = a^b`` (broadcast)  ->  ``da = dy · b a^(b-1)`` (0 where ``b = 0``),
    ``db = dy · a^b ln a`` (0 where ``a = 0`` and ``b >= 0``, PyTorch's limits)."""
    da = db = None
    with np.errstate(divide="ignore", invalid="ignore"):        # the masked entries
        if need_a:
            da = unbroadcast(dy * np.where(b == 0, 0, b * a ** (b - 1)), a.shape)
        if need_b:
            db = unbroadcast(dy * np.where((a == 0) & (b >= 0), 0, y * np.log(a)), b.shape)
    return da, db


def matmul_backward(dy: np.ndarray, a: np.ndarray, b: np.ndarray, need_a: bool,
                    need_b: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``Y = A @ B``  ->  ``dA = dY @ Bᵀ``, ``dB = Aᵀ @ dY``, summed over broadcast batch axes.

    1-D operands are promoted as ``np.matmul`` does: ``A (k,) -> (1, k)``, ``B (k,) -> (k, 1)``,
    and ``dY`` gets the matching size-1 axes back.
    """
    a2 = a if a.ndim > 1 else a[None, :]                        # (k,) -> (1, k)
    b2 = b if b.ndim > 1 else b[:, None]                        # (k,) -> (k, 1)
    dy2 = dy
    if b.ndim == 1:
        dy2 = dy2[..., None]                                    # (..., n) -> (..., n, 1)
    if a.ndim == 1:
        dy2 = dy2[..., None, :]                                 # (..., m) -> (..., 1, m)
    da = db = None
    if need_a:
        da = unbroadcast(dy2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)  # (.., m, k)
    if need_b:
        db = unbroadcast(np.swapaxes(a2, -1, -2) @ dy2, b2.shape).reshape(b.shape)  # (.., k, n)
    return da, db
