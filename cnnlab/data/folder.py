"""A folder of image files as a dataset: ``load_image_folder`` (class subfolders).

Each image is read by :mod:`cnnlab.data.images` (the pixel cap, bit depths, transparency). The
rules:

- Class = subfolder name, classes sorted by name (as ``torchvision.datasets.ImageFolder``).
  Files whose extension is not an image's (``IMAGE_EXTENSIONS``) and hidden files are skipped.
- If the folder has exactly the subfolders ``train`` and ``test``, each holding the class
  subfolders, that split is used as it is; otherwise each class is split ``1 - test_fraction`` /
  ``test_fraction`` by a seeded, stratified rule (``stratified_test_indices``).
- Colour: if any image has a pixel whose red, green and blue differ, every image is read as RGB
  (3 channels); otherwise all are grayscale (1 channel). Transparent parts are composited onto
  white, as an image viewer shows them. Images deeper than 8 bits are scaled to their range and
  rounded to 8 bits.
- Size: every image is resized (bilinear) to ``size``, by default the most common size among
  the images (the first one found wins a tie).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from .datasets import ArrayDataset, split_arrays, stratified_test_indices
from .images import (
    IMAGE_EXTENSIONS,
    check_size,
    has_colour,
    image_files,
    open_image,
    read_image,
    read_pixels,
    to_array,
)

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder", "read_image", "read_pixels"]



def load_image_folder(path: str | os.PathLike, *, size: int | tuple[int, int] | None = None,
                      test_fraction: float = 0.2, seed: int = 0, max_pixels: int | None = None
                      ) -> tuple[ArrayDataset, ArrayDataset]:
    """A folder of images in class subfolders as ``(train, test)`` (rules in the module doc).

    Args:
        path: ``path/<class>/<image>`` or ``path/{train,test}/<class>/<image>``.
        size: the common ``H`` (= ``W``) or ``(H, W)``; default the most common image size.
        test_fraction: share of each class held out when the folder has no train/test split.
        seed: seed of that split (the same seed gives the same split on every machine).
        max_pixels: refuse larger images (default 25,000,000; see :mod:`cnnlab.data.images`).

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
    size = check_size(size)
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
    images = _read_all(files, size, max_pixels)                         # uint8 (N, C, H, W)
    return split_arrays(images, labels, is_test, classes, root.resolve().name or str(root))


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
        images = image_files(folder)
        if not images:
            raise ValueError(f"The class folder {folder} holds no images (expected files "
                             f"ending in {', '.join(sorted(IMAGE_EXTENSIONS))}).")
        files[folder.name] = images
    return files


def _read_all(files: list[Path], size: tuple[int, int] | None,
              max_pixels: int | None) -> np.ndarray:
    """Decode, pick the colour and size rule over all images, and stack: uint8 (N, C, H, W)
    (images deeper than 8 bits are scaled to their range, then rounded to 8 bits)."""
    images = [open_image(f, max_pixels=max_pixels) for f in files]
    sizes = Counter((im.height, im.width) for im in images)
    target = size or sizes.most_common(1)[0][0]
    channels = 3 if any(has_colour(im) for im in images) else 1
    return np.stack([_uint8(to_array(im, target, channels)) for im in images])


def _uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    return np.clip(np.rint(array * 255), 0, 255).astype(np.uint8)
