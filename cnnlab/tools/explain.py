"""Worked arithmetic: each number of a convolution, pooling, ReLU or softmax, as the notes write it.

Each function computes its result with the engine (the same ops the networks train with) and
writes out how each number comes about, in the lecture's style
(``105*0 + 102*(-1) + 100*0 + ... = 89``). It returns an :class:`Explanation`: ``.text``
(plain), ``.markdown`` (for notebooks and docs), ``.numbers`` (the values, as lists, for your own
checks) and ``.wrong`` (with ``check=``: the entries of a hand-computed answer that are wrong,
each with its correct worked sum).

Matrices may be arrays or text as the notes type them: rows split by ``;``, values by spaces
or commas, channels by ``|`` (see :mod:`cnnlab.tools.matrices`).

Example:
    >>> e = conv2d("1 2 3; 4 5 6; 7 8 9", "1 0; 0 -1")
    >>> print(next(line for line in e.text.splitlines() if "Z[1,1] =" in line))
      Z[1,1] = 5*1 + 6*0 + 8*0 + 9*(-1) = -4
    >>> e.numbers["output"]
    [[[-4.0, -4.0], [-4.0, -4.0]]]
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ops.shapes import resolve_padding, same_padding
from .matrices import format_matrix, format_number, parse_channels, parse_matrix

SMALL = 36          # outputs up to this many entries are all worked out; larger: only ``at``


@dataclass
class Explanation:
    """The worked arithmetic of one operation."""

    kind: str
    lines: list[str]
    numbers: dict[str, Any]
    wrong: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def markdown(self) -> str:
        """Section titles (lines ending in ``:``, not indented) in bold, the rest in code blocks."""
        out: list[str] = []
        block: list[str] = []

        def flush() -> None:
            while block and not block[-1].strip():
                block.pop()
            if block:
                out.extend(["```text", *block, "```", ""])
            block.clear()

        for line in self.lines:
            if line and not line.startswith(" ") and line.endswith(":"):
                flush()
                out.extend([f"**{line[:-1]}**", ""])
            elif line.strip() or block:
                block.append(line)
        flush()
        return "\n".join(out).rstrip() + "\n"

    def __str__(self) -> str:
        return self.text

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text view: the text, as printed."""
        printer.text(self.text)

    def _repr_html_(self) -> str:
        """A notebook shows the grids with the window and wrong entries marked, then the text."""
        from ._explain_html import explanation_html
        return explanation_html(self)


# ----------------------------------------------------------------------------- helpers
def _matrix(value: Any, name: str, channels: bool = True) -> np.ndarray:
    if isinstance(value, str):
        return parse_channels(value, name) if channels else parse_matrix(value, name)
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected finite numbers.")
    return array


def _planes(value: Any, name: str) -> np.ndarray:
    """``(H, W)``, ``(C, H, W)`` or a row ``(W,)`` -> ``(C, H, W)``."""
    x = _matrix(value, name)
    if x.ndim == 1:
        x = x[None, None]
    elif x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"{name}: expected a matrix (H, W) or channels (C, H, W), received "
                         f"shape {x.shape}.")
    return x


def _term(x: float, k: float) -> str:
    def wrap(v: float) -> str:
        text = format_number(v)
        return f"({text})" if v < 0 else text
    return f"{wrap(x)}*{wrap(k)}"


def _size(shape: Sequence[int]) -> str:
    return "×".join(str(n) for n in shape)


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    if (not isinstance(value, Sequence) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                       for v in value)):
        raise ValueError(f"{name} must be a positive int or a pair of them, received {value!r}.")
    return int(value[0]), int(value[1])


def _index(at: Any, dims: int, name: str = "at") -> tuple[int, ...]:
    if isinstance(at, str):
        try:
            at = tuple(int(v) for v in at.replace(" ", "").split(","))
        except ValueError:
            raise ValueError(f"{name}: expected integers such as 1,2, received {at!r}.") from None
    at = tuple(int(v) for v in at)
    if len(at) == dims - 1:
        at = (0, *at)
    if len(at) != dims:
        raise ValueError(f"{name}: expected {dims - 1} or {dims} indices, received {at}.")
    return at


def _decimals(text: str) -> int:
    numbers = [t for t in text.replace(";", " ").replace(",", " ").replace("|", " ").split()]
    return max((len(t.split(".")[1]) for t in numbers if "." in t and "/" not in t), default=0)


