"""Reading one image file: the one reader behind every command, with a pixel cap and bit depths.

Images are read with Pillow, imported only here, when images are read. The rules:

- **A pixel cap before decoding.** The width and height are read from the file's header; an
  image of more than ``max_pixels`` pixels (default :data:`MAX_PIXELS` = 25,000,000, or
  ``$CNNLAB_MAX_PIXELS``; ``--max-pixels`` on the command line) is refused with one sentence
  before any pixel is decoded: a 79 KB PNG can declare 9,000 × 9,000 pixels and take gigabytes.
  Pillow's own decompression-bomb error becomes the same sentence.
- **Bit depths.** 8-bit images (modes ``1``, ``L``, ``P``, ``RGB``...) give values ``v / 255``.
  16-bit integer images give ``v / 65535`` and 32-bit signed integer images
  ``v / (2**31 - 1)`` (the full range of their type, as ``skimage.img_as_float`` scales them) —
  never clipped to 8 bits. Floating-point images (``F``, e.g. float TIFFs) are read as the
  floats they hold.
- **Colour.** Transparent parts are composited onto white, as an image viewer shows them. An
  RGB file whose three channels are equal counts as grey.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._validate import _is_int

#: default pixel cap (width × height): a 5,000 × 5,000 photograph; ``$CNNLAB_MAX_PIXELS`` changes it
MAX_PIXELS = 25_000_000
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".pgm", ".ppm", ".pbm", ".pnm"})
_DEEP = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0,
         "I": 2.0 ** 31 - 1, "F": 1.0}     # mode -> the value that reads as 1.0


def pixel_cap(value: int | None = None) -> int:
    """The pixel cap in force: ``value``, else ``$CNNLAB_MAX_PIXELS``, else :data:`MAX_PIXELS`."""
    if value is None:
        text = os.environ.get("CNNLAB_MAX_PIXELS", "").strip()
        if not text:
            return MAX_PIXELS
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise ValueError(f"$CNNLAB_MAX_PIXELS must be a positive integer (a pixel count), "
                             f"received {text!r}.") from None
    if not _is_int(value) or value <= 0:
        raise ValueError(f"max_pixels must be a positive integer, received {value!r}.")
    return int(value)


def read_image(path: str | os.PathLike, channels: int | None = None,
               size: int | tuple[int, int] | None = None, invert: bool | str = False, *,
               max_pixels: int | None = None) -> np.ndarray:
    """One image file as a float32 ``(C, H, W)`` array, ready for a model.

    Args:
        path: any image file Pillow reads (PNG, JPEG, BMP, GIF, TIFF, WebP, PNM...).
        channels: 1 (grayscale) or 3 (RGB); default 1 for a grey image, else 3.
        size: resize (bilinear) to ``H`` (= ``W``) or ``(H, W)``; default the image's size.
        invert: ``True`` gives ``1 - x``; ``"auto"`` inverts when the border is light (mean
            above 0.5), so dark-on-white drawings look like MNIST's white-on-black digits.
        max_pixels: refuse larger images (default: see :func:`pixel_cap`).

    Returns:
        Values in [0, 1] for integer images (8, 16 or 32 bits, scaled to their type's range);
        a float image's own values.

    Shape:
        ``(channels, H, W)``.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> file = Path(tempfile.mkdtemp()) / "white.png"
        >>> Image.new("RGB", (20, 10), "white").save(file)
        >>> x = read_image(file, channels=1, size=28, invert="auto")
        >>> x.shape, float(x.max())
        ((1, 28, 28), 0.0)
    """
    if invert not in (True, False, "auto"):
        raise ValueError(f"invert must be True, False or 'auto', received {invert!r}.")
    image = open_image(path, channels, max_pixels=max_pixels)
    size = check_size(size)
    array = to_array(image, size or (image.height, image.width),
                     channels or (3 if has_colour(image) else 1))
    x = (array.astype(np.float32) / np.float32(255) if array.dtype == np.uint8
         else array.astype(np.float32))                                   # (C, H, W)
    if invert is True or (invert == "auto" and border_mean(x) > 0.5):
        x = 1 - x
    return x


def read_pixels(path: str | os.PathLike, channels: int | None = None, *,
                max_pixels: int | None = None) -> np.ndarray:
    """One image file as its pixels: ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB) on the 0…255 scale.

    An 8-bit image gives its uint8 pixels; a 16-bit, 32-bit or float image gives float64 values
    scaled to 0…255 (see the module doc), its finer levels kept. ``channels`` 1 or 3 converts;
    the default keeps a grey image grey (also an RGB file whose three channels are equal) and a
    colour one RGB. Transparency is composited onto white.
    """
    image = open_image(path, channels, max_pixels=max_pixels)
    array = to_array(image, (image.height, image.width),
                     channels or (3 if has_colour(image) else 1))
    if array.dtype != np.uint8:
        array = array.astype(np.float64) * 255
    return array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0))


def border_mean(x: np.ndarray) -> float:
    """The mean of the outermost rows and columns of ``(C, H, W)`` or ``(N, C, H, W)`` images
    (how light their background is: 0 black, 1 white)."""
    x = np.asarray(x)
    edges = [x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]]
    return float(sum(float(e.sum(dtype=np.float64)) for e in edges)
                 / sum(e.size for e in edges))


def open_image(path: str | os.PathLike, channels: int | None = None, *,
               max_pixels: int | None = None):
    """The decoded image in mode ``L``, ``RGB`` or ``F`` (deeper than 8 bits, scaled to 0…1),
    transparency composited onto white; too many pixels are refused before decoding."""
    from PIL import Image, UnidentifiedImageError

    file = Path(path).expanduser()
    if file.is_dir():
        raise IsADirectoryError(f"Expected an image file, received the folder {file}.")
    if not file.is_file():
        raise FileNotFoundError(f"Image file not found: {file}.")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, received {channels!r}.")
    cap = pixel_cap(max_pixels)
    if Image.MAX_IMAGE_PIXELS is not None and cap > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = cap        # our cap is checked below; Pillow's must not be lower
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                pixels = image.width * image.height       # from the header, nothing decoded yet
                if pixels > cap:
                    raise _TooLarge(f"{image.width:,}×{image.height:,} = {pixels:,} pixels")
                image.load()
                return _normalise_mode(image)
    except (_TooLarge, Image.DecompressionBombError) as error:
        size = f" ({error})" if isinstance(error, _TooLarge) else ""
        raise ValueError(f"The image {file}{size} is refused: more than the limit of {cap:,} "
                         f"pixels (a guard against images that take gigabytes to decode); if "
                         f"you trust it, raise the limit with --max-pixels N or "
                         f"$CNNLAB_MAX_PIXELS.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError) as error:
        raise ValueError(f"Cannot read the image {file}: {str(error).rstrip('.')}.") from None


class _TooLarge(Exception):
    """An image over the pixel cap (its size in the message)."""


def _normalise_mode(image):
    from PIL import Image

    if image.mode in _DEEP:
        scale = _DEEP[image.mode]
        values = np.asarray(image, dtype=np.float64 if image.mode == "I" else np.float32)
        if values.ndim != 2:
            raise ValueError(f"mode {image.mode} with shape {values.shape} is not one plane")
        values = (values / scale).astype(np.float32)
        if not np.all(np.isfinite(values)):
            raise ValueError("it holds NaN or infinite values")
        return Image.fromarray(values, mode="F")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("L" if image.mode in ("1", "L") else "RGB")


def has_colour(image) -> bool:
    if image.mode in ("L", "F"):
        return False
    rgb = np.asarray(image)
    return bool(np.any(rgb[..., 0] != rgb[..., 1]) or np.any(rgb[..., 1] != rgb[..., 2]))


def to_array(image, size: tuple[int, int], channels: int) -> np.ndarray:
    """``(channels, H, W)`` at ``size`` = ``(H, W)``: uint8 for an 8-bit image, float32 for an
    ``F`` one (its channels repeated for RGB)."""
    from PIL import Image

    if image.mode == "F":
        if (image.height, image.width) != size:
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        plane = np.asarray(image, dtype=np.float32)
        return np.repeat(plane[None], channels, axis=0)
    image = image.convert("L" if channels == 1 else "RGB")
    if (image.height, image.width) != size:
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)     # (C, H, W)


def check_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if _is_int(size):
        size = (size, size)
    if (isinstance(size, Sequence) and len(size) == 2 and all(_is_int(s) and s > 0
                                                              for s in size)):
        return int(size[0]), int(size[1])
    raise ValueError(f"size must be a positive int or a pair (H, W) of them, received {size!r}.")


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder`` (by extension, hidden files skipped), sorted."""
    return sorted(f for f in Path(folder).iterdir() if f.is_file() and not f.name.startswith(".")
                  and f.suffix.lower() in IMAGE_EXTENSIONS)
