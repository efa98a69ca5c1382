"""Activation layers: thin ``Module`` wrappers of ``functional.activation`` with torch's reprs.

``inplace=True`` is accepted wherever PyTorch accepts it, so torch code ports unchanged, and
ignored: cnnlab always returns a new array (the graph keeps the input for the gradient anyway).
"""

from __future__ import annotations

from ..functional import activation as F
from .module import Module


class ReLU(Module):
    """``y = max(x, 0)`` elementwise.

    Args:
        inplace: accepted for PyTorch compatibility and ignored.

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.ReLU()(np.array([-1.0, 2.0])).data
        array([0., 2.])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """``y = x`` for ``x > 0``, else ``negative_slope · x``.

    Args:
        negative_slope: the slope for ``x <= 0``.
        inplace: accepted for PyTorch compatibility and ignored.

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> from cnnlab import nn
        >>> nn.LeakyReLU(0.2)
        LeakyReLU(negative_slope=0.2)
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """``y = 1 / (1 + e^{-x})`` elementwise (stable for any ``|x|``).

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.Sigmoid()(np.zeros(2)).data
        array([0.5, 0.5])
    """

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """``y = tanh(x)`` elementwise.

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.Tanh()(np.zeros(2)).data
        array([0., 0.])
    """

    def forward(self, x):
        return F.tanh(x)


class Softmax(Module):
    """Softmax along ``dim``: non-negative values that sum to 1 along that axis.

    Args:
        dim: the normalised axis. ``None`` behaves as in PyTorch (a deprecation warning and the
            legacy choice: 0 for 0-, 1- and 3-D inputs, else 1); pass it explicitly.

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.Softmax(dim=1)(np.zeros((1, 4))).data
        array([[0.25, 0.25, 0.25, 0.25]])
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """``log(softmax(x))`` along ``dim``, computed stably; pair it with :class:`NLLLoss`.

    Args:
        dim: the normalised axis (``None``: see :class:`Softmax`).

    Shape:
        ``(*) -> (*)``, the same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.LogSoftmax(dim=0)(np.zeros(2, dtype=np.float64)).data
        array([-0.69314718, -0.69314718])
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.log_softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
