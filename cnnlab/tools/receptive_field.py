"""Receptive fields: which input pixels each layer's outputs see, by the standard recurrence.

Per spatial axis, a layer with kernel ``k``, stride ``s``, dilation ``d`` and ``p`` pixels of
padding before the input maps the field of its input (``size r``, ``jump j`` = the input-pixel
distance between neighbouring features, ``start`` = the input coordinate of the first
feature's centre) to::

    k_eff = d·(k - 1) + 1
    r_out = r_in + (k_eff - 1) · j_in
    j_out = j_in · s
    start_out = start_in + ((k_eff - 1) / 2 - p) · j_in

The image itself is ``r = 1, j = 1, start = 0`` (pixel centres at 0, 1, 2, ...). Layers that act
on each value alone (ReLU, BatchNorm, dropout) keep the field; flatten, linear and global
pooling see the whole input.

The lecture's point, in numbers: two stacked 3×3 convolutions see 5×5 pixels, as one 5×5 conv
does, with 2·9 = 18 weights per channel pair instead of 25 (and a non-linearity in between):

    >>> from cnnlab import nn
    >>> two = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Conv2d(1, 1, 3))
    >>> [row.size for row in receptive_field(two, (1, 9, 9))]
    [(3, 3), (3, 3), (5, 5)]
    >>> sum(p.size for p in two.parameters() if p.ndim == 4), nn.Conv2d(1, 1, 5).weight.size
    (18, 25)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..nn import Module


@dataclass(frozen=True)
class Field:
    """The receptive field of one layer's output features, per spatial axis.

    Attributes:
        size: how many input pixels one output feature sees (``None``: the whole input).
        jump: input pixels between neighbouring output features.
        start: input coordinate of the centre of the first feature's field (can be negative
            or fractional: padding puts it outside the image, even kernels between pixels).
    """

    size: tuple[int, ...] | None
    jump: tuple[float, ...] | None
    start: tuple[float, ...] | None

    @property
    def whole(self) -> bool:
        return self.size is None


IMAGE = Field((1,), (1,), (0.0,))


def image_field(nd: int) -> Field:
    """The input image: every pixel sees itself."""
    return Field((1,) * nd, (1,) * nd, (0.0,) * nd)


def propagate(field: Field, kernel: Sequence[int], stride: Sequence[int],
              pads_before: Sequence[int], dilation: Sequence[int]) -> Field:
    """One sliding-window layer (convolution or pooling): the recurrence above, per axis."""
    if field.whole:
        return field
    size, jump, start = [], [], []
    for r, j, st, k, s, p, d in zip(field.size, field.jump, field.start, kernel, stride,
                                    pads_before, dilation):
        span = d * (k - 1) + 1
        size.append(int(r + (span - 1) * j))
        jump.append(j * s)
        start.append(st + ((span - 1) / 2 - p) * j)
    return Field(tuple(size), tuple(_tidy(v) for v in jump), tuple(_tidy(v) for v in start))


def whole_input() -> Field:
    """Every output sees the whole input (flatten, linear, global pooling)."""
    return Field(None, None, None)


def _tidy(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def format_field(field: Field) -> str:
    """``"5×5 /2"`` (size, then jump when it is not 1), or ``"all"``."""
    if field.whole:
        return "all"
    size = "×".join(str(v) for v in field.size)
    jumps = set(field.jump)
    jump = "" if jumps == {1} else " /" + ("×".join(str(v) for v in field.jump)
                                          if len(jumps) > 1 else str(field.jump[0]))
    return size + jump


@dataclass(frozen=True)
class FieldRow:
    """One executed leaf layer and the receptive field of its output."""

    name: str
    layer: str
    size: tuple[int, ...] | None
    jump: tuple[float, ...] | None
    start: tuple[float, ...] | None


class FieldTable(list):
    """The :class:`FieldRow` list that :func:`receptive_field` returns; a notebook shows it as a
    table (size, jump and start per layer)."""

    def _repr_html_(self) -> str:
        from .._display import table

        def axes(values, digits: bool = False) -> str:
            if values is None:
                return "all"
            return "×".join(f"{v:g}" if digits else str(v) for v in values)

        rows = [(r.name, r.layer, axes(r.size), axes(r.jump), axes(r.start, digits=True))
                for r in self]
        return table(("Name", "Layer", "Field size", "Jump", "Start (centre of the first)"),
                     rows, right=(False, False, True, True, True),
                     caption="Receptive field of each layer's outputs, in input pixels")


def receptive_field(model: Module, input_shape: Sequence[int]) -> list[FieldRow]:
    """Size, jump and start of every leaf layer's receptive field (one forward pass of zeros).

    Computed along the data flow: each layer starts from the field of the tensor it receives.
    A tensor made outside any layer (the sum of a residual block) gets the widest field among
    the earlier outputs of the same shape, which for ``x + f(x)`` is ``f``'s.

    Args:
        model: any :class:`~cnnlab.nn.Module`.
        input_shape: ``(C, H, W)`` or ``(N, C, H, W)`` (1-D and 3-D models: ``(C, L)`` ...).

    Returns:
        One :class:`FieldRow` per executed leaf layer, in execution order; ``size``, ``jump``
        and ``start`` are ``None`` where every output sees the whole input. The list is a
        :class:`FieldTable`, which a notebook shows as a table.
    """
    from .summary import summary

    table = summary(model, input_shape)
    return FieldTable(FieldRow(r.name, r.layer, r.field.size, r.field.jump, r.field.start)
                      for r in table.rows)
