"""Callbacks that ``fit`` calls around each epoch: checkpoints (last and best), early stopping.

A callback is any object with ``on_epoch_end(epoch, logs) -> bool | None`` (``True`` stops
training after this epoch); it may also have ``on_step_end(step, logs) -> bool | None`` (after
each training step, ``logs`` the epoch's running ``loss`` and ``accuracy``; ``True`` stops at once
as a Ctrl-C does: ``on_interrupt`` runs and ``fit`` raises ``KeyboardInterrupt``),
``on_train_begin(context)``,
``on_interrupt(epoch, logs)`` (Ctrl-C) and ``on_train_end(history)``. ``epoch`` is the 0-based
index of the epoch; ``logs`` is the epoch's entry of the ``History`` (``loss``, ``accuracy``,
``val_loss``, ``val_accuracy``, ``lr``, ``seconds``, ``images_per_s`` and ``epoch``, the number
of epochs completed).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._validate import _is_int, check_choice
from ..nn.module import Module
from ..optim.lr_scheduler import LRScheduler
from ..optim.optimizer import Optimizer
from .checkpoint import CheckpointError, checkpoint_path, load_checkpoint, save_checkpoint

#: The numbers ``fit`` records for each epoch, any of which a callback may monitor.
MONITORABLE = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "images_per_s")


@dataclass
class TrainingContext:
    """What ``fit`` tells its callbacks at ``on_train_begin``; ``epoch``/``step`` stay current.

    Attributes:
        model, optimizer, lr_schedule: the objects being trained.
        epochs: the number of the last epoch (``fit``'s ``epochs``).
        start_epoch: the first epoch's 0-based index (non-zero when resuming).
        batch_size, seed: the training loader's settings.
        steps: batches per epoch.
        has_validation: whether ``fit`` got ``val_data`` (``val_*`` logs exist).
        epoch: 0-based index of the epoch being trained.
        step: batches of that epoch done (optimiser steps taken).
    """

    model: Module
    optimizer: Optimizer
    lr_schedule: LRScheduler | None
    epochs: int
    start_epoch: int
    batch_size: int
    seed: int
    steps: int
    has_validation: bool
    epoch: int = 0
    step: int = 0

    def settings(self) -> dict[str, Any]:
        """The ``fit`` settings a resumed run must repeat (stored in checkpoints)."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, "seed": self.seed}


class Callback:
    """Base class with no-op hooks; subclass and override the ones you need.

    Example:
        >>> class PrintLoss(Callback):
        ...     def on_epoch_end(self, epoch, logs):
        ...         print(f"epoch {logs['epoch']}: loss {logs['loss']:.3f}")
    """

    def on_train_begin(self, context: TrainingContext) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool | None:
        """Called after each epoch; return ``True`` to stop training."""
        return None

    def on_step_end(self, step: int, logs: dict[str, float]) -> bool | None:
        """Called after each training step (1-based within the epoch); ``True`` interrupts."""
        return None

    def on_interrupt(self, epoch: int, logs: dict[str, float]) -> None:
        """Called on Ctrl-C (``KeyboardInterrupt``) before ``fit`` re-raises it."""

    def on_train_end(self, history: Any) -> None:
        """Called once after the last epoch (not after an error or an interrupt)."""


def _resolve_mode(mode: str, monitor: str, where: str) -> str:
    check_choice(mode, ("auto", "min", "max"), f"{where} mode")
    if mode == "auto":
        return "max" if "acc" in monitor or monitor == "images_per_s" else "min"
    return mode


def _check_monitor(monitor: str, where: str) -> str:
    if monitor not in MONITORABLE:
        raise ValueError(
            f"{where} monitor must be one of {', '.join(MONITORABLE)}, received {monitor!r}."
        )
    return monitor


def _check_validation(monitor: str | None, context: TrainingContext, where: str) -> None:
    if monitor is not None and monitor.startswith("val_") and not context.has_validation:
        raise ValueError(
            f"{where} monitors {monitor!r}, but fit was given no val_data; pass val_data or "
            f"monitor {monitor.removeprefix('val_')!r}."
        )


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if not math.isfinite(value):
        return False
    return value < best - min_delta if mode == "min" else value > best + min_delta


class ModelCheckpoint(Callback):
    """Save the model after every epoch (``last``) and whenever ``monitor`` improves (``best``).

    Files, in ``directory`` (created if needed), each one ``.safetensors`` file committed by one
    atomic rename (:func:`~cnnlab.train.checkpoint.save_checkpoint`):

    - ``{last}.safetensors``: the end of the latest completed epoch, with optimiser, scheduler
      and random state; ``fit(start_epoch=checkpoint.epoch)`` resumes it exactly.
    - ``{best}.safetensors``: the epoch with the best ``monitor`` value so far (its metrics are
      in the description). When resuming, the best value is read back from this file, so a worse
      resumed epoch does not replace it.
    - ``{interrupted}.safetensors``: written on Ctrl-C or SIGTERM, the weights after the last
      finished step of the interrupted epoch (``extra.interrupted`` true, ``extra.step`` the
      steps done). ``last`` is left as it was, still the last complete epoch; the interrupted
      file is a snapshot to inspect, not a resume point (resuming it would replay the epoch's
      first steps).

    Each file also carries the history of all epochs so far (``history`` plus the epochs of
    this run) and ``extra.train_seconds``, the training time so far (``seconds`` plus this run's).

    An epoch whose loss or weights became NaN/inf is never saved: ``fit`` raises
    ``TrainingDiverged`` before calling the callbacks, so the previous files stay.

    Args:
        directory: folder of the files.
        monitor: the log to watch for ``best`` (see ``MONITORABLE``), or None for no ``best``.
        mode: ``"max"``, ``"min"``, or ``"auto"`` (max for accuracies, min otherwise).
        model_name: the name that rebuilds the model (``"lenet5"``); default the class name.
        model_args: keyword arguments that rebuild it.
        config: training configuration to store with the weights (JSON data).
        last, best, interrupted: file names without suffix; None switches that file off.
        min_delta: how much ``monitor`` must improve to count.
        history: the per-epoch logs of the run being resumed (a checkpoint's ``history``).
        seconds: its training time so far (a checkpoint's ``extra["train_seconds"]``).

    Example:
        >>> import tempfile
        >>> checkpoints = ModelCheckpoint(tempfile.mkdtemp(), monitor="val_accuracy",
        ...                               model_name="lenet5", model_args={"num_classes": 10})
        >>> checkpoints.mode
        'max'
    """

    def __init__(self, directory: str | os.PathLike, monitor: str | None = "val_accuracy",
                 mode: str = "auto", *, model_name: str | None = None,
                 model_args: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
                 last: str | None = "last", best: str | None = "best",
                 interrupted: str | None = "interrupted", min_delta: float = 0.0,
                 history: list[dict[str, Any]] | None = None, seconds: float = 0.0) -> None:
        self.directory = Path(directory)
        self.monitor = None if monitor is None else _check_monitor(monitor, "ModelCheckpoint")
        self.mode = _resolve_mode(mode, monitor or "", "ModelCheckpoint")
        self.model_name = model_name
        self.model_args = dict(model_args or {})
        self.config = dict(config or {})
        self.last, self.best, self.interrupted = last, best, interrupted
        self.min_delta = float(min_delta)
        self.best_value = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.context: TrainingContext | None = None
        self.history = list(history or [])
        self.seconds_before, self._started = float(seconds), time.perf_counter()

    def path(self, which: str = "last") -> Path:
        """The file of ``"last"``, ``"best"`` or ``"interrupted"``."""
        name = {"last": self.last, "best": self.best, "interrupted": self.interrupted}[which]
        if name is None:
            raise ValueError(f"ModelCheckpoint saves no {which!r} file ({which}=None).")
        return checkpoint_path(self.directory / name)

    def on_train_begin(self, context: TrainingContext) -> None:
        _check_validation(self.monitor if self.best else None, context, "ModelCheckpoint")
        self.context = context
        self._started = time.perf_counter()
        self.directory.mkdir(parents=True, exist_ok=True)
        if context.start_epoch > 0 and self.best and self.monitor:
            self._read_best()

    def _read_best(self) -> None:
        """On resume, take the best value so far from the existing best file, if readable."""
        try:
            saved = load_checkpoint(self.path("best"))
            value, epoch = float(saved.metrics[self.monitor]), saved.epoch
        except (OSError, CheckpointError, KeyError, TypeError, ValueError):
            return
        if math.isfinite(value):
            self.best_value, self.best_epoch = value, epoch

    def _save(self, name: str, epoch: int, logs: dict[str, Any], **extra: Any) -> None:
        context = self.context
        if context is None:
            raise RuntimeError("ModelCheckpoint is used by fit, which calls on_train_begin.")
        save_checkpoint(
            self.directory / name, context.model, context.optimizer,
            model_name=self.model_name or type(context.model).__name__,
            model_args=self.model_args, config=self.config, epoch=epoch, metrics=logs,
            scheduler=context.lr_schedule, history=self.history,
            extra={"fit": context.settings(), "train_seconds": round(
                self.seconds_before + time.perf_counter() - self._started, 3), **extra},
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        self.history.append(dict(logs))
        if self.last:
            self._save(self.last, epoch + 1, logs, interrupted=False)
        if self.best and self.monitor:
            value = float(logs[self.monitor])
            if _improved(value, self.best_value, self.mode, self.min_delta):
                self.best_value, self.best_epoch = value, epoch + 1
                self._save(self.best, epoch + 1, logs, interrupted=False)
        return False

    def on_interrupt(self, epoch: int, logs: dict[str, float]) -> None:
        if self.interrupted and self.context is not None:
            self._save(self.interrupted, epoch, logs, interrupted=True,
                       step=self.context.step, steps=self.context.steps)


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs in a row.

    Args:
        monitor: the log to watch (see ``MONITORABLE``), e.g. ``"val_loss"``.
        patience: a positive int: training stops after the ``patience``-th epoch in a row
            without improvement (1 stops at the first).
        min_delta: the smallest change that counts as an improvement.
        mode: ``"max"``, ``"min"``, or ``"auto"`` (max for accuracies, min otherwise).

    Attributes:
        best: the best value seen; ``wait``: epochs since it; ``stopped_epoch``: the number of
        the epoch after which training stopped, or None.

    Example:
        >>> stopper = EarlyStopping("val_loss", patience=2)
        >>> losses = [0.5, 0.4, 0.45, 0.39, 0.41, 0.42]
        >>> [stopper.on_epoch_end(e, {"val_loss": v}) for e, v in enumerate(losses)]
        [False, False, False, False, False, True]
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto") -> None:
        self.monitor = _check_monitor(monitor, "EarlyStopping")
        if not _is_int(patience) or patience <= 0:
            raise ValueError(f"EarlyStopping patience must be a positive int, received "
                             f"{patience!r}.")
        if not isinstance(min_delta, (int, float)) or not min_delta >= 0:
            raise ValueError(f"EarlyStopping min_delta must be a number >= 0, received "
                             f"{min_delta!r}.")
        self.patience, self.min_delta = patience, float(min_delta)
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_train_begin(self, context: TrainingContext) -> None:
        _check_validation(self.monitor, context, "EarlyStopping")

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        value = float(logs[self.monitor])
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch + 1
            return True
        return False
