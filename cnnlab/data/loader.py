"""``DataLoader``: mini-batches of an ``ArrayDataset``, shuffled as a function of (seed, epoch).

Batches are cut by fancy-indexing the whole image array with a slice of the epoch's order, one
NumPy call per batch and no Python loop over images. The order of epoch ``e`` is
``default_rng((seed, e)).permutation(N)``; a random transform of batch ``b`` draws from
``default_rng(SeedSequence((seed, e), spawn_key=(b,)))``. Both depend on nothing else, so a run
resumed at epoch ``e`` sees exactly the batches the uninterrupted run saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from .._validate import _is_int

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class DataLoader:
    """Iterate over a dataset in mini-batches ``(x, y)``.

    Args:
        dataset: an ``ArrayDataset`` (anything with ``.images`` (N, C, H, W) and ``.labels``).
        batch_size: images per batch; the last batch may be smaller unless ``drop_last``.
        shuffle: visit the images in a new seeded order every epoch.
        seed: the seed of the shuffles and of random transforms (a non-negative int).
        drop_last: skip the last batch when it is smaller than ``batch_size``.
        transform: ``transform(x, rng) -> x`` applied to each batch, such as
            ``transforms.Compose([transforms.RandomCrop(28, padding=2), ...])``.

    Each ``iter(loader)`` uses the loader's current epoch and then advances it by one, so a
    plain ``for`` loop over epochs gets a new order each time; ``set_epoch(e)`` chooses the
    epoch of the next iteration (what ``train.fit`` does, so resumed runs repeat exactly).

    Shape:
        yields ``x`` float32 ``(B, C, H, W)`` and ``y`` int64 ``(B,)``; ``len(loader)`` is the
        number of batches.

    Example:
        >>> import numpy as np
        >>> from cnnlab.data import ArrayDataset
        >>> ds = ArrayDataset(np.zeros((10, 1, 4, 4), np.float32), np.arange(10) % 2, ["a", "b"])
        >>> loader = DataLoader(ds, batch_size=4, shuffle=True, seed=0)
        >>> len(loader), [x.shape[0] for x, y in loader]
        (3, [4, 4, 2])
    """

    def __init__(self, dataset, batch_size: int = 64, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, transform: Transform | None = None) -> None:
        if not (hasattr(dataset, "images") and hasattr(dataset, "labels")):
            raise TypeError(f"DataLoader expects an ArrayDataset (with .images and .labels), "
                            f"received {type(dataset).__name__}.")
        if not _is_int(batch_size) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, received {batch_size!r}.")
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, received {seed!r}.")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable as transform(x, rng), received "
                            f"{type(transform).__name__}.")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its order and transforms depend on it)."""
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, received {epoch!r}.")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The indices of the dataset in the order epoch ``epoch`` visits them."""
        n = len(self.dataset.labels)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng((self.seed, epoch)).permutation(n)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return self._batches(epoch)

    def _batches(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        images, labels = self.dataset.images, self.dataset.labels
        order = self.order(epoch)
        for b in range(len(self)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            x, y = images[index], labels[index]                             # (B, C, H, W), (B,)
            if self.transform is not None:
                rng = np.random.default_rng(np.random.SeedSequence((self.seed, epoch),
                                                                   spawn_key=(b,)))
                x = self.transform(x, rng)
            yield x, y

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.dataset.labels):,} images, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")
