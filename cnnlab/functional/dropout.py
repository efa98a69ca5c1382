"""Dropout on Tensors: argument checks, then ``ops.dropout`` with its backward."""

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
    p = _check_p(p)
    x = as_tensor(x)
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
    y, mask = dropout_ops.dropout_forward(x.data, p, generator)
    (need_dx,) = needs_grad(x)
    return record(y, (x,), lambda dy: (dropout_ops.dropout_backward(dy, mask)
                                       if need_dx else None,))
