"""``nn.utils`` as in torch: gradient clipping for the parameters a model trains.

>>> import numpy as np
>>> from cnnlab import nn
>>> p = nn.Parameter(np.zeros(2, np.float32)); p.grad = np.array([3.0, 4.0], np.float32)
>>> nn.utils.clip_grad_norm_([p], max_norm=1.0).item()
5.0
>>> p.grad.round(4)
array([0.6, 0.8], dtype=float32)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np

from ..autograd.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Tensor | Iterable[Tensor], name: str) -> list[np.ndarray]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = []
    for p in parameters:
        if not isinstance(p, Tensor):
            raise TypeError(f"{name} expects Tensors (e.g. model.parameters()), received "
                            f"{type(p).__name__}.")
        if p.grad is not None:
            grads.append(p.grad)
    return grads


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, received {value!r}.")
    return float(value)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> Tensor:
    """Scale all gradients together so that their joint ``norm_type`` norm is at most
    ``max_norm``; return the norm before clipping (a 0-d Tensor), as torch does.

    The joint norm is the norm of the per-parameter norms, ``‖(‖g₁‖, ‖g₂‖, ...)‖_p`` (equal to
    the norm of all gradients concatenated), with ``p = inf`` the largest ``|g|``. Every
    gradient is multiplied in place by ``min(1, max_norm / (total + 1e-6))``. Parameters
    without a gradient are skipped.

    Args:
        parameters: a Tensor or an iterable of them (``model.parameters()``).
        max_norm: the largest norm allowed.
        norm_type: ``p`` of the p-norm (a float, ``inf``/``"inf"``, ``-inf``).
        error_if_nonfinite: raise ``RuntimeError`` when the total norm is nan or inf instead
            of scaling by it.
        foreach: accepted for torch compatibility (one code path here).
    """
    max_norm = _number(max_norm, "clip_grad_norm_: max_norm")
    norm_type = _number(float(norm_type) if isinstance(norm_type, str) and
                        norm_type.lstrip("+-") == "inf" else norm_type,
                        "clip_grad_norm_: norm_type")
    grads = _grads(parameters, "clip_grad_norm_")
    if not grads:
        return Tensor(np.zeros((), np.float32))
    dtype = np.result_type(*grads)
    norms = np.array([np.linalg.norm(g.ravel(), ord=norm_type) for g in grads], dtype=dtype)
    total = np.asarray(np.linalg.norm(norms, ord=norm_type), dtype=dtype)
    if error_if_nonfinite and not math.isfinite(float(total)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            f"non-finite, so it cannot be clipped. To disable this error and scale the "
            f"gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    coef = min(dtype.type(max_norm) / (total + dtype.type(1e-6)), dtype.type(1.0))
    for g in grads:
        np.multiply(g, coef, out=g, casting="unsafe")
    return Tensor(total)


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float,
                     foreach: bool | None = None) -> None:
    """Clip every gradient entry into ``[-clip_value, clip_value]``, in place."""
    clip_value = _number(clip_value, "clip_grad_value_: clip_value")
    for g in _grads(parameters, "clip_grad_value_"):
        np.clip(g, -clip_value, clip_value, out=g)
