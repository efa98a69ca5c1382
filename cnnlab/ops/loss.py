"""Losses: cross-entropy fused with log-softmax, negative log-likelihood and mean squared error.

Layout as in PyTorch: scores ``z (N, C, *d)`` with the classes on axis 1 (``*d`` is empty for a
plain ``(N, C)`` batch, or spatial axes for per-pixel classification), class-index targets
``t (N, *d)``. ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``.

Cross-entropy never builds a separate log-softmax: with ``s = z − max_c z`` and
``lse = log Σ_c e^{s_c}`` (at least ``log 1 = 0``), ``−log p_t = lse − s_t`` is exact and finite
for logits of ±1000, and the gradient is the famous ``softmax(z) − onehot(t)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import kernels, loss_compiled

REDUCTIONS = ("mean", "sum", "none")


def _log_softmax_parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``s = z − max`` (N, C, *d), ``lse = log Σ_c e^s`` (N, *d) and ``p = e^s / Σ_c e^s``."""
    s = z - z.max(axis=1, keepdims=True)                 # (N, C, *d), every entry <= 0
    p = np.exp(s)
    sum_exp = p.sum(axis=1, keepdims=True)               # (N, 1, *d), >= 1
    p /= sum_exp
    return s, np.log(sum_exp)[:, 0], p


def _per_class(weight: np.ndarray, ndim: int) -> np.ndarray:
    """``(C,) -> (C, 1, ..., 1)``: broadcasts along the class axis of an ``ndim``-D score array."""
    return weight.reshape((-1,) + (1,) * (ndim - 2))


def _reduce(loss: np.ndarray, reduction: str, total: np.ndarray) -> np.ndarray:
    """``none``: ``loss``; ``sum``: ``Σ loss``; ``mean``: ``Σ loss/total`` (0/0 is NaN, as torch)"""
    if reduction == "none":
        return loss
    summed = np.asarray(loss.sum())
    if reduction == "sum":
        return summed
    return summed / total if total != 0 else np.full((), np.nan, dtype=loss.dtype)


def _grad_scale(dy: np.ndarray, reduction: str, total: np.ndarray,
                shape: tuple[int, ...]) -> np.ndarray:
    """``d loss_reduced / d loss_i`` times ``dy``, broadcast to the unreduced loss ``shape``."""
    if reduction == "none":
        return dy
    if reduction == "mean":
        dy = dy / total if total != 0 else np.zeros_like(dy)
    return np.broadcast_to(dy, shape)


