"""Loss layers: ``Module`` wrappers of ``functional.loss`` with torch.nn's arguments and state.

As in PyTorch, a class ``weight`` is a buffer: it appears in ``state_dict`` under ``"weight"``.
"""

from __future__ import annotations

import numpy as np

from .._validate import check_probability
from ..autograd.tensor import as_tensor
from ..functional import loss as F
from .module import Module


class _Loss(Module):
    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = F._reduction(size_average, reduce, reduction)


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", None if weight is None else np.array(
            as_tensor(weight).data))


class CrossEntropyLoss(_WeightedLoss):
    """Cross-entropy of logits against class indices (or probabilities), fused and stable.

    Args:
        weight: optional per-class weights ``(C,)``, stored as the buffer ``weight``.
        size_average, reduce: PyTorch's deprecated spellings of ``reduction`` (warned).
        ignore_index: a target value that contributes no loss and no gradient.
        reduction: ``"mean"`` (over the summed weights of counted targets), ``"sum"``, ``"none"``.
        label_smoothing: ``ε`` in ``[0, 1]``; the target becomes ``(1 − ε)·onehot + ε/C``.

    Shape:
        ``input (N, C, *d)``, ``target (N, *d)`` -> ``()``, or ``(N, *d)`` for ``"none"``.
        See :func:`cnnlab.functional.cross_entropy`.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> loss = nn.CrossEntropyLoss()(np.array([[0.0, 0.0]]), np.array([1]))
        >>> round(loss.item(), 6)                                           # log 2
        0.693147
    """

    def __init__(self, weight=None, size_average: bool | None = None, ignore_index: int = -100,
                 reduce: bool | None = None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = check_probability(label_smoothing, "label_smoothing")

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (put a :class:`LogSoftmax` before it).

    Args:
        weight, size_average, ignore_index, reduce, reduction: as in :class:`CrossEntropyLoss`.

    Shape:
        ``input (N, C, *d)``, ``target (N, *d)`` -> ``()``, or ``(N, *d)`` for ``"none"``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.NLLLoss()(np.array([[-1.0, -2.0]]), np.array([1])).item()
        2.0
    """

    def __init__(self, weight=None, size_average: bool | None = None, ignore_index: int = -100,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error ``mean((input − target)²)``.

    Args:
        size_average, reduce: PyTorch's deprecated spellings of ``reduction`` (warned).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        ``(*), (*) -> ()``, or ``(*)`` for ``"none"``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> nn.MSELoss(reduction="sum")(np.array([1.0, 2.0]), np.array([0.0, 0.0])).item()
        5.0
    """

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)
