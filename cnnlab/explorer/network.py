"""The network view's numbers: a served checkpoint, its feature maps and probabilities for one
image, the worked sum of any value (``explain model``) and that value's receptive field.

Everything here calls the functions the command line calls (``load_trained``,
``model_inputs``, ``predict``, ``summary``, ``explain.model``); it only arranges their results
as JSON data for the browser to draw.
"""

from __future__ import annotations

import base64
import io
import math
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ApiError


@dataclass
class Served:
    """One checkpoint the explorer shows."""

    id: str
    name: str
    checkpoint: Any
    model: Any
    normalize: Any
    classes: list[str]
    input_shape: tuple[int, int, int]
    table: Any                                  # cnnlab.tools.Summary of the model
    lock: threading.Lock = field(default_factory=threading.Lock)
    tests: Any = None                           # its test split, once read
    reading: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> dict[str, Any]:
        metrics = self.checkpoint.metrics or {}
        return {"id": self.id, "name": self.name, "model": self.checkpoint.model_name,
                "data": self.checkpoint.config.get("data"), "classes": self.classes,
                "input_shape": list(self.input_shape), "epoch": self.checkpoint.epoch,
                "val_accuracy": metrics.get("val_accuracy"),
                "summary": self.table.to_dict(), "table": str(self.table)}


def load(path: str | Path, id: str) -> Served:
    """A checkpoint (any file ``load_trained`` accepts) ready to serve."""
    from ..tools import summary
    from ..train.inference import load_trained

    checkpoint, model, normalize = load_trained(path)
    args = checkpoint.model_args
    shape = (int(args.get("in_channels", 1)), int(args.get("input_size", 28)),
             int(args.get("input_size", 28)))
    classes = checkpoint.config.get("classes") or [str(i) for i in range(args["num_classes"])]
    name = Path(checkpoint.path).parent.name + "/" + Path(checkpoint.path).stem
    return Served(id, name, checkpoint, model, normalize, [str(c) for c in classes], shape,
                  summary(model, shape))


def image_input(served: Served, data: bytes) -> np.ndarray:
    """An uploaded image as the model takes it (its channels, size, inversion, standardisation)
    -> ``(C, H, W)``."""
    from ..train.inference import model_inputs
    from .uploads import as_file

    with as_file(data) as path:
        try:
            return model_inputs(served.checkpoint, served.normalize, [path])[0]
        except ValueError:
            raise ApiError("could not decode the image (a damaged or unsupported file).",
                           415) from None


def test_images(served: Served, per_class: int = 1) -> tuple[Any, list[int]]:
    """The test split of the checkpoint's data set and the indices of ``per_class`` images of
    each class (the first ones)."""
    from ..data import load_dataset

    with served.reading:                       # the warm-up thread may be reading them
        if served.tests is None:
            data = served.checkpoint.config.get("data") or "digits"
            try:
                _, test = load_dataset(data, download=False)
            except (ValueError, OSError) as error:
                raise ApiError(f"the test images of {data!r} are not available here: {error}",
                               404) from None
            served.tests = test
    test = served.tests
    picked: list[int] = []
    for label in range(len(test.classes)):
        picked += [int(i) for i in np.flatnonzero(test.labels == label)[:per_class]]
    return test, picked


def sample_input(served: Served, index: Any) -> tuple[np.ndarray, int]:
    """Test image ``index``, standardised as in training, and its true label."""
    test, _ = test_images(served)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(test):
        raise ApiError(f"expected a test image index in 0..{len(test) - 1}, received {index!r}.")
    return served.normalize(test.images[index:index + 1])[0], int(test.labels[index])


