"""Optimisers and learning-rate schedules with ``torch.optim``'s names, arguments and numbers.

>>> from cnnlab import nn, optim
>>> opt = optim.SGD([nn.Parameter([1.0, 2.0])], lr=0.1, momentum=0.9)
>>> sched = optim.lr_scheduler.StepLR(opt, step_size=10)
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr_scheduler"]


def __getattr__(name: str):
    """``optim.StepLR`` and friends: point at ``optim.lr_scheduler``, where torch keeps them."""
    if name in lr_scheduler.__all__:
        raise AttributeError(
            f"cnnlab.optim has no attribute {name!r}: learning-rate schedules live in "
            f"optim.lr_scheduler, as in torch; use optim.lr_scheduler.{name}."
        )
    raise AttributeError(f"module 'cnnlab.optim' has no attribute {name!r}")
