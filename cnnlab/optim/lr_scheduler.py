"""Learning-rate schedules: they rewrite ``group["lr"]`` of an optimiser once per ``step()``.

As in PyTorch, a scheduler sets ``group["initial_lr"]`` (the base rate) when created, its
``step()`` advances ``last_epoch`` by one and computes the next rates from the current ones
(recursively, so schedules compose with outside changes to ``lr``), and ``state_dict()`` is
plain data (ints, floats, lists), ready for JSON.

Typical use: one ``scheduler.step()`` after each epoch's ``optimizer.step()`` calls.
"""

from __future__ import annotations

import math
from typing import Any

from .._validate import _is_int
from .optimizer import Optimizer, check_number

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LRScheduler", "LinearLR", "StepLR"]


class LRScheduler:
    """Base class: subclasses write ``get_lr()``, the rates for epoch ``last_epoch``.

    Args:
        optimizer: the optimiser whose ``param_groups[i]["lr"]`` this schedule sets.
        last_epoch: ``-1`` to start a schedule; an epoch index to resume one, which needs
            ``"initial_lr"`` in every group (restore the optimiser's state first).

    Example:
        >>> from cnnlab import nn, optim
        >>> opt = optim.SGD([nn.Parameter([1.0])], lr=1.0)
        >>> sched = optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
        >>> for _ in range(2):
        ...     opt.step()
        ...     sched.step()
        >>> sched.last_epoch, sched.get_last_lr()
        (2, [0.25])
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{name}: optimizer must be a cnnlab.optim.Optimizer, received "
                f"{type(optimizer).__name__}."
            )
        if not _is_int(last_epoch) or last_epoch < -1:
            raise ValueError(f"{name}: last_epoch must be an int >= -1, received {last_epoch!r}.")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(
                        f"{name}: last_epoch={last_epoch} resumes a schedule, but "
                        f"param_groups[{i}] has no 'initial_lr'; load the optimizer's "
                        f"state_dict first, or start with last_epoch=-1."
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True                 # the step below sets epoch 0 (or resumes)
        self.step()
        self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rate of each group for epoch ``last_epoch``."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr().")

    def step(self) -> None:
        """Advance one epoch and write the new rates into the optimiser's groups."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The rates the last ``step()`` set, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimiser, as plain data (PyTorch's keys)."""
        return {key: list(value) if isinstance(value, list) else value
                for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a ``state_dict()``; the optimiser's own state restores its ``lr`` values."""
        self.__dict__.update({key: list(value) if isinstance(value, list) else value
                              for key, value in state_dict.items()})

    def _current(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    ``lr_t = lr_{t-1} * gamma`` when ``t`` is a positive multiple of ``step_size``, else
    ``lr_{t-1}``; left alone, ``lr_t = base_lr * gamma ** (t // step_size)``.

    Args:
        optimizer: the optimiser to schedule.
        step_size: period of the decay in epochs, a positive int.
        gamma: multiplicative factor of the decay.
        last_epoch: ``-1`` to start (see :class:`LRScheduler`).

    Example:
        >>> from cnnlab import nn, optim
        >>> opt = optim.SGD([nn.Parameter([1.0])], lr=1.0)
        >>> sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        >>> rates = []
        >>> for _ in range(5):
        ...     rates.append(sched.get_last_lr()[0])
        ...     sched.step()
        >>> rates
        [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        if not _is_int(step_size) or step_size <= 0:
            raise ValueError(f"StepLR: step_size must be a positive int, received {step_size!r}.")
        check_number("StepLR", "gamma", gamma, low=0.0)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current()
        return [lr * self.gamma for lr in self._current()]


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every epoch: ``lr_t = base_lr * gamma ** t``.

    Args:
        optimizer: the optimiser to schedule.
        gamma: multiplicative factor of the decay.
        last_epoch: ``-1`` to start (see :class:`LRScheduler`).

    Example:
        >>> from cnnlab import nn, optim
        >>> opt = optim.SGD([nn.Parameter([1.0])], lr=1.0)
        >>> sched = optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
        >>> sched.step()
        >>> sched.get_last_lr()
        [0.5]
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        check_number("ExponentialLR", "gamma", gamma, low=0.0)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current()
        return [lr * self.gamma for lr in self._current()]


class LinearLR(LRScheduler):
    """Scale the learning rate by a factor going linearly from ``start_factor`` to ``end_factor``.

    ``lr_t = base_lr * (start_factor + (end_factor - start_factor) * min(t, total_iters) /
    total_iters)``, computed recursively as PyTorch does (each epoch multiplies by the ratio of
    consecutive factors), so the rate stays ``base_lr * end_factor`` after ``total_iters``.

    Args:
        optimizer: the optimiser to schedule.
        start_factor: factor at epoch 0, in ``(0, 1]``.
        end_factor: factor from epoch ``total_iters`` on, in ``[0, 1]``.
        total_iters: number of epochs of the ramp, a positive int.
        last_epoch: ``-1`` to start (see :class:`LRScheduler`).

    Example:
        >>> from cnnlab import nn, optim
        >>> opt = optim.SGD([nn.Parameter([1.0])], lr=1.0)
        >>> sched = optim.lr_scheduler.LinearLR(opt, start_factor=0.5, total_iters=2)
        >>> rates = []
        >>> for _ in range(4):
        ...     rates.append(sched.get_last_lr()[0])
        ...     sched.step()
        >>> rates
        [0.5, 0.75, 1.0, 1.0]
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1) -> None:
        check_number("LinearLR", "end_factor", end_factor, low=0.0, high=1.0)
        check_number("LinearLR", "start_factor", start_factor, high=1.0)
        if start_factor <= 0:
            raise ValueError(
                f"LinearLR: start_factor must be in (0, 1], received {start_factor!r}."
            )
        if not _is_int(total_iters) or total_iters <= 0:
            raise ValueError(
                f"LinearLR: total_iters must be a positive int, received {total_iters!r}."
            )
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in self._current()]
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._current()
        slope = self.end_factor - self.start_factor
        ratio = 1.0 + slope / (self.total_iters * self.start_factor
                               + (self.last_epoch - 1) * slope)
        return [lr * ratio for lr in self._current()]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from the base rate down to ``eta_min`` over ``T_max`` epochs.

    The rates follow, for every epoch ``t`` (also past ``T_max``, where the cosine climbs
    back: the schedule is periodic with period ``2·T_max`` and returns to ``base_lr`` at
    ``t = 2·T_max``; there is no warm restart)::

        lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    They are computed by PyTorch's recursion, so the numbers are PyTorch's to the last bit and
    outside changes to ``lr`` carry through::

        lr_t = eta_min + (lr_{t-1} - eta_min) * (1 + cos(pi t / T_max))
                                                / (1 + cos(pi (t - 1) / T_max))
        lr_t = lr_{t-1} + (base_lr - eta_min) * (1 - cos(pi / T_max)) / 2
               (when t - 1 - T_max is a multiple of 2·T_max, where the ratio above is 0 / 0)

    Args:
        optimizer: the optimiser to schedule.
        T_max: number of epochs from the base rate to ``eta_min``, a positive int.
        eta_min: the lowest rate.
        last_epoch: ``-1`` to start (see :class:`LRScheduler`).

    Example:
        >>> from cnnlab import nn, optim
        >>> opt = optim.SGD([nn.Parameter([1.0])], lr=1.0)
        >>> sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2)
        >>> rates = []
        >>> for _ in range(5):
        ...     rates.append(round(sched.get_last_lr()[0], 6))
        ...     sched.step()
        >>> rates
        [1.0, 0.5, 0.0, 0.5, 1.0]
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,  # noqa: N803
                 last_epoch: int = -1) -> None:
        if not _is_int(T_max) or T_max <= 0:
            raise ValueError(
                f"CosineAnnealingLR: T_max must be a positive int, received {T_max!r}."
            )
        check_number("CosineAnnealingLR", "eta_min", eta_min, low=0.0)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, period, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current()
        if (t - 1 - period) % (2 * period) == 0:
            rise = (1 - math.cos(math.pi / period)) / 2
            return [lr + (base - eta_min) * rise
                    for lr, base in zip(self._current(), self.base_lrs)]
        ratio = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
        return [ratio * (lr - eta_min) + eta_min for lr in self._current()]