def png_data_url(pixels: np.ndarray) -> str:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` -> ``data:image/png;base64,...``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def samples(served: Served) -> list[dict[str, Any]]:
    """One test image per class: index, true label and a PNG to show."""
    test, picked = test_images(served)
    out = []
    for i in picked:
        image = test.images[i]                                          # (C, H, W) in [0, 1]
        pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
        out.append({"index": i, "label": served.classes[int(test.labels[i])],
                    "png": png_data_url(pixels)})
    return out


def grey_levels(values: np.ndarray) -> dict[str, Any]:
    """A layer's output as the page draws it: each map (channel; a vector is one map) stretched
    from its minimum (0, black) to its maximum (255, white), as base64 bytes in C order, with
    the minimum and maximum of each map. (Exact values come with a click: ``explain_value``.)"""
    a = np.asarray(values, dtype=np.float64)
    planes = a.reshape(a.shape[0], -1) if a.ndim == 3 else a.reshape(1, -1)   # (maps, pixels)
    low, high = planes.min(axis=1), planes.max(axis=1)
    span = np.where(high > low, high - low, 1.0)
    levels = np.rint(255 * (planes - low[:, None]) / span[:, None]).astype(np.uint8)
    return {"pixels": base64.b64encode(levels.tobytes()).decode(),
            "low": low.tolist(), "high": high.tolist()}


def forward(served: Served, x: np.ndarray) -> dict[str, Any]:
    """Probabilities and every layer's output for one image ``(C, H, W)``, in one pass."""
    from .. import functional as F
    from ..tools.summary import leaf_activations
    from ..train import predict

    with served.lock:                         # a model's forward pass patches its modules
        seen = leaf_activations(served.model, x[None])
        logits = seen[-1][3]
        if logits.shape == (1, len(served.classes)):          # the last layer gives the scores
            probabilities = F.softmax(logits, dim=1).data[0]
        else:                                                 # e.g. a sum after the last layer
            probabilities = predict(served.model, x[None])[0]
    rows = served.table.rows
    layers = [{"index": -1, "name": "input", "layer": "the image as the network sees it "
               "(standardised)", "shape": list(x.shape), **grey_levels(x)}]
    for position, (name, module, _, out) in enumerate(seen):
        row = rows[position] if position < len(rows) else None
        layers.append({"index": position, "name": name,
                       "layer": row.layer if row else type(module).__name__,
                       "shape": list(out.shape[1:]), **grey_levels(out[0]),
                       "convolution": _is_conv(module)})
    label = int(np.argmax(probabilities))
    return {"label": served.classes[label], "label_index": label, "classes": served.classes,
            "probabilities": [float(p) for p in probabilities], "layers": layers}


def _is_conv(module: Any) -> bool:
    from ..tools.summary import _CONVS

    return (isinstance(module, _CONVS) and not module.transposed
            and len(module.kernel_size) == 2)


def field_box(served: Served, position: int, at: tuple[int, ...]) -> dict[str, Any]:
    """The input pixels that output ``at = (channel, row, column)`` of layer ``position`` sees:
    centre ``start + index·jump``, ``size`` pixels wide (from the model's summary), clipped to
    the image."""
    row = served.table.rows[position]
    height, width = served.input_shape[1:]
    if row.field.whole or len(at) != 3 or len(row.field.size) != 2:
        return {"top": 0, "left": 0, "bottom": height - 1, "right": width - 1, "whole": True,
                "size": None}
    box = {}
    for axis, (first, last), index, limit in (("rows", ("top", "bottom"), at[1], height),
                                               ("columns", ("left", "right"), at[2], width)):
        k = 0 if axis == "rows" else 1
        centre = row.field.start[k] + index * row.field.jump[k]
        half = (row.field.size[k] - 1) / 2
        box[first] = max(0, math.ceil(centre - half))
        box[last] = min(limit - 1, math.floor(centre + half))
    return {**box, "whole": False, "size": list(row.field.size)}


def explain_value(served: Served, x: np.ndarray, position: Any, at: Any) -> dict[str, Any]:
    """One value of layer ``position``: its worked sum (convolutions, as ``cnnlab explain
    model`` prints it) and its receptive field on the input."""
    from ..tools import explain

    rows = served.table.rows
    if isinstance(position, bool) or not isinstance(position, int) or not \
            0 <= position < len(rows):
        raise ApiError(f"expected a layer index in 0..{len(rows) - 1}, received {position!r}.")
    row = rows[position]
    shape = row.output_shape
    if (not isinstance(at, list) or len(at) != len(shape)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in at)):
        raise ApiError(f"expected 'at' as {len(shape)} integers (an index into the layer's "
                       f"output {'×'.join(map(str, shape))}), received {at!r}.")
    if not all(0 <= v < n for v, n in zip(at, shape)):
        raise ApiError(f"'at' {at} is outside layer {row.name}'s output "
                       f"{'×'.join(map(str, shape))}.")
    module = dict(served.model.named_modules())[row.name]
    result: dict[str, Any] = {"layer": row.name, "description": row.layer, "at": at,
                              "box": field_box(served, position, tuple(at))}
    if _is_conv(module):
        with served.lock:
            e = explain.model(served.model, x, row.name, at)
        result.update(text=e.text, value=e.numbers["value"], numbers=e.numbers)
    else:
        with served.lock:
            from ..tools.summary import leaf_activations
            out = leaf_activations(served.model, x[None])[position][3][0]
        value = float(out[tuple(at)])
        result.update(value=value, numbers={"value": value},
                      text=f"layer {row.name} {row.layer}: value {value:.4f} at "
                           f"{tuple(at)}. Worked sums are written out for convolution layers; "
                           f"click a value of one of those.")
    return result


class InputCache:
    """Recent inputs by a random token, so a click on a feature map names its image by token
    (never by a path); the oldest are forgotten."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.items: OrderedDict[str, tuple[str, np.ndarray]] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, model_id: str, x: np.ndarray) -> str:
        token = secrets.token_hex(8)
        with self.lock:
            self.items[token] = (model_id, x)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return token

    def get(self, token: Any, model_id: str) -> np.ndarray:
        with self.lock:
            item = self.items.get(token) if isinstance(token, str) else None
        if item is None or item[0] != model_id:
            raise ApiError("that image is no longer known to the server (or belongs to another "
                           "model); show it again.", 404)
        return item[1]
