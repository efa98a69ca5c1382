"""``Dropout`` (single entries) and ``Dropout1d/2d/3d`` (whole channels): inverted dropout
while training, the identity in evaluation mode."""

from __future__ import annotations

from ..autograd.tensor import Tensor
from ..functional.dropout import _channel_dropout, _check_p, dropout
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


class _ChannelDropout(Module):
    """Zero whole channels (feature maps) with probability ``p`` in train mode, as torch's."""

    _nd = 0

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = _check_p(p)
        self.inplace = inplace

    def forward(self, x) -> Tensor:
        return _channel_dropout(x, self.p, self.training, self._nd, None)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(_ChannelDropout):
    """Channel dropout for ``(N, C, L)`` or ``(C, L)``: each channel of each sample is zeroed
    as a whole with probability ``p``; kept channels are scaled by ``1/(1-p)``.

    Shape:
        ``(N, C, L) -> (N, C, L)``, ``(C, L) -> (C, L)``.
    """

    _nd = 1


class Dropout2d(_ChannelDropout):
    """Channel dropout for ``(N, C, H, W)``: neighbouring pixels of a feature map are
    correlated, so dropping single pixels regularises little; dropping whole maps does.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)`` (a 3-D input is refused as ambiguous, see
        ``F.dropout2d``).

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> y = nn.Dropout2d(0.5)(np.ones((8, 16, 4, 4), np.float32)).data
        >>> bool(np.all(y == y[:, :, :1, :1])), sorted(np.unique(y).tolist())
        (True, [0.0, 2.0])
    """

    _nd = 2


class Dropout3d(_ChannelDropout):
    """Channel dropout for ``(N, C, D, H, W)`` or ``(C, D, H, W)`` (see :class:`Dropout2d`).

    Shape:
        ``(N, C, D, H, W) -> (N, C, D, H, W)``, ``(C, D, H, W) -> (C, D, H, W)``.
    """

    _nd = 3
