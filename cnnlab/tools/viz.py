"""Pictures of what a network learned and did (matplotlib, the optional extra ``viz``).

- :func:`filter_bank` — the kernels of a convolution layer, one small image each, on one
  symmetric colour scale (blue negative, red positive, white 0) with a colour bar;
- :func:`feature_maps` — the output channels of every convolution, activation and pooling layer
  for one input image, a row per layer;
- :func:`training_curves` — loss and accuracy per epoch from a ``history.json``;
- :func:`confusion_matrix` — counts per true and predicted class, shaded by the row's share.

Each returns a matplotlib ``Figure`` and, given ``out``, saves it (PNG at 150 dpi, written
atomically). In a notebook the returned figure shows as the cell's value (``display(fig)``
elsewhere in a cell), once. ``pip install "cnnlab[viz]"`` installs matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..nn import Module


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the pictures need matplotlib: pip install 'cnnlab[viz]'.") from None
    from .._display import in_notebook

    if not in_notebook():           # a notebook keeps its inline backend, which shows figures
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out: str | Path | None):
    from .._display import in_notebook

    if out is not None:
        path = Path(out)
        tmp = path.with_name(path.name + ".tmp" + path.suffix)
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
        tmp.replace(path)
    if in_notebook():
        # shown once, as the cell's value (or with display(fig)), not again when the cell ends
        _pyplot().close(fig)
    return fig


def _conv_layers(model: Module) -> list[tuple[str, Module]]:
    from .summary import _CONVS
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _CONVS)]


def filter_bank(model: Module, layer: str | None = None, out: str | Path | None = None,
                max_filters: int = 64):
    """The kernels of a convolution layer (default: the first), as a grid of small images.

    Rows are output channels (filters), columns input channels; one symmetric colour scale for
    all, so a kernel's colours compare across the grid. At most ``max_filters`` filters.
    """
    plt = _pyplot()
    convs = _conv_layers(model)
    if not convs:
        raise ValueError("the model has no convolution layer to show.")
    names = [name for name, _ in convs]
    if layer is None:
        name, conv = convs[0]
    elif layer in names:
        name, conv = convs[names.index(layer)]
    else:
        raise ValueError(f"layer {layer!r} is not a convolution of this model; its convolutions: "
                         f"{', '.join(names)}.")
    w = np.asarray(conv.weight.data, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"filter pictures need a 2-D convolution; {name} has kernels of shape "
                         f"{w.shape[2:]}.")
    w = w[:max_filters]
    filters, channels = w.shape[:2]
    # one row of filters per input channel when there are few input channels (RGB, grey)
    per_row = min(filters, 16) if channels <= 3 else channels
    rows = math.ceil(filters / per_row) * channels if channels <= 3 else filters
    cols = per_row
    limit = float(np.abs(w).max()) or 1.0
    fig, axes = plt.subplots(rows, cols, figsize=(0.6 * cols + 1.6, 0.6 * rows + 0.9),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.set_axis_off()
    image = None
    for f in range(filters):
        for c in range(channels):
            if channels <= 3:
                r, col = (f // per_row) * channels + c, f % per_row
            else:
                r, col = f, c
            ax = axes[r, col]
            image = ax.imshow(w[f, c], cmap="RdBu_r", vmin=-limit, vmax=limit,
                              interpolation="nearest")
            if (channels <= 3 and r % channels == 0) or (channels > 3 and r == 0):
                ax.set_title(str(f) if channels <= 3 else f"in {c}", fontsize=7)
            if channels > 3 and col == 0:
                ax.text(-0.6, 0.5, f"out {f}", transform=ax.transAxes, fontsize=7,
                        ha="right", va="center")
    from .summary import describe
    fig.suptitle(f"layer {name} {describe(conv)}: {filters} filters of {w.shape[2]}×{w.shape[3]}"
                 f"{' × ' + str(channels) + ' channels' if channels > 1 else ''}"
                 f"{' (rows: input channels)' if 1 < channels <= 3 else ''}", fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.6, aspect=30, label="weight")
    return _save(fig, out)


def activations(model: Module, x: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
    """``(name, layer, output)`` of every leaf layer for one input ``x (C, H, W)`` (batch 1)."""
    from .summary import describe, leaf_activations

    batch = np.asarray(x, dtype=np.float32)[None]
    return [(name, describe(module), out)
            for name, module, _, out in leaf_activations(model, batch)]


def feature_maps(model: Module, x: np.ndarray, out: str | Path | None = None,
                 channels: int = 8, title: str = ""):
    """The first ``channels`` output channels of every layer that keeps a spatial map.

    One row per layer (convolution, activation, pooling, normalisation), the input first; each
    map on its own grey scale (black its lowest value, white its highest).
    """
    plt = _pyplot()
    rows = [("input", "", np.asarray(x, dtype=np.float64)[None])]
    rows += [(n, d, a) for n, d, a in activations(model, x) if a.ndim == 4]
    cols = max(min(channels, a.shape[1]) for _, _, a in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.1 * cols + 2.6, 1.15 * len(rows) + 0.4),
                             squeeze=False, layout="constrained")
    for r, (name, layer, a) in enumerate(rows):
        maps = a[0]
        for c in range(cols):
            ax = axes[r, c]
            ax.set_axis_off()
            if c < min(channels, maps.shape[0]):
                ax.imshow(maps[c], cmap="gray", interpolation="nearest")
        label = f"{name} {layer}".strip() if name != "input" else "input"
        size = "×".join(str(v) for v in maps.shape[1:]) + f"×{maps.shape[0]}"
        axes[r, 0].text(-0.15, 0.5, f"{label}\n{size}", transform=axes[r, 0].transAxes,
                        fontsize=7, ha="right", va="center")
    fig.suptitle(f"{title or 'feature maps'}: channels 0–{cols - 1} of each layer, each map on "
                 f"its own grey scale (black its lowest value, white its highest)", fontsize=9)
    return _save(fig, out)


def _kind_hint(path: Path) -> str:
    if path.suffix.lower() in (".npz", ".safetensors", ".onnx"):
        return ", received a model file (viz filters, features and confusion take those)"
    return ", received a file that is not JSON"


def training_curves(history: Mapping[str, Any] | str | Path, out: str | Path | None = None):
    """Loss and accuracy per epoch (training and validation) from ``history.json`` or its dict."""
    import json

    plt = _pyplot()
    if isinstance(history, (str, Path)):
        path = Path(history)
        path = path / "history.json" if path.is_dir() else path
        try:
            history = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError(f"{path} is not a training history: expected a training folder or "
                             f"its history.json (JSON text){_kind_hint(path)}.") from None
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read a training history from {path}: {error}.") from None
    epochs = history.get("epochs") if isinstance(history, Mapping) else None
    if not epochs:
        raise ValueError("the history has no epochs (expected {'epochs': [{'loss': ...}, ...]}).")
    from .._display import plot_curves

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    plot_curves((left, right), epochs, [e["epoch"] for e in epochs])
    left.set_ylabel("loss")
    right.set_ylabel("accuracy")
    best = max(epochs, key=lambda e: e.get("val_accuracy", -1))
    if "val_accuracy" in best:
        right.set_title(f"best validation accuracy {best['val_accuracy']:.4f} "
                        f"(epoch {best['epoch']})", fontsize=9)
    left.set_title("loss per epoch", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def confusion_matrix(matrix: np.ndarray, classes: Sequence[str], out: str | Path | None = None,
                     title: str = ""):
    """Counts per true class (rows) and predicted class (columns), shaded by each row's share."""
    plt = _pyplot()
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(classes):
        raise ValueError(f"expected a square matrix with one row per class ({len(classes)}), "
                         f"received shape {m.shape}.")
    from matplotlib.colors import PowerNorm

    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(0.55 * k + 2.6, 0.5 * k + 1.6))
    # a power scale: a few percent of a class going astray is still visibly shaded
    image = ax.imshow(share, cmap="Blues", norm=PowerNorm(0.4, vmin=0, vmax=1))
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black" if m[i, j] else "#bbbbbb")
    long = max(len(str(c)) for c in classes) > 2
    ax.set_xticks(range(k), classes, rotation=45 if long else 0, ha="right" if long else "center",
                  fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(m) / max(m.sum(), 1)
    ax.set_title(title or f"confusion matrix, accuracy {accuracy:.4f}", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    fig.tight_layout()
    return _save(fig, out)
