"""The one place where output sizes and paddings are computed.

Every op, layer, ``summary``, ``explain`` and ``receptive_field`` calls these functions, so a size
formula exists exactly once. All functions work per spatial axis on plain integers; the ``*_sizes``
variants map them over tuples.

Conventions (per spatial axis): input size ``n``, kernel ``k``, stride ``s``, dilation ``d``,
padding ``(p_begin, p_end)``. The dilated kernel spans ``d*(k-1) + 1`` input positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .._validate import as_tuple, fmt_size

Pairs = tuple[tuple[int, int], ...]
PaddingArg = int | str | Sequence[int] | Sequence[Sequence[int]]


def kernel_span(k: int, d: int = 1) -> int:
    """``d*(k-1) + 1``: how many input positions a kernel of ``k`` taps, dilation ``d``, covers.

    >>> kernel_span(3), kernel_span(3, d=2)
    (3, 5)
    """
    return d * (k - 1) + 1


def conv_output_size(n: int, k: int, s: int = 1, p: int | tuple[int, int] = 0, d: int = 1) -> int:
    """``floor((n + p_begin + p_end - d*(k-1) - 1) / s) + 1``.

    ``p`` is symmetric padding or a ``(before, after)`` pair. Raises ``ValueError`` when the
    dilated kernel is larger than the padded input.

    >>> conv_output_size(32, 5)          # LeNet's first layer
    28
    >>> conv_output_size(7, 3, s=2, p=1)
    4
    """
    pb, pe = (p, p) if isinstance(p, int) else p
    span = kernel_span(k, d)
    if n + pb + pe < span:
        raise ValueError(
            f"kernel of size {k} (dilation {d}, span {span}) is larger than the padded input of "
            f"size {n + pb + pe} (input {n}, padding {pb}+{pe})."
        )
    return (n + pb + pe - span) // s + 1


def same_padding(n: int, k: int, s: int = 1, d: int = 1) -> tuple[int, int]:
    """TensorFlow's 'SAME' rule: output ``ceil(n/s)`` for any stride; the odd pixel goes at the end.

    ``total = max((ceil(n/s) - 1)*s + d*(k-1) + 1 - n, 0)``, ``before = total // 2``,
    ``after = total - before``. For stride 1 this equals PyTorch's ``padding='same'``.

    >>> same_padding(5, 3)
    (1, 1)
    >>> same_padding(6, 3, s=2)          # total 1: nothing before, one pixel after
    (0, 1)
    """
    total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: PaddingArg,
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> Pairs:
    """Turn every accepted form of ``padding`` into explicit ``((before, after), ...)`` pairs.

    Accepted: an int; one int per spatial axis; one ``(before, after)`` pair per axis;
    ``"valid"`` (no padding); ``"same"`` (TensorFlow's rule, see :func:`same_padding`).
    """
    nd = len(in_sizes)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            return tuple(
                same_padding(n, k, s, d) for n, k, s, d in zip(in_sizes, kernel, stride, dilation)
            )
        raise ValueError(
            f"padding must be an int, a tuple, 'valid' or 'same', received {padding!r}."
        )
    return padding_pairs(padding, nd)


def padding_pairs(padding: int | Sequence[int] | Sequence[Sequence[int]], nd: int) -> Pairs:
    """Numeric padding forms only (int, per-axis ints, per-axis pairs) -> pairs, checked >= 0."""
    if (type(padding) is tuple and len(padding) == nd
            and all(type(p) is tuple and len(p) == 2 and type(p[0]) is int is type(p[1])
                    and p[0] >= 0 and p[1] >= 0 for p in padding)):
        return padding                             # already normalised (a layer's own)
    is_pairs = (
        isinstance(padding, Sequence)
        and len(padding) == nd
        and all(isinstance(p, Sequence) and not isinstance(p, str) for p in padding)
    )
    if is_pairs:
        pairs = tuple(as_tuple(p, 2, "padding (before, after) pair") for p in padding)
    else:
        try:
            per_axis = as_tuple(padding, nd, "padding")
        except TypeError:
            raise TypeError(
                f"padding must be an int, a tuple of {nd} ints, {nd} (before, after) pairs, "
                f"'valid' or 'same', received {padding!r}."
            ) from None
        pairs = tuple((p, p) for p in per_axis)
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"padding must be non-negative, received {padding!r}.")
    return pairs


def conv_output_sizes(
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: Pairs,
    dilation: Sequence[int],
) -> tuple[int, ...]:
    """:func:`conv_output_size` over all spatial axes, with a message naming every size."""
    try:
        return tuple(
            conv_output_size(n, k, s, p, d)
            for n, k, s, p, d in zip(in_sizes, kernel, stride, pads, dilation)
        )
    except ValueError:
        padded = [n + pb + pe for n, (pb, pe) in zip(in_sizes, pads)]
        span = [kernel_span(k, d) for k, d in zip(kernel, dilation)]
        raise ValueError(
            f"kernel {fmt_size(kernel)} (dilated span {fmt_size(span)}) is larger than the "
            f"padded input {fmt_size(padded)} (input {fmt_size(in_sizes)}, padding {pads})."
        ) from None


def windows_overlap(kernel: Sequence[int], stride: Sequence[int],
                    dilation: Sequence[int]) -> bool:
    """Can two windows read the same input position? (stride smaller than the dilated span)"""
    return any(s < kernel_span(k, d) for k, s, d in zip(kernel, stride, dilation))


def pool_output_size(
    n: int, k: int, s: int, p: int | tuple[int, int] = 0, d: int = 1, ceil_mode: bool = False
) -> int:
    """PyTorch's pooling size: like :func:`conv_output_size` with padding ``p`` on each side, or
    ``(p_begin, p_end)``.

    With ``ceil_mode`` the division rounds up, but a last window that would start in the right
    padding (at or beyond ``n + p_begin``) is dropped, exactly as PyTorch (and ONNX) do. (So in
    ``ceil_mode`` a single window may reach past the padded input, as in PyTorch.)

    >>> pool_output_size(5, 2, 2), pool_output_size(5, 2, 2, ceil_mode=True)
    (2, 3)
    >>> pool_output_size(5, 2, 2, (0, 1))
    3
    """
    pb, pe = (p, p) if isinstance(p, int) else p
    span = kernel_span(k, d)
    if ceil_mode:
        out = -(-(n + pb + pe - span) // s) + 1
        if out > 1 and (out - 1) * s >= n + pb:
            out -= 1
    else:
        out = (n + pb + pe - span) // s + 1
    if out < 1:
        sides = f"padding {pb} on each side" if pb == pe else f"padding {pb}+{pe}"
        raise ValueError(
            f"pooling window of size {k} (dilation {d}) is larger than the padded input of size "
            f"{n + pb + pe} (input {n}, {sides})."
        )
    return out


def conv_transpose_output_size(
    n: int, k: int, s: int = 1, p: int | tuple[int, int] = 0, d: int = 1, output_padding: int = 0
) -> int:
    """``(n - 1)*s - p_begin - p_end + d*(k-1) + output_padding + 1`` (the inverse of conv).

    >>> conv_transpose_output_size(3, 3, s=2, p=1, output_padding=1)
    6
    """
    pb, pe = (p, p) if isinstance(p, int) else p
    size = (n - 1) * s - pb - pe + d * (k - 1) + output_padding + 1
    if size <= 0:
        raise ValueError(
            f"transposed convolution of input size {n} with kernel {k}, stride {s}, padding "
            f"{pb}+{pe} would have non-positive output size {size}."
        )
    return size
