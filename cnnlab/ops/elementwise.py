"""Gradients of broadcasting arithmetic and reductions.

NumPy broadcasting repeats an operand along new or size-1 axes; the gradient of a repetition is
a sum, so ``unbroadcast`` sums ``grad`` back down to the operand's shape.
"""

from __future__ import annotations

import numpy as np


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def normalize_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a {ndim}-D tensor.")
    return tuple(a % max(ndim, 1) for a in axes)


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
