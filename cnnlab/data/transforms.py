"""Batch transforms for data augmentation and normalisation, seeded and reproducible.

Each transform is a callable ``t(x, rng) -> x`` on a float batch ``(B, C, H, W)``: ``rng`` is a
``numpy.random.Generator`` (``DataLoader`` passes one derived from (seed, epoch, batch index), so
augmentations repeat exactly), or ``None`` for ``cnnlab.random``'s generator, which
``cnnlab.manual_seed`` seeds. All work is vectorised over the batch; the input is never modified.

Which augmentations suit which data: random crops with a little padding help digits and
clothes alike; horizontal flips suit Fashion-MNIST and natural photos but are wrong for digits
and text (a mirrored 2, 3, 4, 5, 7 or 9 is no longer that digit). Small rotations, shifts and
shears (``RandomAffine(10, translate=(0.1, 0.1))``, as torchvision's) suit both.

Example:
    >>> import numpy as np
    >>> from cnnlab.data import transforms as T
    >>> augment = T.Compose([T.RandomCrop(28, padding=2), T.RandomHorizontalFlip(),
    ...                      T.Normalize(0.2860, 0.3530)])
    >>> x = np.zeros((8, 1, 28, 28), np.float32)
    >>> augment(x, np.random.default_rng(0)).shape
    (8, 1, 28, 28)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .._validate import _is_int, check_probability
from ..random import default_generator
from .affine import inverse_affine_matrix, warp_affine

_Transform = Callable[[np.ndarray, np.random.Generator | None], np.ndarray]


def _batch(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} expects a batch of shape (B, C, H, W), received shape "
                         f"{x.shape}.")
    return x


class Normalize:
    """``(x - mean) / std`` per channel: ``mean``, ``std`` are one number or one per channel.

    Example:
        >>> import numpy as np
        >>> Normalize([0.5, 0.0], [0.5, 2.0])(np.ones((1, 2, 1, 1), np.float32)).ravel()
        array([1. , 0.5], dtype=float32)
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"Normalize: mean and std must be numbers or flat sequences, "
                             f"received {mean!r} and {std!r}.")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, received {std!r}.")

    @classmethod
    def from_data(cls, images: np.ndarray) -> Normalize:
        """The per-channel mean and standard deviation of ``images`` ``(N, C, H, W)``.

        Computed in float64, so the statistics do not depend on the batch order. A channel
        that is constant everywhere gets std 1 (it is only shifted).

        Example:
            >>> import numpy as np
            >>> Normalize.from_data(np.array([[[[0.0, 1.0]]], [[[1.0, 2.0]]]]))
            Normalize(mean=[1.0], std=[0.7071067811865476])
        """
        images = _batch(images, "Normalize.from_data")
        mean = images.mean(axis=(0, 2, 3), dtype=np.float64)
        std = images.std(axis=(0, 2, 3), dtype=np.float64)
        return cls(mean, np.where(std > 0, std, 1.0))

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _batch(x, "Normalize")
        channels = x.shape[1]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(f"Normalize: {name} has {len(values)} values for a batch with "
                                 f"{channels} channels (shape {x.shape}).")
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        mean = self.mean.astype(dtype)[:, None, None]                        # (C|1, 1, 1)
        std = self.std.astype(dtype)[:, None, None]
        return ((x - mean) / std).astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop:
    """Pad every side with ``padding`` zeros, then cut a ``size`` window at a random place.

    Each image of the batch gets its own offset. ``RandomCrop(28, padding=2)`` on 28×28 images
    shifts them by up to 2 pixels in each direction.

    Example:
        >>> import numpy as np
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
        >>> RandomCrop(2)(x, np.random.default_rng(0)).shape
        (1, 1, 2, 2)
    """

    def __init__(self, size: int | tuple[int, int], padding: int = 0) -> None:
        if _is_int(size):
            size = (size, size)
        if not (isinstance(size, Sequence) and len(size) == 2
                and all(_is_int(s) and s > 0 for s in size)):
            raise ValueError(f"RandomCrop: size must be a positive int or a pair (H, W) of "
                             f"them, received {size!r}.")
        if not _is_int(padding) or padding < 0:
            raise ValueError(f"RandomCrop: padding must be a non-negative int, received "
                             f"{padding!r}.")
        self.size = (int(size[0]), int(size[1]))
        self.padding = int(padding)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _batch(x, "RandomCrop")
        rng = rng if rng is not None else default_generator()
        p, (h, w) = self.padding, self.size
        batch, _, height, width = x.shape
        if height + 2 * p < h or width + 2 * p < w:
            raise ValueError(f"RandomCrop: cannot cut {h}×{w} from {height}×{width} images "
                             f"padded by {p}.")
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x   # (B, C, H+2p, W+2p)
        top = rng.integers(0, height + 2 * p - h + 1, size=batch)
        left = rng.integers(0, width + 2 * p - w + 1, size=batch)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
        # windows: (B, C, H', W', h, w); pick window (top[b], left[b]) of image b -> (B, C, h, w)
        return windows[np.arange(batch), :, top, left]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p`` (not for digits: see module doc).

    Example:
        >>> import numpy as np
        >>> x = np.array([[[[1, 2, 3]]]], np.float32)
        >>> RandomHorizontalFlip(p=1.0)(x).ravel()
        array([3., 2., 1.], dtype=float32)
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_probability(p, "RandomHorizontalFlip: p")

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _batch(x, "RandomHorizontalFlip")
        rng = rng if rng is not None else default_generator()
        flip = rng.random(len(x)) < self.p                                     # (B,)
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


