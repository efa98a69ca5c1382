"""Finite-difference gradient check in float64."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

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
        return self.ok

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
    Integer arrays (e.g. class targets) are passed through unchanged.

    Returns a :class:`GradcheckResult`, true when ``|analytic - numeric| <= atol + rtol*|numeric|``
    everywhere; its ``str`` names the worst entry.

    Example:
        >>> import numpy as np
        >>> from cnnlab.autograd import gradcheck
        >>> bool(gradcheck(lambda x: (x * x).sum(), [np.arange(3.0)]))
        True
    """
    tensors = []
    for value in inputs:
        array = value.data if isinstance(value, Tensor) else np.asarray(value)
        if np.issubdtype(array.dtype, np.floating):
            tensors.append(Tensor(array.astype(np.float64), requires_grad=True))
        else:
            tensors.append(array)
    out = fn(*tensors)
    weights = np.random.default_rng(seed).standard_normal(out.shape)

    def scalar() -> float:
        return float((fn(*tensors).data * weights).sum())

    out.backward(weights)
    worst = GradcheckResult(True, 0.0, -1, (), 0.0, 0.0)
    worst_ratio = -1.0
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            continue
        analytic = t.grad if t.grad is not None else np.zeros_like(t.data)
        flat = t.data.reshape(-1)          # a view: perturbing it perturbs t.data
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = scalar()
            flat[j] = original - eps
            minus = scalar()
            flat[j] = original
            numeric = (plus - minus) / (2 * eps)
            a = analytic.reshape(-1)[j]
            error = abs(a - numeric)
            ratio = error / (atol + rtol * abs(numeric))
            if ratio > worst_ratio:
                worst_ratio = ratio
                worst = GradcheckResult(ratio <= 1.0, error, i,
                                        tuple(int(k) for k in np.unravel_index(j, t.shape)),
                                        float(a), float(numeric))
    worst.ok = worst_ratio <= 1.0
    return worst