def _answer(check: Any, shape: tuple[int, ...], name: str = "check") -> tuple[np.ndarray, float]:
    """A hand-computed answer as an array of ``shape`` and the tolerance its rounding allows."""
    tolerance = 1e-9
    if isinstance(check, str):
        tolerance = max(tolerance, 0.5 * 10.0 ** -_decimals(check))
        answer = parse_channels(check, name)
    else:
        answer = np.asarray(check, dtype=np.float64)
    if answer.size != math.prod(shape):
        raise ValueError(f"{name}: expected an answer of shape {_size(shape)} (the output), "
                         f"received {answer.size} values in shape {_size(answer.shape)}.")
    return answer.reshape(shape), tolerance


def _output_lines(name: str, out: np.ndarray) -> list[str]:
    lines = []
    for f in range(out.shape[0]):
        label = f"{name}{f if out.shape[0] > 1 else ''}"
        lines += [f"Output {label} ({_size(out.shape[1:])}):", format_matrix(out[f], "  ")]
    return lines


# ----------------------------------------------------------------------------- convolution
def conv2d(input: Any, kernel: Any, bias: Any = None, *, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, flip: bool = False, at: Any = None, check: Any = None,
           grad: Any = None) -> Explanation:
    """Worked arithmetic of a 2-D convolution (cross-correlation; ``flip=True``: true convolution).

    Args:
        input: ``(H, W)``, ``(C, H, W)``, a row ``(W,)`` (1-D) or text (``"1 2; 3 4"``, channels
            split by ``|``).
        kernel: one filter ``(kh, kw)`` / ``(C, kh, kw)`` / text, or several: ``(F, C, kh, kw)`` or
            a list of texts (one filter each).
        bias: None, a number, or one per filter (text ``"1 0"`` too).
        stride, dilation: int or ``(rows, columns)``.
        padding: int, ``(rows, columns)``, ``((top, bottom), (left, right))``, ``"valid"`` or
            ``"same"``; zeros.
        flip: rotate the kernel 180° first (the mathematical convolution).
        at: ``(row, column)`` or ``(filter, row, column)``: the entry worked out when the
            output is too large to show every entry (more than 36).
        check: a hand-computed output (text or array) to compare; ``.wrong`` lists its errors.
        grad: ``dL/dZ`` (text or array, the output's shape): also work out the gradients
            ``dL/dK = X ⋆ dL/dZ``, ``dL/dB = Σ dL/dZ`` and ``dL/dX`` (one filter only).
    """
    from .. import functional as F

    x = _planes(input, "input")
    if isinstance(kernel, (list, tuple)) and kernel and isinstance(kernel[0], str):
        k = np.stack([_planes(one, "kernel") for one in kernel])
    else:
        k = _matrix(kernel, "kernel")
        k = k[None, None, None] if k.ndim == 1 else k
        k = k[None, None] if k.ndim == 2 else k[None] if k.ndim == 3 else k
    if k.ndim != 4 or 0 in k.shape:
        raise ValueError(f"kernel: expected (kh, kw), (C, kh, kw) or (F, C, kh, kw), received "
                         f"shape {k.shape}.")
    if k.shape[1] != x.shape[0]:
        raise ValueError(f"the kernel has {k.shape[1]} channel(s) but the input has "
                         f"{x.shape[0]}: they must match.")
    filters = k.shape[0]
    b = np.zeros(filters)
    if bias is not None:
        values = (np.array([float(bias)]) if isinstance(bias, (int, float))
                  else _matrix(bias, "bias").ravel())
        if values.size not in (1, filters):
            raise ValueError(f"bias: expected one value per filter ({filters}), received "
                             f"{values.size}.")
        b = np.broadcast_to(values, (filters,)).astype(np.float64)
    s, d = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = resolve_padding(padding, x.shape[1:], k.shape[2:], s, d)
    out = F.conv2d(x[None], k, b, stride=s, padding=pads, dilation=d, flip_kernel=flip).data[0]
    applied = k[..., ::-1, ::-1] if flip else k
    xp = np.pad(x, ((0, 0), *pads))
    kh, kw = k.shape[2:]

    def worked(f: int, i: int, j: int) -> tuple[str, float, list[dict[str, Any]]]:
        channels = []
        for c in range(x.shape[0]):
            terms = [(xp[c, i * s[0] + u * d[0], j * s[1] + v * d[1]], applied[f, c, u, v])
                     for u in range(kh) for v in range(kw)]
            channels.append({"terms": [[float(a), float(w)] for a, w in terms],
                             "sum": float(sum(a * w for a, w in terms))})
        total = sum(ch["sum"] for ch in channels) + b[f]
        if not math.isclose(total, out[f, i, j], rel_tol=1e-9, abs_tol=1e-9):
            raise RuntimeError(f"internal error: worked sum {total} differs from the engine's "
                               f"{out[f, i, j]}.")
        name = f"Z{f if filters > 1 else ''}[{i},{j}]"
        sums = [" + ".join(_term(a, w) for a, w in ch["terms"]) for ch in channels]
        if len(channels) == 1:
            bias_text = f" + bias {format_number(b[f])}" if b[f] else ""
            text = f"{name} = {sums[0]}{bias_text} = {format_number(out[f, i, j])}"
        else:
            parts = [f"    channel {c}: {t} = {format_number(ch['sum'])}"
                     for c, (t, ch) in enumerate(zip(sums, channels))]
            added = " + ".join(f"({format_number(ch['sum'])})" if ch["sum"] < 0 else
                               format_number(ch["sum"]) for ch in channels)
            text = "\n".join([f"{name}:", *parts, f"    {name} = {added} + bias "
                              f"{format_number(b[f])} = {format_number(out[f, i, j])}"])
        return text, float(out[f, i, j]), channels

    lines = [f"conv2d{' (true convolution: kernel rotated 180°)' if flip else ''}: input "
             f"{_size(x.shape[1:])}{'×' + str(x.shape[0]) if x.shape[0] > 1 else ''}, "
             f"{filters} filter{'s' if filters > 1 else ''} {kh}×{kw}"
             f"{'×' + str(x.shape[0]) if x.shape[0] > 1 else ''}, stride {_fmt2(s)}, "
             f"dilation {_fmt2(d)}",
             "Output size, per axis: O = floor((n + p_begin + p_end - d·(k-1) - 1) / s) + 1"]
    for axis, n, (pb, pe), kk, ss, dd, o in zip(("rows", "columns"), x.shape[1:], pads,
                                                k.shape[2:], s, d, out.shape[1:]):
        lines.append(f"  {axis + ':':<9} floor(({n} + {pb} + {pe} - {dd}·({kk}-1) - 1) / {ss})"
                     f" + 1 = {o}")
    lines.append(f"Padding: top {pads[0][0]}, bottom {pads[0][1]}, left {pads[1][0]}, "
                 f"right {pads[1][1]} (zeros)")
    lines.append("")
    for c in range(x.shape[0]):
        label = f" channel {c}" if x.shape[0] > 1 else ""
        title = "Padded input" if any(p for pair in pads for p in pair) else "Input"
        lines += [f"{title}{label} ({_size(xp.shape[1:])}):", format_matrix(xp[c], "  ")]
    for f in range(filters):
        for c in range(x.shape[0]):
            label = (f" {f}" if filters > 1 else "") + (f" channel {c}" if x.shape[0] > 1 else "")
            lines += [f"Kernel{label}{' (rotated 180°)' if flip else ''} ({kh}×{kw}):",
                      format_matrix(applied[f, c], "  ")]
    if bias is not None:
        lines.append(f"Bias: {', '.join(format_number(v) for v in b)}")
    lines.append("")

    wrong = []
    entries = [(f, i, j) for f in range(filters) for i in range(out.shape[1])
               for j in range(out.shape[2])]
    if check is not None:
        answer, tolerance = _answer(check, out.shape)
        for f, i, j in entries:
            if abs(answer[f, i, j] - out[f, i, j]) > tolerance:
                wrong.append({"index": [f, i, j], "given": float(answer[f, i, j]),
                              "correct": float(out[f, i, j]),
                              "worked": worked(f, i, j)[0]})
    index = _at(at, out.shape, "filters")         # checked even when every entry is shown
    shown = entries if len(entries) <= SMALL else [index]
    lines.append(f"Worked sums (Z[i,j] = Σ X_padded[i·{s[0]} + u·{d[0]}, j·{s[1]} + v·{d[1]}] · "
                 f"K[u,v]{' + b' if bias is not None else ''}):")
    if len(entries) > SMALL:
        lines.append(f"  ({len(entries)} entries: showing {_at_text(shown[0], filters)}; pick "
                     f"another with at=(row, column), --at R,C on the command line)")
    entry_data = []
    for index in shown:
        text, value, channels = worked(*index)
        lines += ["  " + t if not t.startswith("    ") else t for t in text.split("\n")]
        f, i, j = index
        entry_data.append({"index": list(index), "channels": channels, "bias": float(b[f]),
                           "value": value, "text": text,
                           "window": _window((i * s[0], j * s[1]), (kh, kw), d)})
    lines.append("")
    lines += _output_lines("Z", out)
    numbers = {"input": x.tolist(), "padded": xp.tolist(), "kernel": applied.tolist(),
               "bias": b.tolist(), "stride": list(s), "dilation": list(d),
               "padding": [list(p) for p in pads], "output": out.tolist(),
               "entries": entry_data}
    if check is not None:
        lines += _check_lines(wrong, len(entries), filters > 1)
    if grad is not None:
        lines += _conv_gradients(x, k, b, s, pads, d, flip, grad, out.shape, numbers)
    return Explanation("conv2d", lines, numbers, wrong)


