"""``pad`` on Tensors, PyTorch's convention: a flat ``(before, after)`` list, last axis first."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from .._validate import _is_int, check_choice
from ..autograd.tensor import Tensor, as_tensor, record
from ..ops import pad as pad_ops


def _pairs(pad: Sequence[int], shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """``(l, r, t, b) -> ((t, b), (l, r))``: per-axis pairs in axis order for the last axes."""
    if isinstance(pad, (str, bytes)) or not isinstance(pad, Sequence) or not all(
            _is_int(p) for p in pad):
        raise TypeError(
            f"pad must be a sequence of ints, (before, after) pairs with the last axis first, "
            f"received {pad!r}."
        )
    if len(pad) % 2:
        raise ValueError(
            f"pad must hold (before, after) pairs, an even number of ints, received {len(pad)}: "
            f"{tuple(pad)}."
        )
    if len(pad) > 2 * len(shape):
        raise ValueError(
            f"pad {tuple(pad)} pads {len(pad) // 2} axes but the input has only {len(shape)} "
            f"(shape {shape})."
        )
    return tuple((int(pad[i]), int(pad[i + 1])) for i in range(len(pad) - 2, -1, -2))


def pad(x, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad (or, with negative sizes, crop) the last ``len(pad) // 2`` axes of ``x``.

    ``pad = (left, right)`` pads the last axis, ``(left, right, top, bottom)`` the last two, and
    so on: pairs run from the LAST axis backwards, as in ``torch.nn.functional.pad``. The
    gradient of every border pixel flows back to the input pixel it copies.

    Args:
        x: input of any shape; Tensor or ndarray.
        pad: ``(before, after)`` pairs, last axis first; a negative size crops that side.
        mode: ``"constant"`` (fill with ``value``), ``"reflect"`` (mirror without repeating the
            edge, needs ``pad < size``), ``"replicate"`` (repeat the edge) or ``"circular"``
            (wrap around, needs ``pad <= size``).
        value: the fill of ``"constant"`` mode (default 0); other modes take none.

    Shape:
        ``(*, n) -> (*, before + n + after)`` for each padded axis.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.pad(np.array([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect").data
        array([[3., 2., 1., 2., 3., 2.]])
    """
    x = as_tensor(x)
    pairs = _pairs(pad, x.shape)
    check_choice(mode, pad_ops.PAD_MODES, "pad mode")
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"pad value must be a real number, received {value!r}.")
    if mode != "constant" and value not in (None, 0):
        raise ValueError(f"pad mode {mode!r} takes no fill value, received value={value!r}.")
    sizes = x.shape[x.ndim - len(pairs):]
    for n, (pb, pe) in zip(sizes, pairs):
        if max(-pb, 0) + max(-pe, 0) > n:
            raise ValueError(
                f"pad {tuple(pad)} crops {max(-pb, 0) + max(-pe, 0)} entries from an axis of size "
                f"{n} (input shape {x.shape})."
            )
        if mode != "constant" and n == 0 and max(pb, pe) > 0:
            raise ValueError(f"{mode} padding needs a non-empty axis, received input shape "
                             f"{x.shape}.")
    grow = tuple((max(pb, 0), max(pe, 0)) for pb, pe in pairs)
    # Circular padding wraps around what is left after cropping (as PyTorch); the other modes
    # pad the whole input, then crop (the two orders agree for constant and replicate).
    crop_first = mode == "circular"
    cropping = any(pb < 0 or pe < 0 for pb, pe in pairs)
    padded = tuple(n if crop_first else n + gb + ge for n, (gb, ge) in zip(sizes, grow))
    crop = (Ellipsis,) + tuple(slice(max(-pb, 0), m - max(-pe, 0))
                               for m, (pb, pe) in zip(padded, pairs))
    data = x.data[crop] if crop_first else x.data
    if mode != "constant":
        try:
            pad_ops.check_pad_fits(data.shape[x.ndim - len(pairs):], grow, mode)
        except ValueError as error:
            if not (crop_first and cropping):
                raise
            raise ValueError(f"{str(error)[:-1]} left after cropping (input shape {x.shape}).") \
                from None
    y, cache = pad_ops.pad_forward(data, grow, mode, 0 if value is None else value)
    y = y if crop_first else y[crop]
    if np.may_share_memory(y, x.data):
        y = y.copy()                     # a result never aliases the input, as in PyTorch

    def backward(dy: np.ndarray):
        if not cropping:
            return (pad_ops.pad_backward(dy, cache),)
        if crop_first:
            dx = np.zeros(x.shape, dtype=dy.dtype)
            dx[crop] = pad_ops.pad_backward(dy, cache)
            return (dx,)
        dpadded = np.zeros(x.shape[:x.ndim - len(pairs)] + padded, dtype=dy.dtype)
        dpadded[crop] = dy
        return (pad_ops.pad_backward(dpadded, cache),)

    return record(y, (x,), backward)
