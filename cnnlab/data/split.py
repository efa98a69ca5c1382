"""``Subset`` and ``random_split``, as ``torch.utils.data``: parts of a dataset by index.

A ``Subset`` of an ``ArrayDataset`` also has ``.images``, ``.labels`` and ``.classes`` (the
selected rows), so ``DataLoader`` reads it like any dataset.

>>> import numpy as np
>>> from cnnlab.data import ArrayDataset, random_split
>>> ds = ArrayDataset(np.zeros((10, 1, 2, 2), np.float32), np.arange(10) % 2, ["a", "b"])
>>> train, val = random_split(ds, [0.8, 0.2], seed=0)
>>> len(train), len(val), len(set(train.indices) | set(val.indices))
(8, 2, 10)
>>> from cnnlab.data import DataLoader
>>> [x.shape[0] for x, y in DataLoader(train, batch_size=5)]
[5, 3]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from .._validate import _is_int
from ..random import default_generator


class Subset:
    """The items of ``dataset`` at ``indices``, in that order (no copy until asked).

    Args:
        dataset: anything with ``len`` and ``dataset[i]`` (an ``ArrayDataset``, a Subset...).
        indices: integer positions in ``dataset``.

    Shape:
        ``subset[i]`` is ``dataset[indices[i]]``; ``.images``/``.labels`` are ``dataset``'s
        rows at ``indices`` when ``dataset`` has them.
    """

    def __init__(self, dataset, indices: Sequence[int] | np.ndarray) -> None:
        indices = np.asarray(indices)
        if indices.ndim != 1 or not (indices.size == 0 or np.issubdtype(indices.dtype,
                                                                        np.integer)):
            raise TypeError(f"Subset indices must be a flat sequence of ints, received "
                            f"dtype {indices.dtype} with shape {indices.shape}.")
        n = len(dataset)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"Subset indices must lie in [{-n}, {n}) for a dataset of {n:,} "
                             f"items, received values from {indices.min()} to {indices.max()}.")
        self.dataset = dataset
        self.indices = indices.astype(np.int64) % max(n, 1)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        if not _is_int(index):
            raise TypeError(f"Subset indices must be ints, received {index!r}.")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a Subset of {len(self):,} items.")
        return self.dataset[int(self.indices[index])]

    @property
    def images(self) -> np.ndarray:
        return self._rows("images")

    @property
    def labels(self) -> np.ndarray:
        return self._rows("labels")

    def _rows(self, name: str) -> np.ndarray:
        """``dataset.<name>[indices]``, copied once and reused while ``dataset`` keeps the
        same array (``DataLoader`` reads them every epoch)."""
        source = getattr(self.dataset, name)
        cached = self.__dict__.get("_cache_" + name)
        if cached is None or cached[0] is not source:
            cached = (source, source[self.indices])
            self.__dict__["_cache_" + name] = cached
        return cached[1]

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    @property
    def name(self) -> str:
        return getattr(self.dataset, "name", type(self.dataset).__name__)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.dataset.shape

    def __repr__(self) -> str:
        return f"Subset({len(self):,} of {len(self.dataset):,} items of {self.name!r})"


def split_lengths(n: int, lengths: Sequence[int | float]) -> list[int]:
    """Item counts for ``lengths``: ints summing to ``n``, or fractions summing to 1 that get
    ``floor(n · f)`` each, the remainder handed out one by one from the first (torch's rule)."""
    lengths = list(lengths)
    if not lengths or not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                              and v >= 0 for v in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions, "
                         f"received {lengths!r}.")
    if all(_is_int(v) for v in lengths):
        if sum(lengths) != n:
            raise ValueError(f"random_split: lengths {lengths} sum to {sum(lengths):,}, the "
                             f"dataset has {n:,} items.")
        return [int(v) for v in lengths]
    if not math.isclose(sum(lengths), 1.0) or any(v > 1 for v in lengths):
        raise ValueError(f"random_split: fractions must sum to 1, received {lengths!r} "
                         f"(sum {sum(lengths):g}).")
    counts = [math.floor(n * f) for f in lengths]
    for i in range(n - sum(counts)):
        counts[i % len(counts)] += 1
    return counts


def random_split(dataset, lengths: Sequence[int | float],
                 generator: np.random.Generator | None = None, *, seed: int | None = None
                 ) -> list[Subset]:
    """Split ``dataset`` into disjoint random ``Subset``s of the given lengths.

    Args:
        dataset: anything with ``len`` and ``dataset[i]``.
        lengths: item counts summing to ``len(dataset)``, or fractions summing to 1 (as torch
            ≥ 1.13: ``[0.8, 0.2]``; the items that rounding down leaves go one each to the
            first parts).
        generator: a ``numpy.random.Generator`` for the permutation; by default cnnlab's,
            which ``cnnlab.manual_seed`` seeds.
        seed: an int seed instead of ``generator`` (the same seed gives the same split).

    Returns:
        one ``Subset`` per length, together a permutation of the dataset.
    """
    if generator is not None and seed is not None:
        raise TypeError("random_split takes generator or seed, not both.")
    if seed is not None:
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"random_split: seed must be a non-negative int, received {seed!r}.")
        generator = np.random.default_rng(seed)
    elif generator is None:
        generator = default_generator()
    elif not isinstance(generator, np.random.Generator):
        raise TypeError(f"random_split: generator must be a numpy.random.Generator, received "
                        f"{type(generator).__name__}.")
    counts = split_lengths(len(dataset), lengths)
    order = generator.permutation(len(dataset))
    ends = np.cumsum(counts)
    return [Subset(dataset, order[end - count:end]) for count, end in zip(counts, ends)]
