"""Image files as datasets: ``load_image_folder`` (class subfolders) and ``read_image`` (one file).

Images are read with Pillow, imported only here, when images are read. The rules:

- Class = subfolder name, classes sorted by name (as ``torchvision.datasets.ImageFolder``).
  Files whose extension is not an image's (``IMAGE_EXTENSIONS``) and hidden files are skipped.
- If the folder has exactly the subfolders ``train`` and ``test``, each holding the class
  subfolders, that split is used as it is; otherwise each class is split ``1 - test_fraction`` /
  ``test_fraction`` by a seeded, stratified rule (``stratified_test_indices``).
- Colour: if any image has a pixel whose red, green and blue differ, every image is read as RGB
  (3 channels); otherwise all are grayscale (1 channel). Transparent parts are composited onto
  white, as an image viewer shows them.
- Size: every image is resized (bilinear) to ``size``, by default the most common size among
  the images (the first one found wins a tie).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._validate import _is_int
from .datasets import ArrayDataset, split_arrays, stratified_test_indices

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".pgm", ".ppm", ".pbm", ".pnm"})


def load_image_folder(path: str | os.PathLike, *, size: int | tuple[int, int] | None = None,
                      test_fraction: float = 0.2, seed: int = 0
                      ) -> tuple[ArrayDataset, ArrayDataset]:
    """A folder of images in class subfolders as ``(train, test)`` (rules in the module doc).

    Args:
        path: ``path/<class>/<image>`` or ``path/{train,test}/<class>/<image>``.
        size: the common ``H`` (= ``W``) or ``(H, W)``; default the most common image size.
        test_fraction: share of each class held out when the folder has no train/test split.
        seed: seed of that split (the same seed gives the same split on every machine).

    Returns:
        ``(train, test)`` ArrayDatasets named after the folder.

    Raises:
        ValueError: no class subfolders, a class without images, or an unreadable image (named).

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for cls in ("cat", "dog"):
        ...     (root / cls).mkdir()
        ...     for i in range(5):
        ...         Image.new("L", (8, 6), 40 * i).save(root / cls / f"{i}.png")
        >>> train, test = load_image_folder(root)
        >>> len(train), len(test), train.classes, train.images.shape[1:]
        (8, 2, ['cat', 'dog'], (1, 6, 8))
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder not found: {root}.")
    size = _check_size(size)
    if not (isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, received "
                         f"{test_fraction!r}.")
    subfolders = _subfolders(root)
    if {d.name for d in subfolders} == {"train", "test"}:
        train_files = _class_files(root / "train")
        test_files = _class_files(root / "test")
        classes = sorted(train_files)
        unknown = sorted(set(test_files) - set(train_files))
        if unknown:
            raise ValueError(f"{root / 'test'} has classes that {root / 'train'} lacks: "
                             f"{', '.join(unknown)}.")
        files = [f for c in classes for f in train_files[c]]
        labels = [i for i, c in enumerate(classes) for _ in train_files[c]]
        n_train = len(files)
        files += [f for c in classes for f in test_files.get(c, [])]
        labels += [i for i, c in enumerate(classes) for _ in test_files.get(c, [])]
        is_test = np.arange(len(files)) >= n_train
    else:
        by_class = _class_files(root)
        classes = sorted(by_class)
        files = [f for c in classes for f in by_class[c]]
        labels = [i for i, c in enumerate(classes) for _ in by_class[c]]
        if len(files) < 2:
            raise ValueError(f"{root} holds {len(files)} image; a train/test split needs at "
                             f"least 2.")
        test_size = min(max(round(len(files) * test_fraction), 1), len(files) - 1)
        is_test = np.zeros(len(files), bool)
        is_test[stratified_test_indices(np.asarray(labels), test_size, seed)] = True
    images = _read_all(files, size)                                      # uint8 (N, C, H, W)
    return split_arrays(images, labels, is_test, classes, root.resolve().name or str(root))


