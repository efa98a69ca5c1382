"""Argument checks and size bookkeeping shared by the model builders (errors in one voice)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .._validate import _is_int


def check_model_args(model: str, in_channels: int, num_classes: int, input_size: int) -> None:
    """The three arguments every builder takes must be positive ints."""
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                        ("input_size", input_size)):
        if not _is_int(value) or value <= 0:
            raise ValueError(f"{model}: {name} must be a positive int, received {value!r}.")


def check_channels(model: str, channels: Sequence[int],
                   count: int | None = None) -> tuple[int, ...]:
    """``channels`` as a tuple of positive ints; exactly ``count`` of them when given."""
    wanted = f"{count} positive ints" if count else "a non-empty sequence of positive ints"
    if (isinstance(channels, str) or not isinstance(channels, Sequence) or not channels
            or (count is not None and len(channels) != count)
            or not all(_is_int(c) and c > 0 for c in channels)):
        raise ValueError(f"{model}: channels must be {wanted}, received {channels!r}.")
    return tuple(int(c) for c in channels)


def fits(model: str, input_size: int, layer: str, size: int, rule: Callable[[int], int]) -> int:
    """``rule(size)`` (a size formula of ``ops.shapes``), or an error naming the layer that no
    longer fits the ``size × size`` map reaching it."""
    try:
        return rule(size)
    except ValueError as error:
        raise ValueError(
            f"{model}: input_size {input_size} is too small: layer {layer} receives a "
            f"{size}×{size} feature map and no longer fits ({str(error).rstrip('.')})."
        ) from None