def _window(corner: tuple[int, int], size: tuple[int, int], dilation: tuple[int, int]
            ) -> dict[str, list[int]]:
    """The padded-input rows and columns one output entry reads (for pictures of the window)."""
    return {"rows": [corner[0] + u * dilation[0] for u in range(size[0])],
            "columns": [corner[1] + v * dilation[1] for v in range(size[1])]}


def _fmt2(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}×{pair[1]}"


def _at(at: Any, shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
    """The entry ``at`` names (default the first), checked to lie inside the output."""
    index = _index(at or (0, 0), 3)
    if not all(0 <= v < n for v, n in zip(index, shape)):
        raise ValueError(f"at: {tuple(index[1:]) if shape[0] == 1 else index} is outside the "
                         f"output ({_size(shape[1:])}"
                         f"{', ' + str(shape[0]) + ' ' + what if shape[0] > 1 else ''}).")
    return index


def _at_text(index: tuple[int, ...], filters: int) -> str:
    return f"Z{index[0] if filters > 1 else ''}[{index[1]},{index[2]}]"


def _check_lines(wrong: list[dict[str, Any]], total: int, several: bool = False) -> list[str]:
    """``several``: more than one filter (channel): the entries name it, ``(f, i, j)``."""
    lines = ["", f"Check: {total - len(wrong)} of {total} entries right"
             + (":" if wrong else ".")]
    for w in wrong:
        lines.append(f"  entry {tuple(w['index'][0 if several else 1:])}"
                     f": you have {format_number(w['given'])}, correct is "
                     f"{format_number(w['correct'])}")
        lines += ["    " + t for t in w["worked"].split("\n")]
    return lines


def _conv_gradients(x, k, b, s, pads, d, flip, grad, out_shape, numbers) -> list[str]:
    """``dL/dK``, ``dL/dB``, ``dL/dX`` of a one-filter convolution, with the lecture's formulas."""
    from .. import functional as F
    from ..autograd import Tensor

    if k.shape[0] != 1:
        raise ValueError("grad: the gradients are worked out for one filter; received "
                         f"{k.shape[0]}.")
    dz = _planes(grad, "grad")
    if dz.shape[1:] != tuple(out_shape[1:]) or dz.shape[0] != 1:
        raise ValueError(f"grad: expected dL/dZ of the output's shape {_size(out_shape[1:])}, "
                         f"received {_size(dz.shape)}.")
    xt, kt, bt = (Tensor(v, requires_grad=True) for v in (x[None], k, b))
    z = F.conv2d(xt, kt, bt, stride=s, padding=pads, dilation=d, flip_kernel=flip)
    z.backward(dz[None])
    dk, db, dx = kt.grad[0], float(bt.grad[0]), xt.grad[0]
    lines = ["", "Gradients (given dL/dZ):", format_matrix(dz[0], "  "),
             "dL/dB = Σ dL/dZ = " + " + ".join(_signed(v) for v in dz[0].ravel())
             + f" = {format_number(db)}",
             "dL/dK = X ⋆ dL/dZ (the input cross-correlated with the output gradient"
             + (", then rotated 180° for a true convolution" if flip else "") + "):"]
    lines.append(format_matrix(dk[0] if dk.shape[0] == 1 else dk.reshape(-1, dk.shape[-1]),
                               "  "))
    if s == (1, 1) and d == (1, 1) and x.shape[0] == 1 and not flip:
        xp = np.pad(x[0], pads)
        oh, ow = dz.shape[1:]
        for u, v in np.ndindex(k.shape[2:]):
            window = xp[u:u + oh, v:v + ow].ravel()
            terms = " + ".join(_term(a, g) for a, g in zip(window, dz[0].ravel()))
            lines.append(f"  dK[{u},{v}] = {terms} = {format_number(dk[0, u, v])}")
    rot = k[0, 0, ::-1, ::-1] if not flip else k[0, 0]
    lines += ["dL/dX = (dL/dZ zero-padded by k-1) ⋆ rot180(K) (the full convolution):",
              "  rot180(K) =", format_matrix(rot, "    "), "  dL/dX =",
              format_matrix(dx[0] if dx.shape[0] == 1 else dx.reshape(-1, dx.shape[-1]), "    ")]
    numbers.update({"grad_output": dz[0].tolist(), "grad_kernel": dk.tolist(), "grad_bias": db,
                    "grad_input": dx.tolist(), "rot180_kernel": rot.tolist()})
    return lines


def _signed(v: float) -> str:
    return f"({format_number(v)})" if v < 0 else format_number(v)


# ----------------------------------------------------------------------------- pooling
def pool(input: Any, size: Any = 2, *, stride: Any = None, padding: Any = 0,
         mode: str = "max", at: Any = None, check: Any = None) -> Explanation:
    """Worked max or average pooling: every window's values and their max (or mean).

    Padding follows PyTorch: ``-inf`` for max pooling (never chosen), zeros counted in the mean
    for average pooling. ``stride`` defaults to ``size``.
    """
    from .. import functional as F

    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', received {mode!r}.")
    x = _planes(input, "input")
    k = _pair(size, "size")
    s = _pair(stride if stride is not None else k, "stride")
    p = _pair_nonneg(padding)
    fn = F.max_pool2d if mode == "max" else F.avg_pool2d
    out = fn(x[None], k, s, p).data[0]
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x, ((0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    lines = [f"{mode} pooling: input {_size(x.shape[1:])}"
             f"{'×' + str(x.shape[0]) if x.shape[0] > 1 else ''}, window {_fmt2(k)}, stride "
             f"{_fmt2(s)}, padding {_fmt2(p)}",
             "Output size, per axis: O = floor((n + 2p - k) / s) + 1"]
    for axis, n, kk, ss, pp, o in zip(("rows", "columns"), x.shape[1:], k, s, p, out.shape[1:]):
        lines.append(f"  {axis + ':':<9} floor(({n} + 2·{pp} - {kk}) / {ss}) + 1 = {o}")
    lines.append("")
    for c in range(x.shape[0]):
        label = f" channel {c}" if x.shape[0] > 1 else ""
        lines += [f"{'Padded input' if any(p) else 'Input'}{label} ({_size(xp.shape[1:])}):",
                  format_matrix(xp[c], "  ")]
    lines += ["", "Windows:"]
    entries = [(c, i, j) for c in range(out.shape[0]) for i in range(out.shape[1])
               for j in range(out.shape[2])]
    index = _at(at, out.shape, "channels")        # checked even when every entry is shown
    shown = entries if len(entries) <= SMALL else [index]
    if len(entries) > SMALL:
        lines.append(f"  ({len(entries)} entries: showing {_at_text(shown[0], out.shape[0])}; "
                     f"pick another with at=(row, column), --at R,C on the command line)")

    def worked(c: int, i: int, j: int) -> str:
        window = xp[c, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].ravel()
        values = ", ".join(format_number(v) for v in window)
        name = f"Z{c if out.shape[0] > 1 else ''}[{i},{j}]"
        if mode == "max":
            return f"{name} = max({values}) = {format_number(out[c, i, j])}"
        return (f"{name} = ({' + '.join(_signed(v) for v in window)}) / {window.size} = "
                f"{format_number(out[c, i, j])}")

    for index in shown:
        if not all(0 <= v < n for v, n in zip(index, out.shape)):
            raise ValueError(f"at: {tuple(index[1:])} is outside the output "
                             f"({_size(out.shape[1:])}).")
    lines += ["  " + worked(*e) for e in shown]
    lines.append("")
    lines += _output_lines("Z", out)
    wrong = []
    if check is not None:
        answer, tolerance = _answer(check, out.shape)
        wrong = [{"index": list(e), "given": float(answer[e]), "correct": float(out[e]),
                  "worked": worked(*e)} for e in entries if abs(answer[e] - out[e]) > tolerance]
        lines += _check_lines(wrong, len(entries), out.shape[0] > 1)
    entry_data = [{"index": list(e), "value": float(out[e]), "text": worked(*e),
                   "window": _window((e[1] * s[0], e[2] * s[1]), k, (1, 1))} for e in shown]
    return Explanation(f"{mode}_pool", lines, {"input": x.tolist(), "padded": xp.tolist(),
                                               "output": out.tolist(), "size": list(k),
                                               "stride": list(s), "padding": list(p),
                                               "entries": entry_data}, wrong)


def _pair_nonneg(value: Any) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
        return int(value), int(value)
    if (isinstance(value, Sequence) and len(value) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                    for v in value)):
        return int(value[0]), int(value[1])
    raise ValueError(f"padding must be a non-negative int or a pair of them, received {value!r}.")


# ----------------------------------------------------------------------------- activations
def relu(input: Any, *, check: Any = None) -> Explanation:
    """``max(0, x)`` entry by entry: which values the ReLU zeroes."""
    from .. import functional as F

    x = _planes(input, "input")
    out = F.relu(x).data
    lines = [f"ReLU: Z = max(0, X), input {_size(x.shape[1:])}"
             f"{'×' + str(x.shape[0]) if x.shape[0] > 1 else ''}", ""]
    for c in range(x.shape[0]):
        lines += [f"Input{f' channel {c}' if x.shape[0] > 1 else ''}:", format_matrix(x[c], "  ")]
    negatives = [(c, i, j) for c, i, j in zip(*np.nonzero(x < 0))]
    lines += ["", f"Negative entries set to 0 ({len(negatives)} of {x.size}):"]
    for c, i, j in negatives:
        lines.append(f"  {'X' + (str(c) if x.shape[0] > 1 else '')}[{i},{j}] = "
                     f"max(0, {format_number(x[c, i, j])}) = 0")
    if not negatives:
        lines.append("  none: the output equals the input")
    lines.append("")
    lines += _output_lines("Z", out)
    wrong = []
    if check is not None:
        answer, tolerance = _answer(check, out.shape)
        wrong = [{"index": [int(v) for v in e], "given": float(answer[e]),
                  "correct": float(out[e]), "worked": f"max(0, {format_number(x[e])}) = "
                                                      f"{format_number(out[e])}"}
                 for e in zip(*np.nonzero(np.abs(answer - out) > tolerance))]
        lines += _check_lines(wrong, out.size, x.shape[0] > 1)
    entries = [{"index": [c, i, j], "value": float(out[c, i, j]),
                "text": f"Z{c if x.shape[0] > 1 else ''}[{i},{j}] = max(0, "
                        f"{format_number(x[c, i, j])}) = {format_number(out[c, i, j])}",
                "window": {"rows": [i], "columns": [j]}} for c, i, j in np.ndindex(x.shape)]
    return Explanation("relu", lines, {"input": x.tolist(), "output": out.tolist(),
                                       "entries": entries}, wrong)


def softmax(input: Any, *, target: int | None = None) -> Explanation:
    """``p_i = exp(z_i) / Σ_j exp(z_j)`` for a vector of scores, each step written out.

    With ``target`` (a class index) also the cross-entropy loss ``-log p_target``.
    """
    from .. import functional as F

    z = _matrix(input, "input", channels=False).ravel()
    if z.size < 2:
        raise ValueError(f"softmax needs at least 2 scores, received {z.size}.")
    p = F.softmax(z[None], dim=1).data[0]
    e = np.exp(z - z.max())
    lines = [f"softmax of {z.size} scores: p_i = exp(z_i) / Σ_j exp(z_j)",
             "  (computed as exp(z_i - max z) / Σ_j exp(z_j - max z): the same value, no "
             "overflow)", "",
             "Scores: " + ", ".join(format_number(v) for v in z)]
    raw = np.exp(z) if z.max() < 700 else None
    if raw is not None:
        lines += ["Exponentials:"] + [f"  exp({format_number(v)}) = {format_number(r)}"
                                       for v, r in zip(z, raw)]
        lines.append(f"  sum = {' + '.join(format_number(r) for r in raw)} = "
                     f"{format_number(raw.sum())}")
    lines.append("Probabilities:")
    top, bottom = (raw, raw.sum()) if raw is not None else (e, e.sum())
    for i, q in enumerate(p):
        lines.append(f"  p{i} = {format_number(top[i])} / {format_number(bottom)} = {q:.6f}")
    lines.append(f"  (they sum to {format_number(round(float(p.sum()), 12))})")
    numbers: dict[str, Any] = {"scores": z.tolist(), "probabilities": p.tolist()}
    if target is not None:
        if (isinstance(target, bool) or not isinstance(target, (int, np.integer))
                or not 0 <= target < z.size):
            raise ValueError(f"target must be a class index in 0..{z.size - 1}, received "
                             f"{target!r}.")
        loss = float(F.cross_entropy(z[None], np.array([target])).data)
        lines += ["", f"Cross-entropy for class {target}: -log p{target} = "
                      f"-log {p[target]:.6f} = {loss:.6f}"]
        numbers["loss"] = loss
    return Explanation("softmax", lines, numbers)


# ----------------------------------------------------------------------------- padding
def padding(size: int, kernel_size: int, stride: int = 1, dilation: int = 1,
            pad: int | None = None) -> Explanation:
    """How each framework pads ``size`` pixels for a ``kernel_size`` kernel, and the output sizes.

    TensorFlow's ``'SAME'`` (odd pixel at the end), JAX's ``'SAME_LOWER'`` (odd pixel at the
    start), PyTorch's usual symmetric ``p = d·(k-1)/2`` (rounded down), PyTorch's ``'same'``
    (stride 1 only), ``'valid'``, and with ``pad`` an explicit symmetric padding.
    """
    for name, value in (("size", size), ("kernel_size", kernel_size), ("stride", stride),
                        ("dilation", dilation)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, received {value!r}.")
    if pad is not None and (isinstance(pad, bool) or not isinstance(pad, (int, np.integer))
                            or pad < 0):
        raise ValueError(f"pad must be a non-negative int, received {pad!r}.")
    n, k, s, d = size, kernel_size, stride, dilation
    span = d * (k - 1) + 1

    def out(pb: int, pe: int) -> int:
        return (n + pb + pe - span) // s + 1 if n + pb + pe >= span else 0

    tf = same_padding(n, k, s, d)
    total = sum(tf)
    rows = [("TensorFlow 'SAME'", tf, "total = max((ceil(n/s) - 1)·s + d·(k-1) + 1 - n, 0); "
             "the odd pixel at the end"),
            ("JAX 'SAME_LOWER'", (total - total // 2, total // 2),
             "the same total; the odd pixel at the start"),
            ("PyTorch p = d·(k-1)//2", ((d * (k - 1)) // 2,) * 2,
             "symmetric, the lecture's p = (f-1)/2")]
    if s == 1:
        rows.append(("PyTorch padding='same'", ((d * (k - 1)) // 2,
                                                d * (k - 1) - (d * (k - 1)) // 2),
                     "stride 1 only; the odd pixel at the end"))
    rows.append(("'valid'", (0, 0), "no padding"))
    if pad is not None:
        rows.append((f"padding {pad}", (pad, pad), "as given"))
    lines = [f"padding for n = {n}, kernel k = {k}, stride s = {s}, dilation d = {d} "
             f"(the kernel spans d·(k-1) + 1 = {span})",
             "Output size: O = floor((n + p_begin + p_end - d·(k-1) - 1) / s) + 1", ""]
    width = max(len(r[0]) for r in rows)
    table = []
    for name, (pb, pe), note in rows:
        o = out(pb, pe)
        table.append({"scheme": name, "before": pb, "after": pe, "output": o})
        lines.append(f"  {name:<{width}}  before {pb}, after {pe}: O = floor(({n} + {pb} + {pe}"
                     f" - {span - 1} - 1) / {s}) + 1 = {o}   ({note})")
    if s != 1:
        lines.append(f"  {'PyTorch padding=' + repr('same'):<{width}}  refused by PyTorch for "
                     f"stride {s} (cnnlab follows TensorFlow's rule)")
    same_rows = [r for r in table if r["scheme"] != "'valid'" and not
                 r["scheme"].startswith("padding ")]
    if len({(r["before"], r["after"]) for r in same_rows}) > 1:
        lines += ["", "Warning: these 'same' schemes pad differently here: "
                      + "; ".join(f"{r['scheme']} {r['before']}+{r['after']}" for r in same_rows)
                  + ". A model moved between frameworks shifts its outputs by a pixel."]
    if len({r["output"] for r in same_rows}) > 1:
        lines.append("Warning: and their output sizes differ: "
                     + ", ".join(f"{r['scheme']} {r['output']}" for r in same_rows) + ".")
    return Explanation("padding", lines, {"size": n, "kernel_size": k, "stride": s,
                                          "dilation": d, "schemes": table})


# ----------------------------------------------------------------------------- your model
def model(net: Any, x: Any, layer: str, at: Any) -> Explanation:
    """One output value of a convolution layer of a trained model, for one input image.

    The layer's input window (the previous layer's output, every channel the filter reads),
    the filter's kernel, the products and their sum, the bias, and what the next layer (a ReLU,
    say) makes of it; checked against the value the network computed.

    Args:
        net: a :class:`~cnnlab.nn.Module` (e.g. from a checkpoint).
        x: the input image ``(C, H, W)`` as the network receives it (normalised).
        layer: the convolution's name in the model (``"3"``, ``"features.0"``).
        at: ``(channel, row, column)`` of the layer's output.
    """
    from .summary import _CONVS, describe, leaf_activations

    convs = {name: m for name, m in net.named_modules() if isinstance(m, _CONVS)
             and not m.transposed and len(m.kernel_size) == 2}
    if layer not in convs:
        raise ValueError(f"layer {layer!r} is not a 2-D convolution of this model; its "
                         f"convolutions: {', '.join(convs) or 'none'}.")
    conv = convs[layer]
    image = np.asarray(x, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f"expected one image (C, H, W), received shape {image.shape}.")
    seen = leaf_activations(net, image[None])
    position = next(i for i, (name, *_) in enumerate(seen) if name == layer)
    _, _, inp, out = seen[position]
    c, i, j = _index(at, 3)
    if not all(0 <= v < n for v, n in zip((c, i, j), out.shape[1:])):
        raise ValueError(f"at: ({c}, {i}, {j}) is outside the layer's output "
                         f"({out.shape[1]} channels × {out.shape[2]}×{out.shape[3]}).")
    w = np.asarray(conv.weight.data, dtype=np.float64)
    b = 0.0 if conv.bias is None else float(conv.bias.data[c])
    pads = resolve_padding(conv.padding, inp.shape[2:], conv.kernel_size, conv.stride,
                           conv.dilation)
    per_group = conv.in_channels // conv.groups
    first = (c // (conv.out_channels // conv.groups)) * per_group
    xp = np.pad(inp[0].astype(np.float64), ((0, 0), *pads))
    (s0, s1), (d0, d1), (kh, kw) = conv.stride, conv.dilation, conv.kernel_size
    rows = slice(i * s0, i * s0 + d0 * (kh - 1) + 1, d0)
    cols = slice(j * s1, j * s1 + d1 * (kw - 1) + 1, d1)
    source = seen[position - 1] if position else None
    lines = [f"layer {layer} {describe(conv)}: output channel {c}, row {i}, column {j}",
             f"Its input: {_size(inp.shape[2:])}×{inp.shape[1]}"
             + (f", the output of layer {source[0]} {describe(source[1])}" if source
                else ", the image"),
             f"Window: rows {rows.start}..{rows.stop - 1}, columns {cols.start}..{cols.stop - 1} "
             f"of the input padded by {pads[0][0]},{pads[0][1]} (rows) and {pads[1][0]},"
             f"{pads[1][1]} (columns)", ""]
    total, sums = b, []
    for k in range(per_group):
        window = xp[first + k, rows, cols]
        kernel = w[c, k]
        part = float((window * kernel).sum())
        sums.append(part)
        total += part
        lines += [f"Input channel {first + k}, window and kernel:",
                  *_side_by_side(format_matrix(np.round(window, 4), "  "),
                                 format_matrix(np.round(kernel, 4), "  ")),
                  *textwrap.wrap(" + ".join(_term(round(a, 4), round(q, 4)) for a, q in
                                            zip(window.ravel(), kernel.ravel()))
                                 + f" = {part:.4f}", width=98, initial_indent="  ",
                                 subsequent_indent="    ", break_on_hyphens=False), ""]
    engine = float(out[0, c, i, j])
    lines.append("Sum over the channels: " + " + ".join(_signed(round(v, 4)) for v in sums)
                 + f" + bias {_signed(round(b, 4))} = {total:.4f} (the network computed "
                 f"{engine:.4f})")
    if not math.isclose(total, engine, rel_tol=1e-4, abs_tol=1e-4):
        raise RuntimeError(f"internal error: worked sum {total} differs from the network's "
                           f"{engine}.")
    numbers = {"layer": layer, "at": [c, i, j], "channel_sums": sums, "bias": b,
               "value": engine}
    if position + 1 < len(seen):
        name, module, _, after = seen[position + 1]
        if after.shape == out.shape:
            value = float(after[0, c, i, j])
            lines.append(f"Then layer {name} {describe(module)}: {engine:.4f} -> {value:.4f}")
            numbers["next"] = {"layer": name, "value": value}
    return Explanation("model", lines, numbers)


def _side_by_side(left: str, right: str, gap: int = 6) -> list[str]:
    a, b = left.split("\n"), right.split("\n")
    width = max(len(line) for line in a)
    return [f"{x:<{width}}{' ' * gap}{y}" for x, y in zip(a, b)]
