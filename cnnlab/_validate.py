"""Argument checks shared by every public entry point, so that errors speak in one voice.

Each check raises ``ValueError`` or ``TypeError`` with one sentence that names the argument,
what was expected and what was received. Inner code trusts normalised arguments.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator, Sequence

import numpy as np


def _is_int(value: object) -> bool:
    # (the plain int first: the ABC check costs a microsecond, and layers check their
    # arguments on every call)
    return type(value) is int or (isinstance(value, numbers.Integral)
                                  and not isinstance(value, bool))


def as_tuple(value: int | Sequence[int], nd: int, name: str) -> tuple[int, ...]:
    """``3 -> (3, 3)`` for ``nd=2``; a sequence must have exactly ``nd`` integers."""
    if type(value) is tuple and len(value) == nd and all(type(v) is int for v in value):
        return value                               # already normalised (a layer's own)
    if _is_int(value):
        return (int(value),) * nd
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) == nd and all(_is_int(v) for v in value):
            return tuple(int(v) for v in value)
    raise TypeError(
        f"{name} must be an int or a tuple of {nd} ints, received {value!r}."
    )


def check_positive(values: tuple[int, ...], name: str) -> tuple[int, ...]:
    if any(v <= 0 for v in values):
        raise ValueError(f"{name} must be positive, received {_fmt(values)}.")
    return values


def check_non_negative(values: tuple[int, ...], name: str) -> tuple[int, ...]:
    if any(v < 0 for v in values):
        raise ValueError(f"{name} must be non-negative, received {_fmt(values)}.")
    return values


def check_probability(p: float, name: str) -> float:
    if not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, received {p!r}.")
    return float(p)


def check_choice(value: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}, received {value!r}.")
    return value


def check_float_array(array: np.ndarray, name: str) -> None:
    if array.dtype.kind != "f":                    # float16/32/64/longdouble
        raise TypeError(
            f"{name} must hold floating-point numbers, received dtype {array.dtype}."
        )


def _fmt(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(values) == 1 else str(values)


def fmt_size(values: Sequence[int]) -> str:
    """``(3, 3) -> "3×3"``: how sizes read in messages and tables."""
    return "×".join(str(v) for v in values)


@contextlib.contextmanager
def located(where: str) -> Iterator[None]:
    """Prefix the ``ValueError``/``TypeError`` raised inside with ``where`` (a layer or op name)."""
    try:
        yield
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: {error}") from None
