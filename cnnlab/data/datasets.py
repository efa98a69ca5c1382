"""Datasets as arrays in memory: ``ArrayDataset`` and ``load_dataset``.

``load_dataset(name)`` knows

- ``"digits"``: embedded, offline. The 10,000 images of the MNIST test set (Y. LeCun, C. Cortes,
  C. J. C. Burges; CC BY-SA 3.0), shipped inside the package, split into 8,000 training and
  2,000 test images. The split is stratified (each digit keeps its share, within one image) and
  fixed: images are ordered by a seeded integer hash of their index (``_hash_order``), which is
  plain uint64 arithmetic and so identical on every machine and NumPy version.
- ``"mnist"``, ``"fashion-mnist"``: the full 60,000 / 10,000 datasets, found on this machine or
  downloaded (see ``cnnlab.data.download``).
- a folder of images in class subfolders (see ``cnnlab.data.folder``).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from .._validate import _is_int, fmt_size
from .idx import parse_idx

DIGIT_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DATASETS = ("digits", "mnist", "fashion-mnist")
DIGITS_TEST_SIZE = 2000
DIGITS_SPLIT_SEED = 2024          # changing it changes every published digits result


class ArrayDataset:
    """Images and labels held as arrays: what ``load_dataset`` returns and ``DataLoader`` reads.

    Args:
        images: ``(N, C, H, W)`` (or ``(N, H, W)``, read as one channel). ``uint8`` images are
            scaled by 1/255; float images are stored as ``float32`` as given (expected in [0, 1]).
        labels: ``(N,)`` integer class indices in ``[0, len(classes))``.
        classes: the class names, index ``i`` naming label ``i``.
        name: what the data is called in messages and saved configs.

    Shape:
        ``.images`` float32 ``(N, C, H, W)``; ``.labels`` int64 ``(N,)``;
        ``ds[i]`` -> ``(image (C, H, W), label int)``.

    Example:
        >>> import numpy as np
        >>> ds = ArrayDataset(np.zeros((4, 1, 8, 8), np.uint8), [0, 1, 1, 0], ["no", "yes"])
        >>> len(ds), ds.images.dtype, ds[1][0].shape, ds[1][1]
        (4, dtype('float32'), (1, 8, 8), 1)
    """

    def __init__(self, images: np.ndarray, labels: Sequence[int] | np.ndarray,
                 classes: Sequence[str], name: str = "arrays") -> None:
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim == 3:
            images = images[:, None]                                       # (N, 1, H, W)
        if images.ndim != 4:
            raise ValueError(f"ArrayDataset: images must have shape (N, C, H, W), received "
                             f"shape {images.shape}.")
        if images.dtype == np.uint8:
            images = np.divide(images, np.float32(255), dtype=np.float32)     # one pass
        elif np.issubdtype(images.dtype, np.floating) or np.issubdtype(images.dtype, np.bool_):
            images = images.astype(np.float32, copy=False)
        else:
            raise TypeError(f"ArrayDataset: images must be uint8 or floating point, received "
                            f"dtype {images.dtype}.")
        if labels.shape != (len(images),) or not (
                labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
            raise ValueError(f"ArrayDataset: labels must be {len(images):,} integers (one per "
                             f"image), received dtype {labels.dtype} with shape {labels.shape}.")
        classes = [str(c) for c in classes]
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"ArrayDataset: labels must lie in [0, {len(classes)}) for "
                             f"{len(classes)} classes, received values from {labels.min()} to "
                             f"{labels.max()}.")
        self.images = np.ascontiguousarray(images)
        self.labels = labels.astype(np.int64)
        self.classes = classes
        self.name = str(name)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        if not _is_int(index):
            raise TypeError(f"ArrayDataset indices must be ints, received {index!r}.")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self):,} images.")
        return self.images[index], int(self.labels[index])

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape ``(C, H, W)``."""
        return tuple(self.images.shape[1:])

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None
               ) -> ArrayDataset:
        """The images at ``indices`` (copied), with the same classes."""
        indices = np.asarray(indices, dtype=np.int64)
        return ArrayDataset(self.images[indices], self.labels[indices], self.classes,
                            name if name is not None else self.name)

    def __repr__(self) -> str:
        return (f"ArrayDataset({self.name!r}, {len(self):,} images "
                f"{fmt_size(self.shape)}, {len(self.classes)} classes)")

    def _repr_html_(self) -> str:
        """A notebook shows the first images of each class (up to 10 classes), labelled."""
        from .._display import image_grid

        shown = range(min(len(self.classes), 10))
        per_class = [np.flatnonzero(self.labels == label)[:2] for label in shown]
        picked = [int(found[row]) for row in range(2) for found in per_class if len(found) > row]
        return image_grid([self.images[i] for i in picked],
                          [f"{self.classes[self.labels[i]]} (#{i})" for i in picked],
                          columns=max(len(per_class), 1),
                          caption=repr(self) + ": the first two images of each class"
                          + (" (the first 10 classes)" if len(self.classes) > 10 else ""))


