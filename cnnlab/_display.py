"""Small helpers for rich display in Jupyter (IPython's display protocol is plain methods).

An object shows as HTML in a notebook when it has ``_repr_html_``, as a picture with
``_repr_png_``; nothing here imports IPython or Jupyter. Tables are plain HTML ``<table>``s,
pictures PNGs made by Pillow (already a dependency) embedded as ``data:`` URIs, and plots come
from matplotlib only when it is installed (:func:`figure_png` returns None otherwise).

>>> table(["x<y"], [[2]]).count("<tr>"), escape("x<y")
(2, 'x&lt;y')
"""

from __future__ import annotations

import base64
import html
import io
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np


def escape(value: Any) -> str:
    """``value`` as text, safe inside HTML (``<``, ``>``, ``&`` and quotes escaped)."""
    return html.escape(str(value), quote=True)


def table(head: Sequence[Any], rows: Sequence[Sequence[Any]], *,
          right: Sequence[bool] = (), caption: str = "",
          row_styles: Sequence[str] = ()) -> str:
    """An HTML table; cells are escaped text; ``right[i]`` right-aligns column ``i`` (numbers)."""

    def align(i: int) -> str:
        return f' style="text-align:{"right" if i < len(right) and right[i] else "left"}"'

    out = ['<table class="cnnlab">']
    if caption:
        out.append(f'<caption style="text-align:left">{escape(caption)}</caption>')
    out.append("<thead><tr>" + "".join(f"<th{align(i)}>{escape(h)}</th>"
                                        for i, h in enumerate(head)) + "</tr></thead><tbody>")
    for r, row in enumerate(rows):
        style = f' style="{row_styles[r]}"' if r < len(row_styles) and row_styles[r] else ""
        out.append(f"<tr{style}>" + "".join(f"<td{align(i)}>{escape(c)}</td>"
                                            for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An image ``(H, W)``, ``(H, W, 3)`` or ``(C, H, W)`` with C in (1, 3) as uint8 pixels.

    uint8 is kept; floats in ``[0, 1]`` are scaled by 255; other values are stretched from their
    minimum (black) to their maximum (white).
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)                                   # (C, H, W) -> (H, W, C)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W), (H, W, 3) or (C, H, W), received shape "
                         f"{a.shape}.")
    if a.dtype == np.uint8:
        return a
    a = np.asarray(a, dtype=np.float64)
    low, high = float(np.nanmin(a)), float(np.nanmax(a))
    if low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    scale = 255 / (high - low) if high > low else 0.0
    return np.clip(np.rint((a - low) * scale), 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """The image (see :func:`to_uint8`) as PNG bytes, each pixel ``scale``×``scale``."""
    from PIL import Image

    pixels = to_uint8(image)
    if scale > 1:
        pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def img_tag(png: bytes, alt: str = "", style: str = "") -> str:
    """An ``<img>`` with the PNG embedded as a ``data:`` URI (the notebook keeps it)."""
    data = base64.b64encode(png).decode("ascii")
    extra = f' style="{style}"' if style else ""
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}"{extra}>'


def image_grid(images: Sequence[np.ndarray], labels: Sequence[str], *, columns: int = 10,
               size: int = 56, caption: str = "") -> str:
    """Images with a label under each, ``columns`` a row, each shown ``size`` pixels wide."""
    cells = []
    for image, label in zip(images, labels):
        pixels = to_uint8(image)
        scale = max(1, size // max(pixels.shape[1], 1))
        cells.append(
            '<figure style="margin:2px;text-align:center;display:inline-block">'
            + img_tag(png_bytes(pixels, scale), label,
                      f"width:{size}px;image-rendering:pixelated")
            + f'<figcaption style="font-size:11px">{escape(label)}</figcaption></figure>')
    rows = ["<div>" + "".join(cells[i:i + columns]) + "</div>"
            for i in range(0, len(cells), columns)]
    head = f"<div><b>{escape(caption)}</b></div>" if caption else ""
    return f'<div class="cnnlab">{head}{"".join(rows)}</div>'


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (rendered by Agg; the figure is not shown or kept)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell that talks to a notebook front end)."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    shell = ipython.get_ipython()
    return shell is not None and hasattr(shell, "kernel")


_COLUMNS = (("epoch", "epoch", "{:d}"), ("loss", "loss", "{:.4f}"),
            ("accuracy", "accuracy", "{:.4f}"), ("val_loss", "val loss", "{:.4f}"),
            ("val_accuracy", "val accuracy", "{:.4f}"), ("lr", "lr", "{:g}"),
            ("seconds", "seconds", "{:.1f}"), ("images_per_s", "images/s", "{:,.0f}"))


def curves_html(epochs: Sequence[dict[str, float]], stopped_early: bool = False) -> str:
    """A training history: one table row per epoch and, with matplotlib, loss and accuracy."""
    present = [c for c in _COLUMNS if any(c[0] in e for e in epochs)]
    rows = [[fmt.format(int(e[key]) if key == "epoch" else e[key]) if key in e else ""
             for key, _, fmt in present] for e in epochs]
    caption = f"{len(epochs)} epoch{'s' if len(epochs) != 1 else ''}" + (
        ", stopped early" if stopped_early else "")
    text = table([label for _, label, _ in present], rows, right=[True] * len(present),
                 caption=caption)
    if not epochs or not matplotlib_available():
        return text
    plot = img_tag(figure_png(curves_figure(epochs)), "loss and accuracy per epoch",
                   "max-width:640px")
    return (f'<div style="display:flex;flex-wrap:wrap;align-items:flex-start;gap:16px">'
            f"<div>{text}</div><div>{plot}</div></div>")


def curves_figure(epochs: Sequence[dict[str, float]]):
    """Loss and accuracy per epoch, training and validation (a matplotlib ``Figure``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 2.8))
    axes = fig.subplots(1, 2)
    plot_curves(axes, epochs, [e.get("epoch", number) for number, e in enumerate(epochs, start=1)],
                legend_size=8)
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set_title(key, fontsize=10)
    fig.tight_layout()
    return fig


def plot_curves(axes, epochs: Sequence[dict[str, float]], x: Sequence[float], *,
                legend_size: float | None = None) -> None:
    """Loss on ``axes[0]`` and accuracy on ``axes[1]`` at epochs ``x``: training as circles
    and lines, validation as squares and dashes, an epoch without a value left out (used by
    the notebook display and by ``cnnlab.tools.viz.curves``)."""
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style, name in (("", "o-", "training"), ("val_", "s--", "validation")):
            values = [e.get(prefix + key) for e in epochs]
            if any(v is not None for v in values):
                ax.plot(x, [np.nan if v is None else v for v in values], style, label=name,
                        markersize=4)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=legend_size)
        ax.xaxis.get_major_locator().set_params(integer=True)
