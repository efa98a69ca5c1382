"""``Dropout``: inverted dropout while training, the identity in evaluation mode."""

from __future__ import annotations

from ..autograd.tensor import Tensor
from ..functional.dropout import _check_p, dropout
from .module import Module


class Dropout(Module):
    """Zero each entry with probability ``p`` and scale the rest by ``1/(1-p)``, in train mode.

    After ``model.eval()`` it returns its input unchanged. Masks come from cnnlab's generator,
    so ``cnnlab.manual_seed(s)`` makes them repeat.

    Args:
        p: probability of zeroing an entry, in ``[0, 1]``.
        inplace: accepted for PyTorch compatibility; the result is always a new array.

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> layer = nn.Dropout(0.5).eval()
        >>> layer(np.ones((2, 3), np.float32)).data
        array([[1., 1., 1.],
               [1., 1., 1.]], dtype=float32)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = _check_p(p)
        self.inplace = inplace

    def forward(self, x) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
