"""Finite-difference gradient check in float64."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .grad_mode import no_grad
from .tensor import Tensor


@dataclass
class GradcheckResult:
    """Outcome of :func:`gradcheck`; truthy when every gradient matched."""

    ok: bool
    max_abs_error: float        # worst |analytic - numeric| over all inputs
    worst_input: int            # index of the input holding the worst entry
    worst_index: tuple[int, ...]
    analytic: float             # the two values at the worst entry
    numeric: float

    def __bool__(self) -> bool:
        return bool(self.ok)

    def __str__(self) -> str:
        verdict = "gradients match" if self.ok else "GRADIENT MISMATCH"
        return (f"{verdict}: worst |analytic - numeric| = {self.max_abs_error:.3g} at input "
                f"{self.worst_input}, index {self.worst_index} (analytic {self.analytic:.8g}, "
                f"numeric {self.numeric:.8g})")


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor | np.ndarray], *,
              eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4,
              seed: int = 0) -> GradcheckResult:
    """Compare ``fn``'s backward pass with central differences ``(f(x+ε) - f(x-ε)) / 2ε``.

    Inputs are converted to float64 tensors that require gradients; the scalar checked is
    ``Σ fn(*inputs) · R`` for a fixed random ``R``, so every output entry is tested at once.
    Integer and bool arrays (e.g. class targets, masks) are passed through unchanged. The
    inputs given are never modified (they are copied).

    Returns a :class:`GradcheckResult`, true when ``|analytic - numeric| <= atol + rtol*|numeric|``
    everywhere; its ``str`` names the worst entry.

    Example:
        >>> import numpy as np
        >>> from cnnlab.autograd import gradcheck
        >>> bool(gradcheck(lambda x: (x * x).sum(), [np.arange(3.0)]))
        True
    """
    tensors: list[Tensor | np.ndarray] = []
    for value in inputs:
        array = value.data if isinstance(value, Tensor) else np.asarray(value)
        if np.issubdtype(array.dtype, np.floating):      # a C-contiguous float64 copy
            array = np.array(array, dtype=np.float64, order="C", copy=True)
            tensors.append(Tensor(array, requires_grad=True))
        else:
            tensors.append(array)
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck needs fn to return a Tensor, received {type(out).__name__}.")
    weights = np.random.default_rng(seed).standard_normal(out.shape)

    def scalar() -> float:
        with no_grad():
            return float((np.asarray(fn(*tensors).data, dtype=np.float64) * weights).sum())

    if out.requires_grad:           # otherwise no input reaches the output: all gradients are 0
        out.backward(weights)
    worst = GradcheckResult(True, 0.0, -1, (), 0.0, 0.0)
    worst_ratio = -1.0
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            continue
        analytic = t.grad if t.grad is not None else np.zeros_like(t.data)
        flat = t.data.reshape(-1)          # a view (t.data is C-contiguous): perturbs t.data
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = scalar()
            flat[j] = original - eps
            minus = scalar()
            flat[j] = original
            numeric = (plus - minus) / (2 * eps)
            a = float(analytic.reshape(-1)[j])
            error = abs(a - numeric)
            ratio = error / (atol + rtol * abs(numeric))
            if not np.isfinite(ratio):      # NaN or inf on either side is a failure
                ratio = np.inf
            if ratio > worst_ratio:
                worst_ratio = ratio
                worst = GradcheckResult(bool(ratio <= 1.0), float(error), i,
                                        tuple(int(k) for k in np.unravel_index(j, t.shape)),
                                        a, float(numeric))
    worst.ok = bool(worst_ratio <= 1.0)
    return worst
