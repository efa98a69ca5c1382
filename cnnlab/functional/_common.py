"""Input handling shared by the op families of ``cnnlab.functional``."""

from __future__ import annotations

from ..autograd.tensor import Tensor


def batched(x: Tensor, nd: int, where: str) -> tuple[Tensor, bool]:
    """Accept ``(N, C, *S)`` or one unbatched sample ``(C, *S)`` (then add N = 1)."""
    if x.ndim == nd + 1:
        return x.reshape((1, *x.shape)), True
    if x.ndim != nd + 2:
        raise ValueError(
            f"{where} expected a {nd + 2}-D input (N, C, {', '.join('DHW'[3 - nd:])}) or "
            f"{nd + 1}-D unbatched input, received shape {x.shape}."
        )
    return x, False
