"""Activations and the softmax family: elementwise (or one-axis) maps and their gradients.

Each ``*_forward(x, ...) -> (y, cache)`` keeps only what its backward needs, usually the output
``y`` itself (which the graph holds anyway), so an activation costs no extra memory.

Stability: ``sigmoid`` only ever exponentiates ``-|x|``; ``softmax`` and ``log_softmax`` subtract
the row maximum first, so logits of ±1000 give exact, finite results and no overflow warning
(``exp`` of a very negative number underflows to 0, which is the correct answer).
"""

from __future__ import annotations

import numpy as np

from . import activation_compiled, kernels, parallel


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y = max(x, 0)``; the cache is ``y`` (``y > 0`` exactly where ``x > 0``). Large arrays
    are done in blocks on cnnlab's threads; with the compiled kernels, float arrays in one
    loop (``activation_compiled``, the same values)."""
    if kernels.use_compiled() and activation_compiled.handles(x):
        y = activation_compiled.relu(x)
        return y, y
    y = np.empty(x.shape, dtype=np.result_type(x, 0))
    parallel.split_map(lambda out, a: np.maximum(a, 0, out=out), y, x)
    return y, y


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dx = dy · [x > 0]``: the gradient at exactly 0 is 0, as in PyTorch.

    A multiply by the boolean mask (measured 12× faster than ``np.where`` on LeNet's maps), or
    with the compiled kernels one loop (``activation_compiled``, the same values).
    """
    if kernels.use_compiled() and activation_compiled.handles(dy, y):
        return activation_compiled.relu_backward(dy, y)
    dx = np.empty(dy.shape, dtype=np.result_type(dy, np.bool_))
    parallel.split_map(lambda out, g, a: np.multiply(g, a > 0, out=out), dx, dy, y)
    return dx


def leaky_relu_forward(x: np.ndarray, negative_slope: float = 0.01
                       ) -> tuple[np.ndarray, tuple[np.ndarray, float]]:
    """``y = x`` where ``x > 0``, else ``negative_slope · x``; the cache is the mask ``x > 0``."""
    positive = x > 0
    return np.where(positive, x, x * negative_slope), (positive, negative_slope)


def leaky_relu_backward(dy: np.ndarray, cache: tuple[np.ndarray, float]) -> np.ndarray:
    """``dx = dy`` where ``x > 0``, else ``negative_slope · dy`` (also at exactly 0, as PyTorch)."""
    positive, negative_slope = cache
    return np.where(positive, dy, dy * negative_slope)


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``σ(x) = 1 / (1 + e^{-x})``, evaluated as ``1/(1+e)`` or ``e/(1+e)`` with ``e = e^{-|x|}``.

    ``e <= 1`` always, so nothing overflows; the cache is ``y``.
    """
    e = np.exp(-np.abs(x))
    y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return y, y


def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dx = dy · σ(x) · (1 - σ(x)) = dy · y · (1 - y)``."""
    return dy * y * (1 - y)


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y = tanh(x)``; the cache is ``y``."""
    y = np.tanh(x)
    return y, y


def tanh_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dx = dy · (1 - tanh²(x)) = dy · (1 - y²)``."""
    return dy * (1 - y * y)


def _shifted(x: np.ndarray, axis: int) -> np.ndarray:
    """``x - max_axis(x)``: every entry ``<= 0`` (the largest is 0), so ``exp`` cannot overflow."""
    if x.size == 0:
        return x.copy()
    return x - x.max(axis=axis, keepdims=True)


def softmax_forward(x: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
    """``y_i = e^{x_i - m} / Σ_j e^{x_j - m}`` along ``axis``, with ``m = max_j x_j``.

    Subtracting ``m`` changes nothing mathematically and keeps every exponent ``<= 0``.
    Shapes: ``x (*)`` -> ``y (*)``; the cache is ``(y, axis)``.
    """
    e = np.exp(_shifted(x, axis))
    e /= e.sum(axis=axis, keepdims=True)
    return e, (e, axis)


def softmax_backward(dy: np.ndarray, cache: tuple[np.ndarray, int]) -> np.ndarray:
    """``dx = y ⊙ (dy − Σ_axis(dy ⊙ y))`` (the Jacobian ``diag(y) − y yᵀ`` applied to ``dy``)."""
    y, axis = cache
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax_forward(x: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
    """``y_i = x_i − logsumexp(x) = (x_i − m) − log Σ_j e^{x_j − m}`` along ``axis``.

    The sum is at least 1 (the maximum contributes ``e^0``), so the log is always finite.
    Shapes: ``x (*)`` -> ``y (*)``; the cache is ``(y, axis)``.
    """
    s = _shifted(x, axis)
    s -= np.log(np.exp(s).sum(axis=axis, keepdims=True))
    return s, (s, axis)


def log_softmax_backward(dy: np.ndarray, cache: tuple[np.ndarray, int]) -> np.ndarray:
    """``dx = dy − softmax(x) · Σ_axis dy = dy − e^{y} · Σ_axis dy``."""
    y, axis = cache
    return dy - np.exp(y) * dy.sum(axis=axis, keepdims=True)
