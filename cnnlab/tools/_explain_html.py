"""How an :class:`~cnnlab.tools.explain.Explanation` looks in a notebook (its ``_repr_html_``).

The plain text (``.text``, what the CLI prints) is untouched; this draws the same numbers as
HTML: for a convolution, pooling or ReLU the matrices as grids, side by side, with the window
of one output entry highlighted in the (padded) input and the entry itself marked in the
output; a hand-computed answer given with ``check=`` has its wrong entries marked in red (your
value struck through, the correct one beside it). The worked sums and the rest of the text
follow as preformatted sections, so every number of ``.text`` is still there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._display import escape
from .matrices import format_number

_CELL = ("border:1px solid #bbb;padding:2px 6px;text-align:right;font-family:monospace;"
         "min-width:1.6em")
_WINDOW = "background:#ffe08a"          # the highlighted window and its output entry
_PADDING = "color:#999;background:#f2f2f2"
_WRONG = "background:#f6b8b8"
_NEGATIVE = "background:#dbe8fb"        # ReLU: entries set to 0
_PRE = ("margin:2px 0 8px 0;font-family:monospace;font-size:12px;white-space:pre-wrap;"
        "overflow-x:auto;text-align:left")
_FOLD = 24              # a section longer than this many lines is folded (<details>)
# sections of .text that the grids already show
_DRAWN = ("Input", "Padded input", "Kernel", "Output")


def grid(values: Any, *, styles: dict[tuple[int, int], str] | None = None,
         titles: dict[tuple[int, int], str] | None = None,
         texts: dict[tuple[int, int], str] | None = None, caption: str = "") -> str:
    """A matrix as an HTML table; per-cell extra style, hover title and replacement text."""
    a = np.asarray(values, dtype=np.float64)
    styles, titles, texts = styles or {}, titles or {}, texts or {}
    rows = []
    for i in range(a.shape[0]):
        cells = []
        for j in range(a.shape[1]):
            style = _CELL + (";" + styles[i, j] if (i, j) in styles else "")
            title = f' title="{escape(titles[i, j])}"' if (i, j) in titles else ""
            text = texts.get((i, j), escape(_number(a[i, j])))
            cells.append(f'<td style="{style}"{title}>{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = (f'<caption style="caption-side:top;text-align:left;font-size:12px">'
            f"{escape(caption)}</caption>" if caption else "")
    return (f'<table style="border-collapse:collapse;margin:0">{head}{"".join(rows)}</table>')


def _number(v: float) -> str:
    return "−∞" if v == -np.inf else format_number(v)


def _panel(parts: Sequence[str]) -> str:
    """Grids and operators in one row (wrapping on a narrow page)."""
    items = "".join(f'<div style="margin:4px 8px;align-self:center">{p}</div>' for p in parts)
    return f'<div style="display:flex;flex-wrap:wrap;align-items:flex-start">{items}</div>'


def _operator(symbol: str) -> str:
    return f'<span style="font-size:20px">{escape(symbol)}</span>'


def _sections(lines: list[str], skip: tuple[str, ...]) -> str:
    """The text as the markdown view splits it: bold titles, preformatted bodies."""
    out: list[str] = []
    block: list[str] = []
    skipping = False

    title = ""

    def flush() -> None:
        while block and not block[-1].strip():
            block.pop()
        if block and not skipping:
            pre = f'<pre style="{_PRE}">' + escape("\n".join(block)) + "</pre>"
            if title and len(block) > _FOLD:        # long worked sums: folded, one click away
                out[-1] = (f"<details><summary><b>{escape(title)}</b> ({len(block)} lines)"
                           f"</summary>{pre}</details>")
            else:
                out.append(pre)
        block.clear()

    for line in lines:
        if line and not line.startswith(" ") and line.endswith(":"):
            flush()
            skipping = line.startswith(skip)
            title = line[:-1]
            if not skipping:
                out.append(f"<div><b>{escape(title)}</b></div>")
        elif line and not line.startswith(" ") and (skipping or not block):
            if skipping:                                    # an unindented line ends a matrix
                block.clear()
                skipping = False
            title = ""
            out.append(f"<div>{escape(line)}</div>")           # a one-line statement
        elif line.strip() or block:
            block.append(line)
    flush()
    return "".join(out)


def _wrong_marks(wrong: list[dict[str, Any]], plane: int
                 ) -> tuple[dict[tuple[int, int], str], dict[tuple[int, int], str],
                            dict[tuple[int, int], str]]:
    styles, texts, titles = {}, {}, {}
    for w in wrong:
        p, i, j = w["index"]
        if p != plane:
            continue
        styles[i, j] = _WRONG
        texts[i, j] = (f"<s>{escape(format_number(w['given']))}</s> "
                       f"{escape(format_number(w['correct']))}")
        titles[i, j] = f"you have {format_number(w['given'])}: {w['worked']}"
    return styles, texts, titles


def _check_note(wrong: list[dict[str, Any]], total: int) -> str:
    right = total - len(wrong)
    colour = "#1a7f37" if not wrong else "#b42318"
    text = f"Check: {right} of {total} entries right"
    if wrong:
        text += " (wrong entries in red: yours struck through, the correct value beside it)"
    return f'<div style="color:{colour};font-weight:bold;margin:4px 0">{escape(text)}</div>'


def _conv(e: Any) -> str:
    n = e.numbers
    padded = np.asarray(n["padded"])                        # (C, Hp, Wp)
    kernel = np.asarray(n["kernel"])                        # (F, C, kh, kw)
    out = np.asarray(n["output"])                           # (F, Ho, Wo)
    (s0, s1), (d0, d1) = n["stride"], n["dilation"]
    (top, bottom), (left, right) = n["padding"]
    entries = n["entries"]
    current = e.wrong[0]["index"] if e.wrong else entries[0]["index"]
    f, i, j = current
    kh, kw = kernel.shape[2:]
    window = {(i * s0 + u * d0, j * s1 + v * d1) for u in range(kh) for v in range(kw)}
    hp, wp = padded.shape[1:]
    pads = {(r, c) for r in range(hp) for c in range(wp)
            if r < top or r >= hp - bottom or c < left or c >= wp - right}
    name = f"Z{f if out.shape[0] > 1 else ''}[{i},{j}]"
    parts = []
    for c in range(padded.shape[0]):
        styles = {rc: _PADDING for rc in pads}
        styles.update({rc: _WINDOW for rc in window})
        label = "padded input" if pads else "input"
        parts.append(grid(padded[c], styles=styles, caption=f"{label}"
                          + (f" channel {c}" if padded.shape[0] > 1 else "")))
    parts.append(_operator("⋆"))
    for c in range(kernel.shape[1]):
        parts.append(grid(kernel[f, c], styles={rc: _WINDOW for rc in np.ndindex(kh, kw)},
                          caption=f"kernel{f' {f}' if kernel.shape[0] > 1 else ''}"
                                  + (f" channel {c}" if kernel.shape[1] > 1 else "")))
    parts.append(_operator("="))
    worked = {tuple(entry["index"]): entry for entry in entries}
    for g in range(out.shape[0]):
        styles, texts, titles = _wrong_marks(e.wrong, g)
        if g == f:
            styles.setdefault((i, j), _WINDOW)
        for (p, a, b), entry in worked.items():
            if p == g and (a, b) not in titles:
                titles[a, b] = f"Σ = {format_number(entry['value'])}"
        parts.append(grid(out[g], styles=styles, texts=texts, titles=titles,
                          caption=f"output{f' {g}' if out.shape[0] > 1 else ''}"))
    note = (f'<div style="font-size:12px">Highlighted: the window that makes {escape(name)}'
            + (" (the first wrong entry)" if e.wrong else "")
            + ("; grey: padding" if pads else "") + ".</div>")
    return _panel(parts) + note


def _pool(e: Any) -> str:
    n = e.numbers
    x = np.asarray(n["input"])                                  # (C, H, W)
    out = np.asarray(n["output"])
    (k0, k1), (s0, s1), (p0, p1) = n["size"], n["stride"], n["padding"]
    fill = -np.inf if e.kind == "max_pool" else 0.0
    padded = np.pad(x, ((0, 0), (p0, p0), (p1, p1)), constant_values=fill)
    c, i, j = e.wrong[0]["index"] if e.wrong else (0, 0, 0)
    window = {(i * s0 + u, j * s1 + v) for u in range(k0) for v in range(k1)}
    hp, wp = padded.shape[1:]
    pads = {(r, q) for r in range(hp) for q in range(wp)
            if r < p0 or r >= hp - p0 or q < p1 or q >= wp - p1}
    parts = []
    for ch in range(padded.shape[0]):
        styles = {rc: _PADDING for rc in pads}
        if ch == c:
            styles.update({rc: _WINDOW for rc in window})
        parts.append(grid(padded[ch], styles=styles, caption=("padded input" if pads else "input")
                          + (f" channel {ch}" if padded.shape[0] > 1 else "")))
    parts.append(_operator("→"))
    for ch in range(out.shape[0]):
        styles, texts, titles = _wrong_marks(e.wrong, ch)
        if ch == c:
            styles.setdefault((i, j), _WINDOW)
        parts.append(grid(out[ch], styles=styles, texts=texts, titles=titles,
                          caption="output" + (f" channel {ch}" if out.shape[0] > 1 else "")))
    name = f"Z{c if out.shape[0] > 1 else ''}[{i},{j}]"
    note = (f'<div style="font-size:12px">Highlighted: the {k0}×{k1} window that makes '
            f"{escape(name)}" + (" (the first wrong entry)" if e.wrong else "")
            + ("; grey: padding" if pads else "") + ".</div>")
    return _panel(parts) + note


def _relu(e: Any) -> str:
    x = np.asarray(e.numbers["input"])
    out = np.asarray(e.numbers["output"])
    parts = []
    for c in range(x.shape[0]):
        negative = {(int(i), int(j)): _NEGATIVE for i, j in zip(*np.nonzero(x[c] < 0))}
        parts.append(grid(x[c], styles=negative, caption="input"
                          + (f" channel {c}" if x.shape[0] > 1 else "")))
    parts.append(_operator("→"))
    for c in range(out.shape[0]):
        styles, texts, titles = _wrong_marks(e.wrong, c)
        parts.append(grid(out[c], styles=styles, texts=texts, titles=titles,
                          caption="max(0, x)" + (f" channel {c}" if x.shape[0] > 1 else "")))
    note = '<div style="font-size:12px">Blue: the negative entries, set to 0.</div>'
    return _panel(parts) + note


def _padding(e: Any) -> str:
    from .._display import table

    rows = [(r["scheme"], r["before"], r["after"], r["output"]) for r in e.numbers["schemes"]]
    return table(("scheme", "pixels before", "pixels after", "output size"), rows,
                 right=(False, True, True, True))


_PICTURES = {"conv2d": _conv, "max_pool": _pool, "avg_pool": _pool, "relu": _relu,
             "padding": _padding}


def explanation_html(e: Any) -> str:
    """The HTML of an explanation: the grids (where the operation has them), then the text."""
    picture = _PICTURES.get(e.kind)
    lines = list(e.lines)
    head = f"<div><b>{escape(lines[0])}</b></div>" if lines else ""
    if e.kind == "padding":             # the table replaces the per-scheme lines
        lines = [line for line in lines if not line.startswith("  ") or "refused" in line]
    if picture:                         # the coloured check note says it
        lines = [line for line in lines if not (line.startswith("Check: ") and
                                                line.endswith("right."))]
    body = _sections(lines[1:], _DRAWN if picture else ())
    drawn = picture(e) if picture else ""
    check = ""
    if picture and any(line.startswith("Check: ") for line in e.lines):
        total = int(np.asarray(e.numbers["output"]).size)
        check = _check_note(e.wrong, total)
    return f'<div class="cnnlab-explain">{head}{drawn}{check}{body}</div>'
