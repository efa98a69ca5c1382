"""Classic image filtering with named kernels, computed by the same convolution the networks use.

Every filter is a cross-correlation (as in the lecture and every DL framework) of each image
channel with a small kernel, run by :func:`cnnlab.functional.conv2d` with ``groups = channels``
and ``padding="same"`` (or ``"valid"``); borders are ``zeros``, ``reflect``, ``replicate`` or
``circular``. Responses are floats in pixel units (0…255 input); :func:`to_pixels` maps signed
responses back to an 8-bit image (``clip``, ``abs`` or ``normalize``), and :func:`equalize`
spreads an 8-bit histogram.

Named kernels (parameters after a colon, e.g. ``gaussian:sigma=2,size=9``; :func:`describe`
lists them): ``identity``, ``box``, ``gaussian``, ``sobel-x``, ``sobel-y``, ``sobel`` (gradient
magnitude ``√(gx² + gy²)``), ``prewitt-x/y``, ``scharr-x/y``, ``laplacian`` (4 or 8
neighbours), ``edge`` (the lecture's −1 … 8 … −1), ``vertical-edge`` (``[1 0 −1]`` rows),
``horizontal-edge``, ``sharpen``, ``high-pass`` (−1/9 … 8/9), ``emboss``; or any matrix typed as
``"a b c; d e f; g h i"``.

Example:
    >>> import numpy as np
    >>> step = np.zeros((5, 6)); step[:, 3:] = 90           # dark left half, bright right half
    >>> apply(step, "sobel-x", border="replicate")[2]
    array([  0.,   0., 360., 360.,   0.,   0.])
    >>> print(format_kernel("sharpen"))
     0  -1   0
    -1   5  -1
     0  -1   0
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .matrices import format_matrix, parse_matrix

BORDERS = ("zeros", "reflect", "replicate", "circular", "valid")
MAPPINGS = ("clip", "abs", "normalize")


@dataclass(frozen=True)
class Filter:
    """A named filter: its kernels (one, or two combined into a gradient magnitude)."""

    name: str
    description: str
    build: Callable[..., list[np.ndarray]]
    params: dict[str, Any] = field(default_factory=dict)     # name -> default

    def kernels(self, **params: Any) -> list[np.ndarray]:
        unknown = set(params) - set(self.params)
        if unknown:
            known = ", ".join(self.params) or "none"
            raise ValueError(f"filter {self.name!r}: unknown parameter "
                             f"{', '.join(sorted(unknown))} (its parameters: {known}).")
        return [np.asarray(k, dtype=np.float64) for k in self.build(**{**self.params, **params})]


def _odd_size(size: Any, name: str) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, float)) or size != int(size) \
            or size < 1 or int(size) % 2 == 0:
        raise ValueError(f"filter {name!r}: size must be an odd positive integer, received "
                         f"{size!r}.")
    return int(size)


def _identity(size: int) -> list[np.ndarray]:
    size = _odd_size(size, "identity")
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1
    return [k]


def _box(size: int) -> list[np.ndarray]:
    size = _odd_size(size, "box")
    return [np.full((size, size), 1 / size ** 2)]


def _gaussian(sigma: float, size: int) -> list[np.ndarray]:
    """``exp(-(x² + y²) / 2σ²)`` sampled on the grid, normalised to sum 1; size 0: ``2⌈3σ⌉+1``."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"filter 'gaussian': sigma must be a positive number, received "
                         f"{sigma!r}.")
    size = 2 * math.ceil(3 * sigma) + 1 if size == 0 else _odd_size(size, "gaussian")
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return [g / g.sum()]


def _laplacian(neighbours: int) -> list[np.ndarray]:
    if neighbours == 4:
        return [[[0, 1, 0], [1, -4, 1], [0, 1, 0]]]
    if neighbours == 8:
        return [[[1, 1, 1], [1, -8, 1], [1, 1, 1]]]
    raise ValueError(f"filter 'laplacian': neighbours must be 4 or 8, received {neighbours!r}.")


def _fixed(*kernels: list[list[float]]) -> Callable[[], list[np.ndarray]]:
    return lambda: [np.array(k, dtype=np.float64) for k in kernels]


_SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
_SOBEL_Y = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]

