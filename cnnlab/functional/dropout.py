"""Dropout on Tensors: argument checks, then ``ops.dropout`` with its backward.

``dropout`` drops single entries; ``dropout1d/2d/3d`` drop whole channels (feature maps).
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validate import check_float_array
from ..autograd.tensor import Tensor, as_tensor, needs_grad, record
from ..ops import dropout as dropout_ops
from ..random import default_generator


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"dropout probability p must be between 0 and 1, received {p!r}.")
    return float(p)


def dropout(x, p: float = 0.5, training: bool = True, inplace: bool = False, *,
            generator: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout: zero each entry with probability ``p``, scale the rest by ``1/(1-p)``.

    ``y = x · m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` per entry, so ``E[y] = x``; the
    gradient is ``dx = dy · m / (1 - p)``. With ``training=False`` or ``p = 0`` the input is
    returned unchanged (the same Tensor, as PyTorch does); ``p = 1`` gives zeros.

    Args:
        x: input of any shape; Tensor or ndarray.
        p: probability of zeroing an entry, in ``[0, 1]``.
        training: apply dropout (``True``) or act as the identity.
        inplace: accepted for PyTorch compatibility; the result is always a new array.
        generator: the ``np.random.Generator`` to draw the mask from; by default cnnlab's
            generator, which ``cnnlab.manual_seed`` reseeds.

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> y = F.dropout(np.ones((2, 4)), p=0.5, generator=np.random.default_rng(0))
        >>> sorted(set(y.data.ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
        True
    """
    return _dropout(as_tensor(x), _check_p(p), training, generator, None)


def _dropout(x: Tensor, p: float, training: bool, generator: np.random.Generator | None,
             mask_shape: tuple[int, ...] | None) -> Tensor:
    check_float_array(x.data, "dropout input")
    if not training or p == 0.0:
        return x
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(
            f"dropout generator must be a numpy.random.Generator, received "
            f"{type(generator).__name__}."
        )
    if generator is None:
        generator = default_generator()
    y, mask = dropout_ops.dropout_forward(x.data, p, generator, mask_shape)
    (need_dx,) = needs_grad(x)
    return record(y, (x,), lambda dy: (dropout_ops.dropout_backward(dy, mask)
                                       if need_dx else None,))


def _channel_dropout(x, p: float, training: bool, nd: int, generator) -> Tensor:
    """One Bernoulli draw per (sample, channel), broadcast over the ``nd`` spatial axes."""
    name = f"dropout{nd}d"
    p, x = _check_p(p), as_tensor(x)
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(
            f"{name} expects a batch (N, C, {_SPATIAL[nd]}) or one sample "
            f"(C, {_SPATIAL[nd]}), received a {x.ndim}-D input of shape {x.shape}."
        )
    if nd == 2 and x.ndim == 3:
        raise ValueError(
            f"dropout2d received a 3-D input of shape {x.shape}, which torch reads as (N, C, L) "
            f"today and as one (C, H, W) image in future releases: use dropout1d for "
            f"(N, C, L), or x[None] to drop channels of one image."
        )
    mask_shape = x.shape[:x.ndim - nd] + (1,) * nd                  # (N, C, 1, ..., 1)
    return _dropout(x, p, training, generator, mask_shape)


_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}


def dropout1d(x, p: float = 0.5, training: bool = True, inplace: bool = False, *,
              generator: np.random.Generator | None = None) -> Tensor:
    """Channel dropout for ``(N, C, L)`` or ``(C, L)``: each channel of each sample is zeroed
    with probability ``p`` as a whole; kept channels are scaled by ``1/(1-p)``.

    Shape:
        ``(N, C, L) -> (N, C, L)`` or ``(C, L) -> (C, L)``.
    """
    return _channel_dropout(x, p, training, 1, generator)


def dropout2d(x, p: float = 0.5, training: bool = True, inplace: bool = False, *,
              generator: np.random.Generator | None = None) -> Tensor:
    """Channel dropout for ``(N, C, H, W)``: whole feature maps are zeroed with probability
    ``p`` (``y = x · m / (1-p)``, ``m ~ Bernoulli(1-p)`` per (n, c)), as ``torch``'s
    ``dropout2d``. A 3-D input is refused as ambiguous (see the message).

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> y = F.dropout2d(np.ones((2, 4, 3, 3)), generator=np.random.default_rng(1)).data
        >>> bool(np.all(np.isin(y, (0.0, 2.0)) & (y == y[:, :, :1, :1])))   # whole maps
        True
    """
    return _channel_dropout(x, p, training, 2, generator)


def dropout3d(x, p: float = 0.5, training: bool = True, inplace: bool = False, *,
              generator: np.random.Generator | None = None) -> Tensor:
    """Channel dropout for ``(N, C, D, H, W)`` or ``(C, D, H, W)`` (see :func:`dropout2d`).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D, H, W)`` or ``(C, D, H, W) -> (C, D, H, W)``.
    """
    return _channel_dropout(x, p, training, 3, generator)
