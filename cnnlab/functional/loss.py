"""Losses on Tensors: target checks, then ``ops.loss`` with the backward step recorded.

Class-index targets may be an integer ndarray, a list or an integer Tensor. Scores are
``(N, C)``, ``(N, C, d1, ...)`` (per-position classes) or one unbatched sample ``(C,)``.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._validate import _is_int, check_choice, check_float_array, check_probability
from ..autograd.tensor import Tensor, as_tensor, needs_grad, record
from ..ops import loss as loss_ops

REDUCTIONS = loss_ops.REDUCTIONS


def _reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """PyTorch's deprecated ``size_average``/``reduce`` pair, mapped onto ``reduction`` (warned)."""
    if size_average is None and reduce is None:
        return check_choice(reduction, REDUCTIONS, "reduction")
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    legacy = "none" if not reduce else "mean" if size_average else "sum"
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{legacy}' instead.", UserWarning, stacklevel=3)
    return legacy


def _scores(input, where: str) -> tuple[Tensor, bool]:
    """The scores as a batched ``(N, C, *d)`` Tensor, and whether a ``(C,)`` sample was given."""
    z = as_tensor(input)
    check_float_array(z.data, f"{where} input")
    if z.ndim == 0:
        raise ValueError(
            f"{where} expected input of shape (N, C), (N, C, d1, ...) or (C,), received a scalar."
        )
    if z.shape[1 if z.ndim > 1 else 0] == 0:
        raise ValueError(f"{where} expected at least one class, received input of shape "
                         f"{z.shape}.")
    if z.ndim == 1:
        return z.reshape((1, *z.shape)), True
    return z, False


def _class_weight(weight, classes: int, dtype: np.dtype, where: str) -> np.ndarray | None:
    """``weight`` as a ``(C,)`` array of the scores' dtype (a constant: it gets no gradient)."""
    if weight is None:
        return None
    w = np.asarray(weight.data if isinstance(weight, Tensor) else weight)
    if w.shape != (classes,):
        raise ValueError(
            f"{where} weight must hold one value per class, shape ({classes},), received shape "
            f"{w.shape}."
        )
    if not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise TypeError(f"{where} weight must be numeric, received dtype {w.dtype}.")
    return w.astype(dtype, copy=False)


def _target_array(target) -> np.ndarray:
    return np.asarray(target.data if isinstance(target, Tensor) else target)


def _class_targets(t: np.ndarray, z: Tensor, unbatched: bool, ignore_index: int,
                   where: str) -> np.ndarray:
    """Check class indices against the scores ``z (N, C, *d)``; returns them as ``(N, *d)``."""
    if not _is_int(ignore_index):
        raise TypeError(f"{where} ignore_index must be an int, received {ignore_index!r}.")
    expected = () if unbatched else (z.shape[0], *z.shape[2:])
    shown = z.shape[1:] if unbatched else z.shape
    if t.dtype == np.bool_ or not np.issubdtype(t.dtype, np.integer):
        raise TypeError(
            f"{where} expected integer class indices as target, received dtype {t.dtype} with "
            f"shape {t.shape}."
        )
    if t.shape != expected:
        raise ValueError(
            f"{where} expected target of shape {expected} for input of shape {shown}, received "
            f"{t.shape}."
        )
    classes = z.shape[1]
    bad = (t != ignore_index) & ((t < 0) | (t >= classes))
    if bad.any():
        raise ValueError(
            f"{where} target holds class index {t[bad].flat[0]}, out of range for {classes} "
            f"classes (expected 0 to {classes - 1}, or ignore_index={ignore_index})."
        )
    return t.reshape((1,)) if unbatched else t


