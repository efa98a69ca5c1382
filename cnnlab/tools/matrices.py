"""Matrices typed as text, as in the lecture notes: ``"1 0 -1; 2 0 -2; 1 0 -1"``.

Rows are split by ``;``, values by spaces or commas, channels by ``|``. A value may be a
fraction (``-1/9``). :func:`format_matrix` prints one back with aligned columns.

>>> parse_matrix("1 0 -1; 2, 0, -2")
array([[ 1.,  0., -1.],
       [ 2.,  0., -2.]])
>>> parse_channels("1 2; 3 4 | 5 6; 7 8").shape
(2, 2, 2)
>>> print(format_matrix(parse_matrix("1 -1/2; 10 0")))
 1  -0.5
10     0
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?(/\d+(\.\d*)?)?$")


def _number(text: str, where: str) -> float:
    if not _NUMBER.match(text):
        raise ValueError(f"{where}: expected a number, received {text!r}.")
    if "/" in text:
        numerator, denominator = text.split("/")
        if float(denominator) == 0:
            raise ValueError(f"{where}: division by zero in {text!r}.")
        return float(Fraction(numerator) / Fraction(denominator))
    return float(text)


def parse_matrix(text: str, name: str = "matrix") -> np.ndarray:
    """``"a b c; d e f"`` -> a float64 array ``(rows, columns)``; every row as long as the first."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name}: expected rows of numbers such as '1 0 -1; 2 0 -2', received "
                         f"{text!r}.")
    for row in text.split(";"):
        groups = [g.split() for g in row.split(",")]
        if len(groups) > 1 and any(len(g) > 1 for g in groups):
            raise ValueError(
                f"{name}: rows are separated by ';' (values by spaces or commas), but {text!r} "
                f"has commas between groups of values; write "
                f"{'; '.join(' '.join(g) for g in groups)!r} for {len(groups)} rows.")
    rows = [[_number(v, name) for v in re.split(r"[\s,]+", row.strip()) if v]
            for row in text.strip().strip(";").split(";")]
    if any(not row for row in rows):
        raise ValueError(f"{name}: an empty row in {text!r}.")
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        raise ValueError(f"{name}: every row needs the same number of values, received rows of "
                         f"{', '.join(str(len(row)) for row in rows)} in {text!r}.")
    return np.array(rows, dtype=np.float64)


def parse_channels(text: str, name: str = "matrix") -> np.ndarray:
    """``"ch0 | ch1 | ..."`` (each a matrix) -> ``(channels, rows, columns)``."""
    channels = [parse_matrix(part, name) for part in text.split("|")]
    if len({c.shape for c in channels}) > 1:
        raise ValueError(f"{name}: every channel needs the same shape, received "
                         f"{', '.join('×'.join(map(str, c.shape)) for c in channels)}.")
    return np.stack(channels)


def format_number(value: float) -> str:
    """A number as the notes write it: integers without a decimal point, others to 4 places."""
    value = float(value)
    if not math.isfinite(value):
        return {math.inf: "∞", -math.inf: "-∞"}.get(value, "nan")
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")


def format_matrix(matrix: np.ndarray, indent: str = "") -> str:
    """A 2-D array as right-aligned columns (each as wide as its widest value), one line a row."""
    cells = [[format_number(v) for v in row] for row in np.atleast_2d(matrix)]
    widths = [max(len(row[j]) for row in cells) for j in range(len(cells[0]))]
    return "\n".join(indent + "  ".join(c.rjust(w) for c, w in zip(row, widths))
                     for row in cells)
