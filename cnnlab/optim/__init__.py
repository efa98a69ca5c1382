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