FILTERS: dict[str, Filter] = {f.name: f for f in (
    Filter("identity", "leaves the image as it is (1 in the centre)", _identity, {"size": 3}),
    Filter("box", "mean of the size×size neighbourhood (blur)", _box, {"size": 3}),
    Filter("gaussian", "Gaussian blur; size 0 means 2·ceil(3·sigma)+1", _gaussian,
           {"sigma": 1.0, "size": 0}),
    Filter("sobel-x", "horizontal derivative: positive where it gets brighter to the right",
           _fixed(_SOBEL_X)),
    Filter("sobel-y", "vertical derivative: positive where it gets brighter downwards",
           _fixed(_SOBEL_Y)),
    Filter("sobel", "gradient magnitude √(sobel-x² + sobel-y²)", _fixed(_SOBEL_X, _SOBEL_Y)),
    Filter("prewitt-x", "horizontal derivative, unweighted rows",
           _fixed([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]])),
    Filter("prewitt-y", "vertical derivative, unweighted columns",
           _fixed([[-1, -1, -1], [0, 0, 0], [1, 1, 1]])),
    Filter("scharr-x", "horizontal derivative, better rotation symmetry than Sobel",
           _fixed([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]])),
    Filter("scharr-y", "vertical derivative, better rotation symmetry than Sobel",
           _fixed([[-3, -10, -3], [0, 0, 0], [3, 10, 3]])),
    Filter("laplacian", "second derivative (4 or 8 neighbours): zero on flat areas and ramps",
           _laplacian, {"neighbours": 4}),
    Filter("edge", "the lecture's edge detector: 8 in the centre, -1 around",
           _fixed([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])),
    Filter("vertical-edge", "the lecture's vertical edge detector [1 0 -1] in every row",
           _fixed([[1, 0, -1], [1, 0, -1], [1, 0, -1]])),
    Filter("horizontal-edge", "the lecture's horizontal edge detector [1 1 1; 0 0 0; -1 -1 -1]",
           _fixed([[1, 1, 1], [0, 0, 0], [-1, -1, -1]])),
    Filter("sharpen", "the image plus its 4-neighbour Laplacian detail",
           _fixed([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])),
    Filter("high-pass", "the pixel minus its 3×3 mean: 8/9 in the centre, -1/9 around",
           lambda: [np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]) / 9]),
    Filter("emboss", "relief lit from the top left", _fixed([[-2, -1, 0], [-1, 1, 1],
                                                             [0, 1, 2]])),
)}


def names() -> list[str]:
    """The named filters, in the order :func:`describe` lists them."""
    return list(FILTERS)


