"""ReLU and its gradient as one compiled loop each (numba): the activations of every CNN.

NumPy's ``maximum(x, 0)`` runs at about 0.7 ns a value here (its loop checks each value for
NaN on the way), the gradient ``dy · [y > 0]`` in two passes (the mask, then the product); one
loop each does the same arithmetic in one pass at memory speed (LeNet-5's first activation,
64×6×28×28: forward 0.22 -> 0.05 ms, backward 0.13 -> 0.06 ms on one core).

The results are NumPy's, bit for bit: ``y = x`` where ``x > 0`` or ``x`` is NaN, else ``+0``
(``maximum(-0.0, 0)`` is ``+0``); ``dx = dy · 1`` or ``dy · 0`` (so ``dy = ±inf`` or NaN where
``y = 0`` gives NaN, as the product with the mask does).
"""

from __future__ import annotations

import numpy as np

from . import parallel
from .kernels import FLOATS, jit


@jit
def _relu(x, y, start, stop):
    """``y[i] = max(x[i], 0)`` (NaN kept) for ``i`` in ``start .. stop-1``, flat arrays."""
    zero = y.dtype.type(0)
    src, dst = x[start:stop], y[start:stop]
    for i in range(np.uint64(stop - start)):     # (unsigned: no wrap-around checks)
        v = src[i]
        dst[i] = v if v > zero or v != v else zero


@jit
def _relu_grad(dy, y, dx, start, stop):
    """``dx[i] = dy[i] · [y[i] > 0]`` for ``i`` in ``start .. stop-1``, flat arrays."""
    zero, one = dx.dtype.type(0), dx.dtype.type(1)
    g, out, mask = dy[start:stop], dx[start:stop], y[start:stop]
    for i in range(np.uint64(stop - start)):
        out[i] = g[i] * (one if mask[i] > zero else zero)


def handles(*arrays: np.ndarray) -> bool:
    """Whether the loops compute this call: C-contiguous float32 or float64 arrays of one
    dtype (anything else keeps NumPy's loop)."""
    dtype = arrays[0].dtype
    return dtype in FLOATS and all(a.dtype == dtype and a.flags.c_contiguous for a in arrays)


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` of a C-contiguous float array, as a new array."""
    y = np.empty_like(x)
    parallel.run_ranges(_relu, x.size, x.reshape(-1), y.reshape(-1), per_block=1 << 16,
                        size=2 * x.size)
    return y


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dy · [y > 0]`` of C-contiguous float arrays of one shape, as a new array."""
    dx = np.empty_like(dy)
    parallel.run_ranges(_relu_grad, dy.size, dy.reshape(-1), y.reshape(-1), dx.reshape(-1),
                        per_block=1 << 16, size=3 * dy.size)
    return dx
