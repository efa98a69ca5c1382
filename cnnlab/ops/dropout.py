"""Inverted dropout, forward and backward.

During training each entry is kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``, so
the expected output equals the input and evaluation needs no rescaling (the identity).
"""

from __future__ import annotations

import numpy as np


def dropout_forward(x: np.ndarray, p: float, generator: np.random.Generator,
                    mask_shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``Y = X · M / (1 - p)`` with ``M ~ Bernoulli(1 - p)`` drawn from ``generator``.

    ``M`` has ``mask_shape`` (by default ``x.shape``: one draw per entry) and broadcasts over
    ``x``: channel dropout draws one value per (sample, channel), ``mask_shape = (N, C, 1, 1)``
    for ``(N, C, H, W)``, and so zeroes whole feature maps. ``p = 1`` drops everything
    (``Y = 0``). The returned mask already holds the scale (``M / (1 - p)``, in ``x``'s dtype),
    so the backward pass is one multiplication.

    Shapes: ``x (*)`` -> ``y (*)``, ``mask mask_shape``.
    """
    mask_shape = x.shape if mask_shape is None else mask_shape
    if p >= 1.0:
        return np.zeros_like(x), np.zeros(mask_shape, x.dtype)
    draw_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    mask = generator.random(mask_shape, dtype=draw_dtype)          # U[0, 1)
    np.greater_equal(mask, p, out=mask)                            # keep with probability 1 - p
    mask = mask.astype(x.dtype, copy=False)
    mask *= x.dtype.type(1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``dX = dY · M / (1 - p)``: the same kept entries, the same scale (``M`` broadcasts)."""
    return dy * mask