def describe() -> str:
    """One line per named filter: name, parameters with their defaults, what it does."""
    lines = []
    for f in FILTERS.values():
        params = ",".join(f"{k}={v}" for k, v in f.params.items())
        lines.append(f"{f.name + (':' + params if params else ''):<26} {f.description}")
    matrix = '"a b c; d e f; g h i"'
    lines.append(f"{matrix:<26} any matrix (rows split by ';', values by spaces or commas, "
                 f"fractions like -1/9)")
    return "\n".join(lines)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"gaussian:sigma=2,size=9"`` -> ``("gaussian", {"sigma": 2.0, "size": 9})``."""
    name, _, rest = spec.strip().partition(":")
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; expected one of {', '.join(FILTERS)}, or a "
                         f"matrix such as '0 -1 0; -1 5 -1; 0 -1 0'.")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"filter {name!r}: expected parameters as key=value, received "
                             f"{item!r}.")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"filter {name!r}: {key.strip()} must be a number, received "
                             f"{value!r}.") from None
        params[key.strip()] = int(number) if number.is_integer() and "." not in value else number
    return name, params


def kernels(spec: str | np.ndarray, **params: Any) -> list[np.ndarray]:
    """The kernel(s) of a filter: a name (with ``:k=v`` parameters), a matrix string or array.

    Two kernels mean a gradient magnitude (``sobel``); every other filter has one.
    """
    if isinstance(spec, np.ndarray) or (isinstance(spec, Sequence) and not isinstance(spec, str)):
        k = np.asarray(spec, dtype=np.float64)
        if k.ndim != 2 or 0 in k.shape:
            raise ValueError(f"a kernel must be a 2-D matrix, received shape {k.shape}.")
        return [k]
    if not isinstance(spec, str):
        raise TypeError(f"a filter is a name, a matrix string or an array, received "
                        f"{type(spec).__name__}.")
    if re.match(r"^\s*[A-Za-z]", spec):
        name, parsed = parse_spec(spec)
        return FILTERS[name].kernels(**{**parsed, **params})
    return [parse_matrix(spec, "kernel")]


def format_kernel(spec: str | np.ndarray, **params: Any) -> str:
    """The kernel(s) as aligned text (the two of ``sobel`` one after the other)."""
    return "\n\n".join(format_matrix(k) for k in kernels(spec, **params))


def apply(image: np.ndarray, spec: str | np.ndarray, *, border: str = "zeros",
          stride: int = 1, dilation: int = 1, **params: Any) -> np.ndarray:
    """Filter an image: each channel cross-correlated with the kernel, by the engine's conv2d.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` (as read from a file), any real dtype; values are used
            as they are (0…255 for 8-bit pictures).
        spec: a filter name (``"gaussian:sigma=2"``), a matrix string or a 2-D array.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` (the output keeps
            ``ceil(size / stride)`` pixels, TensorFlow's 'SAME' rule), or ``"valid"`` (no
            padding: ``floor((n - d·(k-1) - 1) / s) + 1``).
        stride, dilation: as in a conv layer.
        **params: filter parameters (override those in ``spec``).

    Returns:
        float64 responses in the image's layout; signed for derivative kernels (see
        :func:`to_pixels`).
    """
    from .. import functional as F

    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}, received {border!r}.")
    x = np.asarray(image, dtype=np.float64)
    if x.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W) or (H, W, C), received shape {x.shape}.")
    planes = np.ascontiguousarray(np.moveaxis(x if x.ndim == 3 else x[..., None], -1, 0))[None]
    channels = planes.shape[1]
    responses = []
    for k in kernels(spec, **params):
        w = np.ascontiguousarray(np.broadcast_to(k, (channels, 1, *k.shape)))
        y = F.conv2d(planes, w, stride=stride, dilation=dilation, groups=channels,
                     padding="valid" if border == "valid" else "same",
                     padding_mode="zeros" if border == "valid" else border)
        responses.append(y.data[0])                                      # (C, H', W')
    out = responses[0] if len(responses) == 1 else np.hypot(*responses)
    return np.moveaxis(out, 0, -1) if x.ndim == 3 else out[0]


def resolve_mapping(mapping: str, spec: str | np.ndarray) -> str:
    """``"auto"`` -> ``"abs"`` when every kernel of ``spec`` sums to 0 (edge detectors: both
    signs matter), else ``"clip"``; any other mapping is returned as it is."""
    if mapping != "auto":
        return mapping
    return "abs" if all(abs(k.sum()) < 1e-9 for k in kernels(spec)) else "clip"


def to_pixels(response: np.ndarray, mapping: str = "clip") -> np.ndarray:
    """Filter responses -> uint8 pixels.

    ``clip``: round and clip to 0…255 (negative responses become black); ``abs``: the magnitude
    ``|r|``, clipped (edges of both signs light up); ``normalize``: ``min…max`` stretched to
    0…255 (a constant response gives 0).
    """
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {', '.join(MAPPINGS)}, received {mapping!r}.")
    r = np.asarray(response, dtype=np.float64)
    if mapping == "abs":
        r = np.abs(r)
    elif mapping == "normalize":
        low, high = float(r.min()), float(r.max())
        r = (r - low) * (255 / (high - low)) if high > low else np.zeros_like(r)
    return np.clip(np.rint(r), 0, 255).astype(np.uint8)


def equalize(pixels: np.ndarray) -> np.ndarray:
    """Histogram equalisation of a uint8 image.

    Each grey value ``v`` maps to ``round(255 · (cdf(v) - cdf_min) / (n - cdf_min))``, where
    ``cdf`` counts the pixels ``≤ v``: the used levels spread over the whole range. A colour
    image is equalised on its brightness ``V = max(R, G, B)`` and every pixel's RGB scaled by
    ``V_new / V``, which keeps hues (equalising R, G and B apart shifts the colours). A
    constant image is left as it is.
    """
    p = np.asarray(pixels)
    if p.dtype != np.uint8:
        raise ValueError(f"equalize expects uint8 pixels (use to_pixels first), received "
                         f"{p.dtype}.")
    if p.ndim == 3:
        v = p.max(axis=-1)
        scale = _equalize_table(v)[v] / np.maximum(v, 1).astype(np.float64)
        return np.clip(np.rint(p * scale[..., None]), 0, 255).astype(np.uint8)
    return _equalize_table(p)[p]


def _equalize_table(p: np.ndarray) -> np.ndarray:
    """The 256-entry lookup table that equalises the histogram of ``p`` (uint8)."""
    cdf = np.cumsum(np.bincount(p.ravel(), minlength=256))
    low = cdf[cdf > 0][0]
    if cdf[-1] == low:                                   # one grey level: nothing to spread
        return np.arange(256, dtype=np.uint8)
    return np.rint((cdf - low) * (255 / (cdf[-1] - low))).clip(0, 255).astype(np.uint8)


def grid(panels: Sequence[tuple[str, np.ndarray]], columns: int = 0):
    """A titled grid of uint8 images (``(H, W)`` or ``(H, W, 3)``) as one Pillow image.

    Smaller panels (strided results) are enlarged to the first panel's size, pixel by pixel.
    ``columns`` 0 chooses up to 4 a row, the rows as evenly filled as possible.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not panels:
        raise ValueError("grid needs at least one panel.")
    height, width = panels[0][1].shape[:2]
    columns = columns or -(-len(panels) // -(-len(panels) // 4))    # ≤ 4 a row, rows even
    rows = -(-len(panels) // columns)
    font = ImageFont.load_default(size=max(12, min(24, width // 14)))
    title_h = font.size + 10
    gap = 8
    sheet = Image.new("RGB", (columns * (width + gap) + gap,
                              rows * (height + title_h + gap) + gap), (224, 224, 224))
    draw = ImageDraw.Draw(sheet)
    for i, (title, pixels) in enumerate(panels):
        picture = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")
        if picture.size != (width, height):
            picture = picture.resize((width, height), Image.Resampling.NEAREST)
        x = gap + (i % columns) * (width + gap)
        y = gap + (i // columns) * (height + title_h + gap)
        while draw.textlength(title, font=font) > width and len(title) > 4:
            title = title.rstrip("…")[:-1] + "…"            # shorten until it fits
        draw.text((x, y + 2), title, fill="black", font=font)
        sheet.paste(picture, (x, y + title_h))
    return sheet