def read_image(path: str | os.PathLike, channels: int | None = None,
               size: int | tuple[int, int] | None = None, invert: bool | str = False
               ) -> np.ndarray:
    """One image file as a float32 ``(C, H, W)`` array in [0, 1], ready for a model.

    Args:
        path: any image file Pillow reads (PNG, JPEG, BMP, GIF, TIFF, WebP, PNM...).
        channels: 1 (grayscale) or 3 (RGB); default 1 for a grey image, else 3.
        size: resize (bilinear) to ``H`` (= ``W``) or ``(H, W)``; default the image's size.
        invert: ``True`` gives ``1 - x``; ``"auto"`` inverts when the border is light (mean
            above 0.5), so dark-on-white drawings look like MNIST's white-on-black digits.

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
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"Image file not found: {file}.")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, received {channels!r}.")
    if invert not in (True, False, "auto"):
        raise ValueError(f"invert must be True, False or 'auto', received {invert!r}.")
    size = _check_size(size)
    image = _open(file)
    array = _to_array(image, size or (image.height, image.width),
                      channels or (3 if _has_colour(image) else 1))
    x = array.astype(np.float32) / np.float32(255)                        # (C, H, W)
    border = np.concatenate([x[:, 0].ravel(), x[:, -1].ravel(), x[:, :, 0].ravel(),
                             x[:, :, -1].ravel()])
    if invert is True or (invert == "auto" and border.mean() > 0.5):
        x = 1 - x
    return x


def read_pixels(path: str | os.PathLike, channels: int | None = None) -> np.ndarray:
    """One image file as its 8-bit pixels: uint8 ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB).

    ``channels`` 1 or 3 converts; the default keeps a grey image grey (also an RGB file whose
    three channels are equal) and a colour one RGB. Transparency is composited onto white.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"Image file not found: {file}.")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, received {channels!r}.")
    image = _open(file)
    array = _to_array(image, (image.height, image.width),
                      channels or (3 if _has_colour(image) else 1))
    return array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0))


def _check_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if _is_int(size):
        size = (size, size)
    if (isinstance(size, Sequence) and len(size) == 2 and all(_is_int(s) and s > 0
                                                              for s in size)):
        return int(size[0]), int(size[1])
    raise ValueError(f"size must be a positive int or a pair (H, W) of them, received {size!r}.")


def _subfolders(directory: Path) -> list[Path]:
    return sorted(d for d in directory.iterdir() if d.is_dir() and not d.name.startswith("."))


def _class_files(directory: Path) -> dict[str, list[Path]]:
    """``{class: [image files, sorted]}`` for the class subfolders of ``directory``."""
    if not directory.is_dir():
        raise ValueError(f"Expected a folder of class subfolders at {directory}.")
    classes = _subfolders(directory)
    if not classes:
        raise ValueError(f"{directory} has no class subfolders: expected one folder per class, "
                         f"each holding that class's images ({directory}/<class>/<image>).")
    files = {}
    for folder in classes:
        images = sorted(f for f in folder.iterdir() if f.is_file() and not
                        f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise ValueError(f"The class folder {folder} holds no images (expected files "
                             f"ending in {', '.join(sorted(IMAGE_EXTENSIONS))}).")
        files[folder.name] = images
    return files


def _read_all(files: list[Path], size: tuple[int, int] | None) -> np.ndarray:
    """Decode, pick the colour and size rule over all images, and stack: uint8 (N, C, H, W)."""
    images = [_open(f) for f in files]
    sizes = Counter((im.height, im.width) for im in images)
    target = size or sizes.most_common(1)[0][0]
    channels = 3 if any(_has_colour(im) for im in images) else 1
    return np.stack([_to_array(im, target, channels) for im in images])


def _open(file: Path):
    """The decoded image in mode ``L`` or ``RGB``, transparency composited onto white."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(background, rgba).convert("RGB")
            return image.convert("L" if image.mode in ("1", "L") else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ValueError(f"Cannot read the image {file}: {error}.") from None


def _has_colour(image) -> bool:
    if image.mode == "L":
        return False
    rgb = np.asarray(image)
    return bool(np.any(rgb[..., 0] != rgb[..., 1]) or np.any(rgb[..., 1] != rgb[..., 2]))


def _to_array(image, size: tuple[int, int], channels: int) -> np.ndarray:
    """uint8 ``(channels, H, W)`` at ``size`` = ``(H, W)``."""
    from PIL import Image

    image = image.convert("L" if channels == 1 else "RGB")
    if (image.height, image.width) != size:
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)     # (C, H, W)

