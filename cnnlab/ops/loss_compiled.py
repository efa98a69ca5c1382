"""Cross-entropy of a batch of logits ``(N, C)`` against class indices as one compiled loop
each way (numba): the loss every classifier ends in.

NumPy's form (``ops.loss``) takes some twenty calls for a batch (the max, the shift, ``exp``,
the sums, the log, the gathers at the targets, the masks of ignored positions, the reduction),
each allocating its result: for LeNet-5's ``64×10`` scores the calls are the cost, not the
arithmetic. These loops make one pass over the scores forward and one backward, unweighted
(a class weight keeps NumPy's form), with label smoothing and ``ignore_index``.

The arithmetic is ``ops.loss``'s, term for term: ``s = z − max``, ``lse = log Σ e^s``,
``p = e^s / Σ e^s``, ``ℓ = (1 − ε)(lse − s_t) + ε/C (C·lse − Σ_c s_c)``, and
``dz = g·p − (1 − ε) g [c = t] − ε/C g``. The per-row losses are reduced by ``ops.loss``
itself, as on the NumPy path, so the two paths agree to float rounding.
"""

from __future__ import annotations

import numpy as np

from .kernels import FLOATS, jit


def handles(z: np.ndarray, weight: np.ndarray | None) -> bool:
    """Whether the loops compute this call: ``(N, C)`` C-contiguous float scores, no class
    weight."""
    return weight is None and z.ndim == 2 and z.dtype in FLOATS and z.flags.c_contiguous


@jit
def _forward(z, target, ignore_index, eps, p, t, valid, losses):
    """Softmax ``p`` row by row, the safe targets ``t`` (ignored -> 0), ``valid`` and each
    row's loss (0 where ignored); returns the number of counted rows."""
    n, c = z.shape
    kind = z.dtype.type
    keep, share = kind(1.0 - eps), kind(eps / c)
    counted = 0
    for i in range(n):
        top = z[i, 0]
        for k in range(1, c):
            top = max(top, z[i, k])
        sum_exp = kind(0)
        sum_s = kind(0)
        for k in range(c):
            s = z[i, k] - top
            e = np.exp(s)
            p[i, k] = e
            sum_exp += e
            sum_s += s
        for k in range(c):
            p[i, k] = p[i, k] / sum_exp
        counts = target[i] != ignore_index
        valid[i] = counts
        t[i] = target[i] if counts else 0
        loss = kind(0)
        if counts:
            lse = np.log(sum_exp)
            loss = lse - (z[i, t[i]] - top)
            if eps:
                loss = keep * loss + share * (kind(c) * lse - sum_s)
            counted += 1
        losses[i] = loss
    return counted


@jit
def _backward(p, t, valid, dy, divisor, eps, dz):
    """``dz[i] = g_i·p[i] − (1 − ε) g_i [c = t_i] − ε/C g_i`` with ``g_i = dy[i or 0] /
    divisor`` where the row counts, 0 where not."""
    n, c = p.shape
    kind = p.dtype.type
    keep, share = kind(1.0 - eps), kind(eps / c)
    each = dy.size > 1
    for i in range(n):
        g = dy[i if each else 0] / divisor if valid[i] else kind(0)
        for k in range(c):
            dz[i, k] = p[i, k] * g
        dz[i, t[i]] = dz[i, t[i]] - keep * g
        if eps:
            for k in range(c):
                dz[i, k] = dz[i, k] - share * g


def cross_entropy_forward(z: np.ndarray, target: np.ndarray, ignore_index: int, eps: float):
    """``(losses, p, t, valid, total)`` for ``ops.loss.cross_entropy_forward``: each row's
    loss, the softmax, the safe targets, which rows count, and the mean's denominator (their
    number)."""
    n = z.shape[0]
    p = np.empty_like(z)
    t = np.empty(n, dtype=np.intp)
    valid = np.empty(n, dtype=np.bool_)
    losses = np.empty(n, dtype=z.dtype)
    counted = _forward(z, target, ignore_index, eps, p, t, valid, losses)
    return losses, p, t, valid, np.asarray(counted, dtype=z.dtype)


def cross_entropy_backward(dy: np.ndarray, p: np.ndarray, t: np.ndarray, valid: np.ndarray,
                           reduction: str, total: np.ndarray, eps: float) -> np.ndarray:
    """dz of :func:`cross_entropy_forward`'s loss, given ``dy`` (a scalar, or per row for
    ``"none"``)."""
    divisor = total if reduction == "mean" and total != 0 else p.dtype.type(1)
    dz = np.empty_like(p)
    _backward(p, t, valid, np.ascontiguousarray(dy, dtype=p.dtype).reshape(-1),
              p.dtype.type(divisor), eps, dz)
    return dz