def load_dataset(name: str, root: str | os.PathLike | None = None, *, download: bool = True,
                 mirror: str | None = None, size: int | tuple[int, int] | None = None,
                 test_fraction: float = 0.2, seed: int = 0
                 ) -> tuple[ArrayDataset, ArrayDataset]:
    """Load a dataset as ``(train, test)`` ArrayDatasets, images float32 in [0, 1].

    Args:
        name: ``"digits"`` (embedded, 28×28 grey, 8,000/2,000), ``"mnist"`` (60,000/10,000),
            ``"fashion-mnist"`` (60,000/10,000; classes ``T-shirt/top``, ``Trouser``, ...), or
            the path of a folder of images in class subfolders (see ``load_image_folder``).
        root: for ``mnist``/``fashion-mnist``, the folder holding the four IDX files (searched
            alone, and downloaded into) instead of ``$CNNLAB_DATA/<name>``,
            ``~/.cache/cnnlab/<name>``, ``/usr/share/datasets/<name>``.
        download: for ``mnist``/``fashion-mnist``, fetch files missing on this machine.
        mirror: base URL serving ``<name>/<file>.gz``, instead of ``$CNNLAB_MIRROR`` or the
            canonical mirrors.
        size: for an image folder, the common ``H`` (= ``W``) or ``(H, W)`` images are resized
            to; default the most common size among them.
        test_fraction: for an image folder, the share of each class held out for testing.
        seed: for an image folder, the seed of its train/test split.

    Returns:
        ``(train, test)``.

    Raises:
        ValueError: an unknown name (the message lists the known ones) or a corrupt file.
        FileNotFoundError: a dataset that is neither on this machine nor downloadable.

    Example:
        >>> train, test = load_dataset("digits")
        >>> len(train), len(test), train.images.shape[1:], train.classes[:3]
        (8000, 2000, (1, 28, 28), ['0', '1', '2'])
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"load_dataset: name must be a dataset name or a folder path, "
                        f"received {name!r}.")
    key = os.fspath(name).strip().lower().replace("_", "-")
    folder_only = {"size": (size, None), "test_fraction": (test_fraction, 0.2),
                   "seed": (seed, 0)}
    for argument, (value, default) in folder_only.items():
        if key in DATASETS and value != default:
            raise ValueError(f"load_dataset: {argument} applies to image folders only; {key} "
                             f"has a fixed size and split (received {argument}={value!r}).")
    if key == "digits":
        if root is not None:
            raise ValueError(f"load_dataset: digits is embedded in the package and takes no "
                             f"root (received root={os.fspath(root)!r}).")
        return _load_digits()
    if key in ("mnist", "fashion-mnist"):
        return _load_idx_dataset(key, root, download=download, mirror=mirror)
    path = Path(os.fspath(name)).expanduser()
    if path.is_dir():
        if root is not None:
            raise ValueError(f"load_dataset: root applies to mnist and fashion-mnist; for an "
                             f"image folder pass its path as the name (received "
                             f"root={os.fspath(root)!r}).")
        from .folder import load_image_folder

        return load_image_folder(path, size=size, test_fraction=test_fraction, seed=seed)
    known = ", ".join(repr(d) for d in DATASETS)
    if path.exists():
        raise ValueError(f"load_dataset: {os.fspath(name)!r} is a file; expected one of "
                         f"{known} or a folder of images in class subfolders.")
    raise ValueError(f"load_dataset: unknown dataset {os.fspath(name)!r}; expected one of "
                     f"{known} or an existing folder of images in class subfolders.")


def _load_digits() -> tuple[ArrayDataset, ArrayDataset]:
    """The embedded MNIST test set, split 8,000/2,000 (see the module docstring)."""
    embedded = resources.files("cnnlab.data") / "_embedded"
    arrays = []
    for file in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        source = f"cnnlab/data/_embedded/{file}"
        # shipped with the package (trusted): decompressed in memory, 7.8 MB
        arrays.append(parse_idx(gzip.decompress((embedded / file).read_bytes()), source))
    images, labels = arrays
    is_test = np.zeros(len(labels), bool)
    is_test[stratified_test_indices(labels, DIGITS_TEST_SIZE, DIGITS_SPLIT_SEED)] = True
    return split_arrays(images, labels, is_test, DIGIT_CLASSES, "digits")


def split_arrays(images: np.ndarray, labels: np.ndarray, is_test: np.ndarray,
                 classes: Sequence[str], name: str) -> tuple[ArrayDataset, ArrayDataset]:
    """``(train, test)`` ArrayDatasets of the images where ``is_test`` is False / True."""
    labels = np.asarray(labels)
    return (ArrayDataset(images[~is_test], labels[~is_test], classes, name),
            ArrayDataset(images[is_test], labels[is_test], classes, name))


def _load_idx_dataset(name: str, root: str | os.PathLike | None, *, download: bool,
                      mirror: str | None) -> tuple[ArrayDataset, ArrayDataset]:
    from .download import locate, read_verified

    paths = locate(name, root, download=download, mirror=mirror)
    classes = FASHION_CLASSES if name == "fashion-mnist" else DIGIT_CLASSES
    splits = []
    for split in ("train", "t10k"):
        image_file, label_file = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
        images = read_verified(paths[image_file], name, image_file)
        labels = read_verified(paths[label_file], name, label_file)
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise ValueError(f"{paths[image_file]} and {paths[label_file]} do not match: "
                             f"expected (N, H, W) images and N labels, received shapes "
                             f"{images.shape} and {labels.shape}.")
        splits.append(ArrayDataset(images, labels, classes, name))
    return splits[0], splits[1]


def _hash_order(n: int, seed: int) -> np.ndarray:
    """A fixed pseudo-random key per index 0..n-1 (SplitMix64), identical on every machine."""
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def stratified_test_indices(labels: np.ndarray, test_size: int, seed: int) -> np.ndarray:
    """Sorted indices of a test set of ``test_size`` items where every class keeps its share.

    Each class gets ``test_size * count / N`` items, rounded by largest remainder so the quotas
    add up to ``test_size``; within a class the items with the smallest ``_hash_order`` keys go.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    exact = test_size * counts / len(labels)
    quota = np.floor(exact).astype(np.int64)
    remainder_order = np.lexsort((classes, -(exact - quota)))     # largest remainders first
    quota[remainder_order[: test_size - quota.sum()]] += 1
    keys = _hash_order(len(labels), seed)
    chosen = []
    for cls, q in zip(classes, quota):
        members = np.flatnonzero(labels == cls)
        chosen.append(members[np.argsort(keys[members], kind="stable")[:q]])
    return np.sort(np.concatenate(chosen))
