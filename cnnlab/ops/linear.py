"""Fully connected (affine) layer, forward and backward: ``Y = X Wᵀ + b``.

Any leading axes of ``X (..., in)`` are batch axes, as in PyTorch: they are flattened into one
matrix ``X (M, in)`` with ``M = prod(...)`` so that each pass is a single GEMM.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import parallel


class LinearCache(NamedTuple):
    x: np.ndarray               # (M, in): the input as a matrix (a view, no copy)
    w: np.ndarray               # (out, in)
    x_shape: tuple[int, ...]    # (..., in): the input's own shape, for dX


def linear_forward(x: np.ndarray, w: np.ndarray,
                   b: np.ndarray | None) -> tuple[np.ndarray, LinearCache]:
    """Affine map of the last axis: ``Y[..., o] = b[o] + Σ_i X[..., i] · W[o, i]``.

    Shapes: ``x (..., in)``, ``w (out, in)``, ``b (out,)`` -> ``(..., out)``.
    """
    lead, n_in = x.shape[:-1], x.shape[-1]
    x2 = x.reshape(math.prod(lead), n_in)                          # (M, in)
    y = parallel.matmul(x2, w.T)                                   # (M, in) @ (in, out)
    if b is not None:
        y += b
    return y.reshape(*lead, w.shape[0]), LinearCache(x2, w, x.shape)   # (..., out)


def linear_backward(dy: np.ndarray, cache: LinearCache, need_dx: bool = True,
                    need_dw: bool = True, need_db: bool = True):
    """Gradients of :func:`linear_forward`, on the flattened ``dY (M, out)``:

    - ``dX = dY W``       ``(M, out) @ (out, in)``, reshaped back to ``(..., in)``
    - ``dW = dYᵀ X``      ``(out, M) @ (M, in)``: the sum over every leading axis in one GEMM
    - ``db = Σ_m dY[m]``  ``(out,)``

    Returns ``(dx, dw, db)``; each is ``None`` unless asked for.
    """
    dy2 = dy.reshape(cache.x.shape[0], cache.w.shape[0])          # (M, out)
    dx = parallel.matmul(dy2, cache.w).reshape(cache.x_shape) if need_dx else None
    dw = parallel.matmul(dy2.T, cache.x) if need_dw else None      # (out, in)
    db = dy2.sum(axis=0) if need_db else None                      # (out,)
    return dx, dw, db
