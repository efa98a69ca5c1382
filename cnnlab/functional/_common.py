"""Input handling shared by the op families of ``cnnlab.functional``."""

from __future__ import annotations

from .._validate import check_float_array
from ..autograd.tensor import Tensor, as_tensor


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


def layer_operands(x, w, b, where: str) -> tuple[Tensor, Tensor, Tensor | None]:
    """Tensors for an input and its weight and bias, all floating point.

    The weight sets the precision, as a Keras layer's dtype does: an input of another float
    dtype (say float64 images into a float32 model) is converted to it, the conversion recorded
    so that its gradient comes back in the input's own dtype.
    """
    x, w = as_tensor(x), as_tensor(w)
    b = None if b is None else as_tensor(b)
    check_float_array(x.data, f"{where} input")
    check_float_array(w.data, f"{where} weight")
    if b is not None:
        check_float_array(b.data, f"{where} bias")
        if b.dtype != w.dtype:
            b = b.astype(w.dtype)
    if x.dtype != w.dtype:
        x = x.astype(w.dtype)
    return x, w, b