def _range(value, name: str, *, symmetric: bool, length: int = 2) -> tuple[float, ...]:
    """A number ``d`` -> ``(-d, d)`` (``d >= 0``) when ``symmetric``; else ``length`` numbers."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if symmetric:
            if value < 0:
                raise ValueError(f"{name} must be non-negative when it is a single number, "
                                 f"received {value!r}.")
            return (-float(value), float(value))
    elif (isinstance(value, Sequence) and len(value) in (length, 2)
          and all(isinstance(v, (int, float, np.integer, np.floating))
                  and not isinstance(v, bool) for v in value)):
        return tuple(float(v) for v in value)
    expected = "a number or " if symmetric else ""
    raise ValueError(f"{name} must be {expected}a sequence of {length} numbers, received "
                     f"{value!r}.")


def _fill(fill) -> np.ndarray:
    try:
        values = np.atleast_1d(np.asarray(fill, dtype=np.float64))
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if isinstance(fill, (str, bool)) or values.ndim != 1 or not np.all(np.isfinite(values)):
        raise ValueError(f"fill must be a number or one number per channel, received {fill!r}.")
    return values


class RandomAffine:
    """A random affine map of each image about its centre, as ``torchvision``'s RandomAffine.

    Per image: an angle uniform in ``degrees`` (clockwise, torchvision's ``affine``), a shift
    ``round(U(-a·W, a·W))``, ``round(U(-b·H, b·H))`` pixels for ``translate=(a, b)``, a scale
    uniform in ``scale``, and shears uniform in ``shear`` (one number ``s``: x-shear in
    ``(-s, s)``; two: x-shear range; four: x- and y-shear ranges), all in degrees. Pixels that
    come from outside get ``fill``. The warp is torchvision's (see ``cnnlab.data.affine``).

    Args:
        degrees: ``d`` for ``(-d, d)`` or a range ``(lo, hi)``; ``0`` for no rotation.
        translate: largest shifts as fractions of the width and height, ``(a, b)``.
        scale: the range ``(lo, hi)`` of scale factors.
        shear: ``s``, ``(lo, hi)`` or ``(x_lo, x_hi, y_lo, y_hi)`` degrees.
        interpolation: ``"nearest"`` (torchvision's default) or ``"bilinear"``.
        fill: the value of pixels from outside: a number or one per channel.
        center: the fixed point ``(x, y)`` in pixels; the image centre by default.

    Example:
        >>> import numpy as np
        >>> x = np.zeros((4, 1, 28, 28), np.float32)
        >>> augment = RandomAffine(15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10)
        >>> augment(x, np.random.default_rng(0)).shape
        (4, 1, 28, 28)
    """

    def __init__(self, degrees, translate=None, scale=None, shear=None,
                 interpolation: str = "nearest", fill=0, center=None) -> None:
        self.degrees = _range(degrees, "RandomAffine: degrees", symmetric=True)
        self.translate = None if translate is None else _range(
            translate, "RandomAffine: translate", symmetric=False)
        if self.translate is not None and not all(0 <= t <= 1 for t in self.translate):
            raise ValueError(f"RandomAffine: translate values must lie in [0, 1], received "
                             f"{translate!r}.")
        self.scale = None if scale is None else _range(scale, "RandomAffine: scale",
                                                       symmetric=False)
        if self.scale is not None and not all(s > 0 for s in self.scale):
            raise ValueError(f"RandomAffine: scale values must be positive, received {scale!r}.")
        self.shear = None if shear is None else _range(shear, "RandomAffine: shear",
                                                       symmetric=True, length=4)
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"RandomAffine: interpolation must be 'nearest' or 'bilinear', "
                             f"received {interpolation!r}.")
        self.interpolation = interpolation
        self.fill = _fill(fill)
        self.center = None if center is None else _range(center, "RandomAffine: center",
                                                         symmetric=False)
        self._name = "RandomAffine"

    def _params(self, rng: np.random.Generator, batch: int, height: int, width: int):
        angle = rng.uniform(*self.degrees, size=batch)
        tx = ty = np.zeros(batch)
        if self.translate is not None:
            a, b = self.translate
            tx = np.rint(rng.uniform(-a * width, a * width, size=batch))
            ty = np.rint(rng.uniform(-b * height, b * height, size=batch))
        scale = np.ones(batch) if self.scale is None else rng.uniform(*self.scale, size=batch)
        sx = sy = np.zeros(batch)
        if self.shear is not None:
            sx = rng.uniform(*self.shear[:2], size=batch)
            if len(self.shear) == 4:
                sy = rng.uniform(*self.shear[2:], size=batch)
        return angle, (tx, ty), scale, (sx, sy)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _batch(x, self._name)
        rng = rng if rng is not None else default_generator()
        batch, channels, height, width = x.shape
        if len(self.fill) not in (1, channels):
            raise ValueError(f"{self._name}: fill has {len(self.fill)} values for a batch with "
                             f"{channels} channels (shape {x.shape}).")
        center = (0.0, 0.0) if self.center is None else (
            self.center[0] - width / 2, self.center[1] - height / 2)   # from the image centre
        angle, translate, scale, shear = self._params(rng, batch, height, width)
        matrices = inverse_affine_matrix(angle, translate, scale, shear, center)   # (B, 2, 3)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        return warp_affine(x, matrices, self.interpolation, self.fill)

    def __repr__(self) -> str:
        return (f"RandomAffine(degrees={self.degrees}, translate={self.translate}, "
                f"scale={self.scale}, shear={self.shear}, interpolation={self.interpolation!r}, "
                f"fill={self.fill.tolist()})")


class RandomRotation(RandomAffine):
    """Rotate each image by an angle uniform in ``degrees``, counter-clockwise for positive
    angles (torchvision's ``rotate``), about its centre; corners that come from outside get
    ``fill``. ``expand=True`` (a larger output) cannot be batched and is refused.

    Example:
        >>> import numpy as np
        >>> x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
        >>> RandomRotation((90, 90))(x)[0, 0]
        array([[2., 5., 8.],
               [1., 4., 7.],
               [0., 3., 6.]], dtype=float32)
    """

    def __init__(self, degrees, interpolation: str = "nearest", expand: bool = False,
                 center=None, fill=0) -> None:
        if expand:
            raise ValueError("RandomRotation: expand=True gives every image its own size, "
                             "which one batch cannot hold; use expand=False.")
        super().__init__(degrees, interpolation=interpolation, fill=fill, center=center)
        self._name = "RandomRotation"

    def _params(self, rng: np.random.Generator, batch: int, height: int, width: int):
        angle, translate, scale, shear = super()._params(rng, batch, height, width)
        return -angle, translate, scale, shear              # rotate's angle: counter-clockwise

    def __repr__(self) -> str:
        return (f"RandomRotation(degrees={self.degrees}, interpolation={self.interpolation!r}, "
                f"fill={self.fill.tolist()})")


class Compose:
    """Apply transforms in order, all drawing from the same ``rng``.

    Example:
        >>> import numpy as np
        >>> t = Compose([RandomHorizontalFlip(p=1.0), Normalize(1.0, 1.0)])
        >>> t(np.array([[[[0.0, 1.0]]]], np.float32)).ravel()
        array([ 0., -1.], dtype=float32)
    """

    def __init__(self, transforms: Sequence[_Transform]) -> None:
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose expects callables t(x, rng), received "
                                f"{type(t).__name__}.")
        self.transforms = transforms

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = rng if rng is not None else default_generator()
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self) -> str:
        return f"Compose([{', '.join(repr(t) for t in self.transforms)}])"