def _gather_targets(target: np.ndarray, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """``(valid, t)``: which positions count and a target safe to index with (ignored -> 0)."""
    valid = target != ignore_index                                    # (N, *d)
    return valid, np.where(valid, target, 0)


def _total_weight(valid: np.ndarray, w_t: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    """The mean's denominator: the number of counted positions, or the sum of their weights."""
    total = valid.sum() if w_t is None else np.where(valid, w_t, 0).sum()
    return np.asarray(total, dtype=dtype)


class CrossEntropyCache(NamedTuple):
    p: np.ndarray                  # softmax(z) along the class axis, (N, C, *d)
    t: np.ndarray                  # class index per position, ignored positions set to 0
    valid: np.ndarray              # t != ignore_index, (N, *d)
    weight: np.ndarray | None      # (C,)
    label_smoothing: float
    reduction: str
    total: np.ndarray              # the mean's denominator


def cross_entropy_forward(z: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None,
                          ignore_index: int = -100, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> tuple[np.ndarray, CrossEntropyCache]:
    """Cross-entropy of logits against class indices, PyTorch's exact definition.

    With ``ε = label_smoothing``, class weights ``w`` (all 1 when ``None``) and ``C`` classes,
    each position that is not ``ignore_index`` has the loss::

        ℓ = (1 − ε) · w_t · (lse − s_t)  +  ε/C · Σ_c w_c · (lse − s_c)

    (``lse − s_c = −log softmax(z)_c``); ignored positions have ``ℓ = 0``. ``"mean"`` divides
    ``Σ ℓ`` by ``Σ w_t`` over the counted positions (their number when unweighted).

    Shapes: ``z (N, C, *d)``, ``target (N, *d)`` integers in ``[0, C)`` or ``ignore_index``,
    ``weight (C,)`` -> ``()`` or, for ``"none"``, ``(N, *d)``.
    """
    if kernels.use_compiled() and loss_compiled.handles(z, weight):
        losses, p, t, valid, total = loss_compiled.cross_entropy_forward(
            z, target, ignore_index, label_smoothing)
        cache = CrossEntropyCache(p, t, valid, None, label_smoothing, reduction, total)
        return _reduce(losses, reduction, total), cache
    c = z.shape[1]
    s, lse, p = _log_softmax_parts(z)
    valid, t = _gather_targets(target, ignore_index)
    s_t = np.take_along_axis(s, t[:, None], axis=1)[:, 0]            # (N, *d)
    w_t = None if weight is None else weight[t]                       # (N, *d)
    loss = lse - s_t if w_t is None else w_t * (lse - s_t)            # −w_t log p_t
    if label_smoothing:
        if weight is None:
            smooth = c * lse - s.sum(axis=1)                          # −Σ_c log p_c
        else:
            smooth = weight.sum() * lse - (s * _per_class(weight, z.ndim)).sum(axis=1)
        loss = (1 - label_smoothing) * loss + (label_smoothing / c) * smooth
    loss = np.where(valid, loss, 0)                                   # (N, *d)
    total = _total_weight(valid, w_t, z.dtype)
    cache = CrossEntropyCache(p, t, valid, weight, label_smoothing, reduction, total)
    return _reduce(loss, reduction, total), cache


def cross_entropy_backward(dy: np.ndarray, cache: CrossEntropyCache) -> np.ndarray:
    """Gradient of :func:`cross_entropy_forward` with respect to the logits.

    ``dz = g · (Q · softmax(z) − q)`` with the smoothed, weighted target distribution
    ``q_c = (1 − ε) w_t [c = t] + ε/C · w_c`` and ``Q = Σ_c q_c``; ``g`` is ``dy`` per position
    (``"none"``), ``dy`` (``"sum"``) or ``dy / Σ w_t`` (``"mean"``), and 0 at ignored positions.
    Unweighted and unsmoothed this is ``(softmax(z) − onehot(t)) · dy / N``.
    """
    p, t, valid, weight, eps, reduction, total = cache
    if kernels.use_compiled() and loss_compiled.handles(p, weight):
        return loss_compiled.cross_entropy_backward(dy, p, t, valid, reduction, total, eps)
    c = p.shape[1]
    g = np.where(valid, _grad_scale(dy, reduction, total, valid.shape), 0)   # (N, *d)
    w_t = 1 if weight is None else weight[t]                                  # (N, *d)
    q_sum = (1 - eps) * w_t + eps * (1 if weight is None else weight.mean())  # Q, (N, *d)
    dz = p * (g * q_sum)[:, None]                                             # (N, C, *d)
    at_t = t[:, None]
    hit = np.take_along_axis(dz, at_t, axis=1) - ((1 - eps) * w_t * g)[:, None]
    np.put_along_axis(dz, at_t, hit, axis=1)                                  # − (1−ε) w_t g
    if eps:
        w_c = 1 if weight is None else _per_class(weight, p.ndim)
        dz -= (eps / c) * w_c * g[:, None]                                    # − ε/C w_c g
    return dz


class SoftCrossEntropyCache(NamedTuple):
    p: np.ndarray                  # softmax(z), (N, C, *d)
    q: np.ndarray                  # smoothed target probabilities times the class weights
    q_sum: np.ndarray              # Σ_c q_c, (N, *d)
    log_p: np.ndarray | None       # log softmax(z), kept only when the target needs a gradient
    weight: np.ndarray | None
    label_smoothing: float
    reduction: str
    total: np.ndarray


def soft_cross_entropy_forward(z: np.ndarray, target: np.ndarray,
                               weight: np.ndarray | None = None, reduction: str = "mean",
                               label_smoothing: float = 0.0, keep_log_probs: bool = False
                               ) -> tuple[np.ndarray, SoftCrossEntropyCache]:
    """Cross-entropy of logits against class probabilities (a target shaped like ``z``).

    ``y' = (1 − ε) y + ε/C``, ``q_c = w_c y'_c`` and ``ℓ = −Σ_c q_c log p_c = Q·lse − Σ_c q_c s_c``
    with ``Q = Σ_c q_c``. ``"mean"`` divides by the number of positions ``N · Π d``, not by the
    weights (PyTorch's rule for probability targets). ``keep_log_probs`` caches ``log p`` for
    the target's gradient.

    Shapes: ``z (N, C, *d)``, ``target (N, C, *d)``, ``weight (C,)`` -> ``()`` or ``(N, *d)``.
    """
    c = z.shape[1]
    s, lse, p = _log_softmax_parts(z)
    q = target * (1 - label_smoothing) + label_smoothing / c if label_smoothing else target
    if weight is not None:
        q = q * _per_class(weight, z.ndim)                            # (N, C, *d)
    q_sum = q.sum(axis=1)                                             # (N, *d)
    loss = q_sum * lse - (q * s).sum(axis=1)                          # (N, *d)
    log_p = s - lse[:, None] if keep_log_probs else None
    total = np.asarray(loss.size, dtype=z.dtype)
    cache = SoftCrossEntropyCache(p, q, q_sum, log_p, weight, label_smoothing, reduction, total)
    return _reduce(loss, reduction, total), cache


def soft_cross_entropy_backward(dy: np.ndarray, cache: SoftCrossEntropyCache,
                                need_dz: bool = True, need_dtarget: bool = False):
    """Gradients of :func:`soft_cross_entropy_forward`:

    - ``dz = g · (Q · softmax(z) − q)``
    - ``dy_c = −g · (1 − ε) · w_c · log p_c`` (needs ``keep_log_probs=True`` in the forward)

    Returns ``(dz, dtarget)``; each is ``None`` unless asked for.
    """
    p, q, q_sum, log_p, weight, eps, reduction, total = cache
    g = _grad_scale(dy, reduction, total, q_sum.shape)[:, None]           # (N, 1, *d)
    dz = g * (p * q_sum[:, None] - q) if need_dz else None
    dtarget = None
    if need_dtarget:
        w_c = 1 if weight is None else _per_class(weight, p.ndim)
        dtarget = -(1 - eps) * g * w_c * log_p
    return dz, dtarget


class NllCache(NamedTuple):
    shape: tuple[int, ...]
    dtype: np.dtype
    t: np.ndarray
    valid: np.ndarray
    weight: np.ndarray | None
    reduction: str
    total: np.ndarray


def nll_loss_forward(log_p: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None,
                     ignore_index: int = -100, reduction: str = "mean"
                     ) -> tuple[np.ndarray, NllCache]:
    """Negative log-likelihood of log-probabilities: ``ℓ = −w_t · log_p[t]`` per position.

    Ignored positions give 0; ``"mean"`` divides by ``Σ w_t`` over the counted positions.
    Shapes: ``log_p (N, C, *d)``, ``target (N, *d)``, ``weight (C,)`` -> ``()`` or ``(N, *d)``.
    """
    valid, t = _gather_targets(target, ignore_index)
    x_t = np.take_along_axis(log_p, t[:, None], axis=1)[:, 0]        # (N, *d)
    w_t = None if weight is None else weight[t]
    loss = np.where(valid, -x_t if w_t is None else -w_t * x_t, 0)
    total = _total_weight(valid, w_t, log_p.dtype)
    cache = NllCache(log_p.shape, log_p.dtype, t, valid, weight, reduction, total)
    return _reduce(loss, reduction, total), cache


def nll_loss_backward(dy: np.ndarray, cache: NllCache) -> np.ndarray:
    """``dx[n, t, ...] = −w_t · g`` at each counted position, 0 everywhere else."""
    shape, dtype, t, valid, weight, reduction, total = cache
    g = np.where(valid, _grad_scale(dy, reduction, total, valid.shape), 0)   # (N, *d)
    if weight is not None:
        g = g * weight[t]
    dx = np.zeros(shape, dtype=dtype)                                        # (N, C, *d)
    np.put_along_axis(dx, t[:, None], -g[:, None], axis=1)
    return dx


class MseCache(NamedTuple):
    diff: np.ndarray               # input − target
    reduction: str
    total: np.ndarray


def mse_loss_forward(x: np.ndarray, target: np.ndarray,
                     reduction: str = "mean") -> tuple[np.ndarray, MseCache]:
    """``ℓ = (x − target)²`` elementwise, then reduced (``"mean"`` divides by the element count).

    Shapes: ``x (*)``, ``target (*)`` -> ``()`` or, for ``"none"``, ``(*)``.
    """
    diff = x - target
    total = np.asarray(diff.size, dtype=diff.dtype)
    return _reduce(diff * diff, reduction, total), MseCache(diff, reduction, total)


def mse_loss_backward(dy: np.ndarray, cache: MseCache, need_dx: bool = True,
                      need_dtarget: bool = True):
    """``dx = 2 (x − target) · g`` and ``dtarget = −dx``; ``g`` is ``dy`` spread by the reduction.

    Returns ``(dx, dtarget)``; each is ``None`` unless asked for.
    """
    diff, reduction, total = cache
    d = 2 * diff * _grad_scale(dy, reduction, total, diff.shape)
    return (d if need_dx else None), (-d if need_dtarget else None)
