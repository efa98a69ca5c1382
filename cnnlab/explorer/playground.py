"""The convolution playground's requests: JSON in, ``cnnlab.tools.explain`` out.

The page sends matrices as the notes type them (``"1 2; 3 4"``, channels split by ``|``) and
the settings; the answer holds the padded input, the kernel, the output, the entry at the
window (its worked sum and the padded cells it reads), the output-size formula filled in, and
with ``check`` the wrong entries of the learner's answer with their correct sums.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ApiError

MAX_VALUES = 4096        # entries of a matrix typed into the playground


def _text(request: dict, key: str, required: bool = True) -> Any:
    value = request.get(key)
    if value is None:
        if required:
            raise ApiError(f"expected {key!r}: a matrix such as \"1 2; 3 4\".")
        return None
    if isinstance(value, str):
        if len(value) > 16 * MAX_VALUES:
            raise ApiError(f"{key}: at most {MAX_VALUES} values, received {len(value):,} "
                           f"characters.", 413)
        return value
    if isinstance(value, list):
        return value
    raise ApiError(f"{key}: expected a matrix as text or nested lists, received "
                   f"{type(value).__name__}.")


def _int_or_pair(request: dict, key: str, default: Any, minimum: int = 1) -> Any:
    value = request.get(key, default)
    if isinstance(value, list):
        value = tuple(value)
    items = value if isinstance(value, tuple) else (value,)
    if (len(items) not in (1, 2) or not all(isinstance(v, int) and not isinstance(v, bool)
                                            and minimum <= v <= 64 for v in items)):
        raise ApiError(f"{key} must be an integer in {minimum}..64 or a pair of them, received "
                       f"{request.get(key)!r}.")
    return value


def _at(request: dict) -> tuple[int, ...] | None:
    at = request.get("at")
    if at is None:
        return None
    if (not isinstance(at, list) or len(at) not in (2, 3)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in at)):
        raise ApiError(f"at must be [row, column] or [filter, row, column], received {at!r}.")
    return tuple(at) if len(at) == 3 else (0, *at)


def conv_padding(request: dict, stride: Any) -> Any:
    """The playground's padding choices -> what ``explain.conv2d`` takes: ``"valid"``,
    ``"same"`` (TensorFlow's rule), ``"same-pytorch"`` (stride 1 only, as PyTorch), an integer,
    or four integers ``[top, bottom, left, right]``."""
    value = request.get("padding", 0)
    if value in ("valid", "same"):
        return value
    if value == "same-pytorch":
        strides = stride if isinstance(stride, tuple) else (stride,)
        if any(s != 1 for s in strides):
            raise ApiError(f"PyTorch refuses padding='same' with a stride other than 1 "
                           f"(received stride {stride}); choose TensorFlow's 'same'.")
        return "same"                    # at stride 1 PyTorch's and TensorFlow's rules agree
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 64:
        return value
    if (isinstance(value, list) and len(value) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 64
                    for v in value)):
        return ((value[0], value[1]), (value[2], value[3]))
    raise ApiError(f"padding must be 'valid', 'same', 'same-pytorch', an integer in 0..64 or "
                   f"[top, bottom, left, right], received {value!r}.")


def _size_check(numbers: dict) -> None:
    if math.prod(_shape(numbers["input"])) > MAX_VALUES:
        raise ApiError(f"the input has {math.prod(_shape(numbers['input'])):,} values; the "
                       f"playground takes at most {MAX_VALUES}.", 413)


def _shape(nested: Any) -> tuple[int, ...]:
    shape = []
    while isinstance(nested, list):
        shape.append(len(nested))
        nested = nested[0] if nested else None
    return tuple(shape)


def _entry(e, at: tuple[int, ...] | None) -> dict[str, Any]:
    """The worked entry at ``at`` (default the first); 400 when ``at`` is outside."""
    shape = _shape(e.numbers["output"])
    at = at or (0,) * len(shape)
    for entry in e.numbers["entries"]:
        if tuple(entry["index"]) == tuple(at):
            return entry
    raise ApiError(f"at {list(at)} is outside the output (shape {'×'.join(map(str, shape))}).")


def _formula(e) -> list[str]:
    start = next(i for i, line in enumerate(e.lines) if line.startswith("Output size"))
    return e.lines[start:start + 3]


def _finite(value: Any) -> Any:
    """JSON has no infinity: the -inf of max-pooling's padding becomes null."""
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value if value is None or math.isfinite(value) else None


def _answer(e, at) -> dict[str, Any]:
    return {"kind": e.kind, "output": e.numbers["output"],
            "output_shape": list(_shape(e.numbers["output"])), "entry": _entry(e, at),
            "wrong": e.wrong, "text": e.text}


def conv(request: dict) -> dict[str, Any]:
    from ..tools import explain

    stride = _int_or_pair(request, "stride", 1)
    dilation = _int_or_pair(request, "dilation", 1)
    padding = conv_padding(request, tuple(stride) if isinstance(stride, tuple) else stride)
    bias = request.get("bias")
    if bias is not None and (isinstance(bias, bool) or not isinstance(bias, (int, float, str))):
        raise ApiError(f"bias must be a number, received {bias!r}.")
    if isinstance(bias, str):
        bias = bias.strip() or None
    at = _at(request)
    e = explain.conv2d(_text(request, "input"), _text(request, "kernel"), bias,
                       stride=stride, padding=padding, dilation=dilation,
                       flip=bool(request.get("flip", False)), at=at,
                       check=_text(request, "check", required=False) or None)
    _size_check(e.numbers)
    return {**_answer(e, at), "padded": e.numbers["padded"], "kernel": e.numbers["kernel"],
            "padding": e.numbers["padding"], "stride": e.numbers["stride"],
            "dilation": e.numbers["dilation"], "formula": _formula(e)}


def pool(request: dict) -> dict[str, Any]:
    from ..tools import explain

    mode = request.get("mode", "max")
    if mode not in ("max", "avg"):
        raise ApiError(f"mode must be 'max' or 'avg', received {mode!r}.")
    size = _int_or_pair(request, "size", 2)
    stride = _int_or_pair(request, "stride", size) if request.get("stride") is not None \
        else None
    at = _at(request)
    e = explain.pool(_text(request, "input"), size, stride=stride,
                     padding=_int_or_pair(request, "padding", 0, minimum=0), mode=mode, at=at,
                     check=_text(request, "check", required=False) or None)
    _size_check(e.numbers)
    return {**_answer(e, at), "padded": _finite(e.numbers["padded"]),
            "size": e.numbers["size"], "stride": e.numbers["stride"],
            "padding": e.numbers["padding"], "formula": _formula(e)}


def relu(request: dict) -> dict[str, Any]:
    from ..tools import explain

    at = _at(request)
    e = explain.relu(_text(request, "input"),
                     check=_text(request, "check", required=False) or None)
    _size_check(e.numbers)
    return {**_answer(e, at), "padded": e.numbers["input"], "formula": []}
