"""Padding of the trailing spatial axes, with its gradient.

Modes (PyTorch's names): ``"constant"`` (``value`` everywhere outside), ``"reflect"`` (mirror
without repeating the edge: ``d c b | a b c d | c b a``), ``"replicate"`` (repeat the edge:
``a a | a b c d | d d``) and ``"circular"`` (wrap around: ``c d | a b c d | a b``).

Every mode is a gather ``y[i] = x[src(i)]`` along each padded axis, so the gradient is the matching
scatter-add ``dx[src(i)] += dy[i]``: the interior copies straight back and each border position
adds onto the input position it was read from.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import kernels, pad_compiled, parallel
from .shapes import Pairs

PAD_MODES = ("constant", "reflect", "replicate", "circular")
_NUMPY_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
               "circular": "wrap"}


class PadCache(NamedTuple):
    in_shape: tuple[int, ...]
    pads: Pairs
    mode: str


def check_pad_fits(in_sizes: tuple[int, ...], pads: Pairs, mode: str) -> None:
    """Reflect needs ``pad < n`` and circular ``pad <= n`` on every side (as in PyTorch)."""
    for n, (pb, pe) in zip(in_sizes, pads):
        if mode == "reflect" and max(pb, pe) >= n:
            raise ValueError(
                f"reflect padding must be smaller than the input size, received padding "
                f"({pb}, {pe}) for an axis of size {n}."
            )
        if mode == "circular" and max(pb, pe) > n:
            raise ValueError(
                f"circular padding must not exceed the input size, received padding "
                f"({pb}, {pe}) for an axis of size {n}."
            )


def pad_forward(x: np.ndarray, pads: Pairs, mode: str = "constant",
                value: float = 0.0) -> tuple[np.ndarray, PadCache]:
    """Pad the last ``len(pads)`` axes of ``x``: ``(..., n) -> (..., p_begin + n + p_end)``.

    ``pads`` holds one ``(before, after)`` pair per padded axis, in axis order.
    """
    cache = PadCache(x.shape, pads, mode)
    if not any(pb or pe for pb, pe in pads):
        return x, cache
    width = ((0, 0),) * (x.ndim - len(pads)) + tuple(pads)
    if mode == "constant" and kernels.use_compiled() and pad_compiled.handles(x, pads):
        return pad_compiled.pad(x, pads, value), cache
    if mode == "constant":                  # twice np.pad's speed: one fill, one copy
        y = np.full(tuple(n + pb + pe for n, (pb, pe) in zip(x.shape, width)), value,
                    dtype=x.dtype)
        parallel.copyto(y[tuple(slice(pb, pb + n) for n, (pb, _) in zip(x.shape, width))], x)
        return y, cache
    return np.pad(x, width, mode=_NUMPY_MODE[mode]), cache


def source_index(n: int, pb: int, pe: int, mode: str) -> np.ndarray:
    """For each padded position ``-pb .. n+pe-1``, the input position it copies (-1: constant)."""
    i = np.arange(-pb, n + pe)
    if mode == "reflect":
        return np.where(i < 0, -i, np.where(i >= n, 2 * (n - 1) - i, i))
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "circular":
        return i % n
    return np.where((i < 0) | (i >= n), -1, i)


def pad_backward(dy: np.ndarray, cache: PadCache) -> np.ndarray:
    """Scatter-add ``dy`` back onto the input: ``dx[src(i)] += dy[i]`` along each padded axis."""
    in_shape, pads, mode = cache
    if not any(pb or pe for pb, pe in pads):
        return dy
    lead = len(in_shape) - len(pads)
    dx = dy
    for axis, ((pb, pe), n) in enumerate(zip(pads, in_shape[lead:]), start=lead):
        if not (pb or pe):
            continue
        inner = [slice(None)] * dx.ndim
        inner[axis] = slice(pb, pb + n)
        out = dx[tuple(inner)].copy()
        if mode != "constant":
            src = source_index(n, pb, pe, mode)
            # One whole-slab add per border position (p_begin + p_end of them, not per pixel):
            # 0.7 ms for (64, 16, 30, 30) against 2.3 ms for a single np.add.at scatter.
            for j in [*range(pb), *range(pb + n, pb + n + pe)]:
                to = [slice(None)] * dx.ndim
                frm = [slice(None)] * dx.ndim
                to[axis], frm[axis] = src[j], j
                out[tuple(to)] += dx[tuple(frm)]
        dx = out
    return dx