def cross_entropy(input, target, weight=None, size_average: bool | None = None,
                  ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of raw scores (logits) against class indices or class probabilities.

    Fused with log-softmax and stable for logits of ±1000: per position
    ``ℓ = (1 − ε) w_t (logsumexp(z) − z_t) + ε/C Σ_c w_c (logsumexp(z) − z_c)``, and the
    gradient is ``(softmax(z) − onehot(t)) / N`` in the plain case (PyTorch's exact definitions).

    Args:
        input: logits ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``; Tensor or ndarray.
        target: class indices ``(N,)``, ``(N, d1, ...)`` or ``()`` (int ndarray, list or Tensor),
            or class probabilities with the shape of ``input`` (floats; they may require grad).
        weight: optional per-class weights ``(C,)`` (a constant, no gradient).
        size_average, reduce: PyTorch's deprecated spellings of ``reduction`` (warned).
        ignore_index: a target value that contributes neither loss nor gradient, and is not
            counted by ``"mean"`` (class-index targets only).
        reduction: ``"mean"`` (divide by the summed weights of the counted targets), ``"sum"``
            or ``"none"``. A mean over no counted target is NaN, as in PyTorch.
        label_smoothing: ``ε`` in ``[0, 1]``: the target becomes ``(1 − ε)·onehot + ε/C``.

    Shape:
        ``input (N, C, *d)``, ``target (N, *d)`` -> ``()``, or ``(N, *d)`` for ``"none"``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> round(F.cross_entropy(np.zeros((2, 4)), [0, 3]).item(), 6)      # log 4
        1.386294
    """
    reduction = _reduction(size_average, reduce, reduction)
    z, unbatched = _scores(input, "cross_entropy")
    eps = check_probability(label_smoothing, "label_smoothing")
    w = _class_weight(weight, z.shape[1], z.dtype, "cross_entropy")
    t = _target_array(target)
    if np.issubdtype(t.dtype, np.floating) and t.shape == z.shape[unbatched:]:
        return _soft_cross_entropy(z, target, t, unbatched, w, reduction, eps)
    t = _class_targets(t, z, unbatched, ignore_index, "cross_entropy")
    loss, cache = loss_ops.cross_entropy_forward(z.data, t, w, ignore_index, reduction, eps)
    out = record(loss, (z,), lambda dy: (loss_ops.cross_entropy_backward(dy, cache),))
    return out.reshape(()) if unbatched and reduction == "none" else out


def _soft_cross_entropy(z: Tensor, target, t: np.ndarray, unbatched: bool,
                        w: np.ndarray | None, reduction: str, eps: float) -> Tensor:
    """Probability targets: the target may be a Tensor that receives a gradient too."""
    y = target if isinstance(target, Tensor) else Tensor(t)
    if unbatched:
        y = y.reshape((1, *y.shape))
    need_dz, need_dy = needs_grad(z, y)
    loss, cache = loss_ops.soft_cross_entropy_forward(z.data, y.data.astype(z.dtype, copy=False),
                                                      w, reduction, eps, keep_log_probs=need_dy)
    out = record(loss, (z, y), lambda dl: loss_ops.soft_cross_entropy_backward(
        dl, cache, need_dz, need_dy))
    return out.reshape(()) if unbatched and reduction == "none" else out


def nll_loss(input, target, weight=None, size_average: bool | None = None,
             ignore_index: int = -100, reduce: bool | None = None,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (e.g. the output of ``log_softmax``).

    ``ℓ = −w_t · input[t]`` per position; ``nll_loss(log_softmax(z, 1), t)`` equals
    ``cross_entropy(z, t)`` (which is faster and stabler: prefer it for logits).

    Args:
        input: log-probabilities ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``.
        target: class indices ``(N,)``, ``(N, d1, ...)`` or ``()``.
        weight, size_average, ignore_index, reduce, reduction: as in :func:`cross_entropy`.

    Shape:
        ``input (N, C, *d)``, ``target (N, *d)`` -> ``()``, or ``(N, *d)`` for ``"none"``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.nll_loss(np.log([[0.5, 0.5], [0.25, 0.75]]), [0, 1], reduction="none").data
        array([0.69314718, 0.28768207])
    """
    reduction = _reduction(size_average, reduce, reduction)
    x, unbatched = _scores(input, "nll_loss")
    w = _class_weight(weight, x.shape[1], x.dtype, "nll_loss")
    t = _class_targets(_target_array(target), x, unbatched, ignore_index, "nll_loss")
    loss, cache = loss_ops.nll_loss_forward(x.data, t, w, ignore_index, reduction)
    out = record(loss, (x,), lambda dy: (loss_ops.nll_loss_backward(dy, cache),))
    return out.reshape(()) if unbatched and reduction == "none" else out


def mse_loss(input, target, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean") -> Tensor:
    """Mean squared error ``mean((input − target)²)``; both sides get gradients if they need them.

    Args:
        input: predictions of any shape; Tensor or ndarray.
        target: values of the same shape (a shape mismatch is an error, not a broadcast).
        size_average, reduce: PyTorch's deprecated spellings of ``reduction`` (warned).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        ``(*), (*) -> ()``, or ``(*)`` for ``"none"``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.mse_loss(np.array([1.0, 2.0]), np.array([1.0, 4.0])).item()
        2.0
    """
    reduction = _reduction(size_average, reduce, reduction)
    x, y = as_tensor(input), as_tensor(target)
    check_float_array(x.data, "mse_loss input")
    if x.shape != y.shape:
        raise ValueError(
            f"mse_loss expected target of the input's shape {x.shape}, received {y.shape} "
            f"(cnnlab does not broadcast them)."
        )
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise TypeError(f"mse_loss target must be numeric, received dtype {y.dtype}.")
    need = needs_grad(x, y)
    loss, cache = loss_ops.mse_loss_forward(x.data, y.data.astype(x.dtype, copy=False), reduction)
    return record(loss, (x, y), lambda dy: loss_ops.mse_loss_backward(dy, cache, *need))

