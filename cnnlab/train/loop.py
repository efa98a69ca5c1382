"""The training loop: ``fit`` an image classifier, ``evaluate`` it, ``predict`` probabilities.

One epoch of ``fit`` is the textbook loop over shuffled mini-batches::

    model.train()
    for x, y in loader:                       # loader.set_epoch(epoch) fixed the order
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)   # mean over the batch
        loss.backward()
        optimizer.step()

then validation (``model.eval()``, no gradients), one ``lr_schedule.step()``, the epoch's entry
in the ``History`` and the callbacks. Everything random is a function of saved state: the
batch order and augmentation of ``(seed, epoch)``, dropout of cnnlab's generator, which
checkpoints store, so a run resumed from a checkpoint continues bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import functional as F
from .._validate import _is_int
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..data import DataLoader
from ..nn.module import Module
from ..optim.lr_scheduler import LRScheduler
from ..optim.optimizer import Optimizer
from .callbacks import TrainingContext
from .metrics import confusion_matrix, per_class_accuracy
from .progress import EpochProgress


class TrainingDiverged(ValueError):
    """The loss (or the weights) became NaN or infinite; training stopped before saving them.

    Attributes:
        epoch: the epoch's number, counted from 1.
        step: the batch within it, counted from 1.
        value: the offending loss (NaN or ±inf).
    """

    def __init__(self, epoch: int, step: int, steps: int, value: float, what: str = "loss"
                 ) -> None:
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(
            f"training diverged at epoch {epoch}, step {step} of {steps}: the {what} became "
            f"{value}; training stopped without saving these weights, so the last good "
            f"checkpoint is kept (try a smaller learning rate)."
        )


@dataclass
class History:
    """Per-epoch records of ``fit``, one dict per epoch in ``epochs``.

    Each dict has ``epoch`` (epochs completed, counted from 1), ``loss`` and ``accuracy`` (the
    running means over the epoch's training batches), ``val_loss`` and ``val_accuracy`` (with
    ``val_data``), ``lr`` (the first group's learning rate during the epoch), ``seconds`` (the
    epoch, validation included) and ``images_per_s`` (training throughput).

    Example:
        >>> history = History([{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.5}])
        >>> history["loss"]
        [0.9, 0.5]
        >>> History.from_json(history.to_json()) == history
        True
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False

    def __getitem__(self, key: str) -> list[float]:
        """The values of one record across the epochs (``history["val_accuracy"]``)."""
        if not any(key in entry for entry in self.epochs):
            known = sorted({k for entry in self.epochs for k in entry})
            raise KeyError(f"History has no {key!r} record; it has {known}.")
        return [entry[key] for entry in self.epochs if key in entry]

    def __len__(self) -> int:
        return len(self.epochs)

    def to_json(self, indent: int | None = 2) -> str:
        """``{"epochs": [...], "stopped_early": ...}`` as JSON text."""
        return json.dumps({"epochs": self.epochs, "stopped_early": self.stopped_early},
                          indent=indent)

    @classmethod
    def from_json(cls, text: str) -> History:
        """Read what :meth:`to_json` wrote."""
        data = json.loads(text)
        return cls(epochs=list(data["epochs"]), stopped_early=bool(data["stopped_early"]))

    def _repr_html_(self) -> str:
        """A notebook shows the epochs as a table and, with matplotlib, the curves beside it."""
        from .._display import curves_html
        return curves_html(self.epochs, self.stopped_early)


# ---------------------------------------------------------------------------- inputs
def _arrays(data: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of a dataset (``.images``/``.labels``) or an ``(images, labels)`` pair."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        images, labels = data.images, data.labels
    elif isinstance(data, tuple) and len(data) == 2:
        images, labels = data
    else:
        raise TypeError(
            f"{where} must be a dataset with .images and .labels (cnnlab.data.ArrayDataset) or "
            f"an (images, labels) pair, received {type(data).__name__}."
        )
    images, labels = np.asarray(images), np.asarray(labels)
    if len(images) != len(labels):
        raise ValueError(f"{where} has {len(images)} images but {len(labels)} labels.")
    if len(images) == 0:
        raise ValueError(f"{where} is empty: it has no images.")
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(
            f"{where} images must be floating-point (scaled to [0, 1]), received dtype "
            f"{images.dtype}."
        )
    return images, labels


def _train_loader(train_data: Any, batch_size: int, seed: int, transform: Any) -> Any:
    """A loader (anything with ``set_epoch``) is used as is; a dataset gets a DataLoader."""
    if hasattr(train_data, "set_epoch") and hasattr(train_data, "__iter__"):
        return train_data
    if not (hasattr(train_data, "images") and hasattr(train_data, "labels")):
        raise TypeError(
            f"fit: train_data must be a dataset with .images and .labels "
            f"(cnnlab.data.ArrayDataset) or a loader with set_epoch, received "
            f"{type(train_data).__name__}."
        )
    _arrays(train_data, "fit train_data")
    return DataLoader(train_data, batch_size=batch_size, shuffle=True, seed=seed,
                      drop_last=False, transform=transform)


def _check_fit(model: Any, optimizer: Any, epochs: Any, batch_size: Any, start_epoch: Any,
               seed: Any, lr_schedule: Any, callbacks: Sequence[Any]) -> None:
    if not isinstance(model, Module):
        raise TypeError(f"fit: model must be a cnnlab.nn.Module, received "
                        f"{type(model).__name__}.")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"fit: optimizer must be a cnnlab.optim.Optimizer, received "
                        f"{type(optimizer).__name__}.")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not _is_int(value) or value <= 0:
            raise ValueError(f"fit: {name} must be a positive int, received {value!r}.")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"fit: seed must be a non-negative int, received {seed!r}.")
    if not _is_int(start_epoch) or not 0 <= start_epoch < epochs:
        raise ValueError(
            f"fit: start_epoch must be an int in [0, epochs) = [0, {epochs}), received "
            f"{start_epoch!r}; epochs counts all epochs, those before start_epoch included."
        )
    owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not any(id(p) in owned for p in model.parameters()):
        raise ValueError(
            "fit: the optimizer holds none of the model's parameters (was it created for "
            "another model instance?)."
        )
    if lr_schedule is not None:
        if not isinstance(lr_schedule, LRScheduler):
            raise TypeError(f"fit: lr_schedule must be a cnnlab.optim.lr_scheduler scheduler "
                            f"or None, received {type(lr_schedule).__name__}.")
        if lr_schedule.optimizer is not optimizer:
            raise ValueError("fit: lr_schedule schedules another optimizer than the one given.")
    for callback in callbacks:
        if not callable(getattr(callback, "on_epoch_end", None)):
            raise TypeError(f"fit: each callback needs an on_epoch_end(epoch, logs) method, "
                            f"received {type(callback).__name__}.")


# ---------------------------------------------------------------------------- Ctrl-C, SIGTERM
class Terminated(KeyboardInterrupt):
    """Training was stopped by SIGTERM (``kill``, a job scheduler, ``docker stop``).

    A ``KeyboardInterrupt``, so everything that saves on Ctrl-C saves on SIGTERM too; the
    ``cnnlab`` command exits with status 143 (128 + 15) for it and 130 for Ctrl-C.
    """


@contextlib.contextmanager
def _step_boundary_interrupts() -> Iterator[Callable[[], type[KeyboardInterrupt] | None]]:
    """Let a first Ctrl-C or SIGTERM finish the running step (so saved state is consistent);
    a second one interrupts at once. Yields a function giving the exception to raise at the
    next step boundary (``KeyboardInterrupt`` or :class:`Terminated`), or None.

    Only in the main thread, and only for signals that have Python's default handling
    (SIGINT: ``default_int_handler``; SIGTERM: ``SIG_DFL``); a program's own handler is left in
    place. The stop is raised as ``KeyboardInterrupt`` (Ctrl-C) or :class:`Terminated`.
    """
    requested: list[type[KeyboardInterrupt]] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def handler(signum: int, frame: Any) -> None:
        kind = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        if requested:
            raise kind
        requested.append(kind)

    previous = {}
    defaults = {signal.SIGINT: signal.default_int_handler}
    if hasattr(signal, "SIGTERM"):
        defaults[signal.SIGTERM] = signal.SIG_DFL
    for number, default in defaults.items():
        if signal.getsignal(number) is default:
            previous[number] = signal.signal(number, handler)
    try:
        yield lambda: requested[0] if requested else None
    finally:
        for number, handler_before in previous.items():
            signal.signal(number, handler_before)


@contextlib.contextmanager
def _evaluation_mode(model: Module) -> Iterator[None]:
    """``model.eval()`` and no gradients inside; every module's mode is restored after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode


# ---------------------------------------------------------------------------- fit
def fit(model: Module, train_data: Any, *, epochs: int, optimizer: Optimizer,
        batch_size: int = 64, lr_schedule: LRScheduler | None = None,
        callbacks: Sequence[Any] = (), val_data: Any = None, seed: int = 0,
        start_epoch: int = 0, progress: bool = True, transform: Any = None) -> History:
    """Train ``model`` on ``train_data`` with cross-entropy and ``optimizer``.

    Epochs ``start_epoch, ..., epochs - 1`` are trained (0-based), so a run resumed from a
    checkpoint saved after ``N`` epochs passes ``start_epoch=N`` and the same ``epochs``.
    Each epoch: ``set_epoch`` on the loader (shuffle order and augmentation are a function of
    ``seed`` and the epoch), the training steps, validation on ``val_data`` (eval mode, no
    gradients), one ``lr_schedule.step()``, the ``History`` entry, then each callback's
    ``on_epoch_end(epoch, logs)``; any of them returning ``True`` stops training.

    Args:
        model: a classifier mapping images ``(N, C, H, W)`` to logits ``(N, K)``.
        train_data: a dataset with ``.images``/``.labels`` (``cnnlab.data.ArrayDataset``),
            wrapped in ``cnnlab.data.DataLoader(shuffle=True, seed=seed, transform=...)``, or
            a loader with ``set_epoch`` (then its own batch size, seed and transform count).
        epochs: the number of the last epoch (all epochs, those before ``start_epoch``
            included).
        optimizer: an optimiser over ``model``'s parameters.
        batch_size: images per training step (and per validation batch).
        lr_schedule: a scheduler over ``optimizer``, stepped once after each epoch.
        callbacks: ``ModelCheckpoint``, ``EarlyStopping``, or objects with ``on_epoch_end``.
        val_data: a dataset (or ``(images, labels)``) evaluated after each epoch, or None.
        seed: seed of the shuffle order and augmentation.
        start_epoch: 0-based index of the first epoch to train (a checkpoint's ``epoch``).
        progress: draw a progress bar on stderr (only if it is a terminal).
        transform: augmentation for the training batches only (validation sees the images
            as stored).

    Returns:
        The :class:`History` of the epochs trained.

    Raises:
        TrainingDiverged: the loss or the weights became NaN/inf (nothing is saved for that
            epoch, so the last good checkpoint stays).
        KeyboardInterrupt: re-raised after the callbacks' ``on_interrupt`` (which save);
            the first Ctrl-C lets the running step finish, so the saved state is consistent.
            SIGTERM is handled the same way and raised as :class:`Terminated`, a subclass.

    Shape:
        ``train_data.images (N, C, H, W)``, ``train_data.labels (N,)`` int class indices.

    Example:
        >>> import numpy as np, cnnlab
        >>> from cnnlab import nn, optim
        >>> from cnnlab.data import ArrayDataset
        >>> cnnlab.manual_seed(0)
        >>> images = np.random.default_rng(0).random((64, 1, 4, 4), dtype=np.float32)
        >>> labels = (images[:, 0, 0, 0] > 0.5).astype(np.int64)      # bright corner or not
        >>> data = ArrayDataset(images, labels, ["dark", "bright"])
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> opt = optim.SGD(model.parameters(), lr=0.5)
        >>> history = fit(model, data, epochs=20, optimizer=opt, batch_size=16, progress=False)
        >>> len(history), history.epochs[-1]["accuracy"] > 0.8
        (20, True)
    """
    callbacks = list(callbacks)
    _check_fit(model, optimizer, epochs, batch_size, start_epoch, seed, lr_schedule, callbacks)
    loader = _train_loader(train_data, batch_size, seed, transform)
    val_arrays = None if val_data is None else _arrays(val_data, "fit val_data")
    context = TrainingContext(model=model, optimizer=optimizer, lr_schedule=lr_schedule,
                              epochs=epochs, start_epoch=start_epoch, batch_size=batch_size,
                              seed=seed, steps=len(loader), has_validation=val_arrays is not None)
    for callback in callbacks:
        if hasattr(callback, "on_train_begin"):
            callback.on_train_begin(context)
    step_callbacks = [c for c in callbacks if callable(getattr(c, "on_step_end", None))]
    history = History()
    partial: dict[str, float] = {}
    with _step_boundary_interrupts() as stop_requested:
        try:
            for epoch in range(start_epoch, epochs):
                context.epoch, context.step = epoch, 0
                partial = {"epoch": epoch}
                logs = _run_epoch(model, loader, optimizer, lr_schedule, val_arrays, context,
                                  progress, stop_requested, partial, step_callbacks)
                history.epochs.append(logs)
                stop = False
                for callback in callbacks:
                    stop = bool(callback.on_epoch_end(epoch, dict(logs))) or stop
                context.epoch, context.step = epoch + 1, 0              # epoch e is done
                if stop_requested():          # a stop during validation or the callbacks
                    raise stop_requested()
                if stop:
                    history.stopped_early = True
                    break
        except KeyboardInterrupt:
            for callback in callbacks:
                if hasattr(callback, "on_interrupt"):
                    callback.on_interrupt(context.epoch, dict(partial))
            raise
    for callback in callbacks:
        if hasattr(callback, "on_train_end"):
            callback.on_train_end(history)
    return history


def _run_epoch(model: Module, loader: Any, optimizer: Optimizer,
               lr_schedule: LRScheduler | None, val_arrays: tuple[np.ndarray, np.ndarray] | None,
               context: TrainingContext, progress: bool, stop_requested: Callable[[], Any],
               partial: dict[str, float], step_callbacks: Sequence[Any] = ()
               ) -> dict[str, float]:
    """Train one epoch, validate, step the schedule; returns the epoch's logs."""
    epoch, steps = context.epoch, context.steps
    start = time.perf_counter()
    lr = float(optimizer.param_groups[0]["lr"])
    loader.set_epoch(epoch)
    model.train()
    bar = EpochProgress(epoch + 1, context.epochs, steps, enabled=progress)
    loss_sum, correct, seen = 0.0, 0, 0
    try:
        for step, (x, y) in enumerate(loader, start=1):
            if stop_requested():
                raise stop_requested()
            y = np.asarray(y)
            optimizer.zero_grad()
            logits = model(Tensor(x))                                   # (B, K)
            loss = F.cross_entropy(logits, y)
            value = float(loss.data)
            if not math.isfinite(value):
                raise TrainingDiverged(epoch + 1, step, steps, value)
            loss.backward()
            optimizer.step()
            context.step = step
            loss_sum += value * len(y)
            correct += int(np.count_nonzero(logits.data.argmax(axis=1) == y))
            seen += len(y)
            partial.update(loss=loss_sum / seen, accuracy=correct / seen)
            bar.update(step, loss=loss_sum / seen, accuracy=correct / seen, images=seen)
            stop = False
            for callback in step_callbacks:        # e.g. the explorer's live curve
                stop = bool(callback.on_step_end(step, dict(partial))) or stop
            if stop:                               # as a Ctrl-C after this step
                raise KeyboardInterrupt
        train_seconds = time.perf_counter() - start
        for p in model.parameters():
            if not np.isfinite(p.data).all():
                bad = p.data[~np.isfinite(p.data)].flat[0]
                raise TrainingDiverged(epoch + 1, steps, steps, float(bad), what="weights")
        logs: dict[str, float] = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1),
                                  "accuracy": correct / max(seen, 1)}
        if val_arrays is not None:
            result = _evaluate_arrays(model, *val_arrays, context.batch_size, stop_requested)
            logs["val_loss"], logs["val_accuracy"] = result["loss"], result["accuracy"]
        if lr_schedule is not None:
            lr_schedule.step()
        seconds = time.perf_counter() - start
        logs.update(lr=lr, seconds=seconds,
                    images_per_s=seen / train_seconds if train_seconds > 0 else 0.0)
        bar.close(logs)
        return logs
    finally:
        bar.abandon()


# ---------------------------------------------------------------------------- evaluate, predict
def _evaluate_arrays(model: Module, images: np.ndarray, labels: np.ndarray, batch_size: int,
                     stop_requested: Callable[[], Any] = lambda: None) -> dict[str, Any]:
    total_loss, predictions = 0.0, []
    num_classes = None
    with _evaluation_mode(model):
        for begin in range(0, len(images), batch_size):
            if stop_requested():
                raise stop_requested()
            x, y = images[begin:begin + batch_size], labels[begin:begin + batch_size]
            logits = model(Tensor(x))                                   # (B, K)
            if logits.ndim != 2:
                raise ValueError(f"evaluate expected the model to return logits (N, K), "
                                 f"received shape {logits.shape}.")
            num_classes = logits.shape[1]
            total_loss += float(F.cross_entropy(logits, y, reduction="sum").data)
            predictions.append(logits.data.argmax(axis=1))
    predicted = np.concatenate(predictions)
    matrix = confusion_matrix(labels, predicted, num_classes)
    return {"loss": total_loss / len(images),
            "accuracy": float(np.trace(matrix) / len(images)),
            "per_class_accuracy": per_class_accuracy(matrix),
            "confusion_matrix": matrix,
            "count": int(len(images))}


def evaluate(model: Module, data: Any, batch_size: int = 256) -> dict[str, Any]:
    """Loss, accuracy, per-class accuracy and confusion matrix of ``model`` on ``data``.

    Runs in evaluation mode without gradients, batch by batch (memory stays flat); the
    modules' train/eval modes are restored afterwards.

    Args:
        model: a classifier returning logits ``(N, K)``.
        data: a dataset with ``.images``/``.labels`` (and ``.classes``), or an
            ``(images, labels)`` pair.
        batch_size: images per forward pass.

    Returns:
        ``{"loss": mean cross-entropy, "accuracy": float, "per_class_accuracy": (K,) array
        (NaN for a class without samples), "confusion_matrix": (K, K) int array with rows the
        true classes and columns the predictions, "count": N, "classes": K names}``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> images, labels = np.zeros((5, 1, 2, 2), np.float32), np.array([0, 1, 2, 2, 1])
        >>> result = evaluate(model, (images, labels))
        >>> result["confusion_matrix"].shape, result["count"]
        ((3, 3), 5)
    """
    if not isinstance(model, Module):
        raise TypeError(f"evaluate: model must be a cnnlab.nn.Module, received "
                        f"{type(model).__name__}.")
    if not _is_int(batch_size) or batch_size <= 0:
        raise ValueError(f"evaluate: batch_size must be a positive int, received {batch_size!r}.")
    images, labels = _arrays(data, "evaluate data")
    classes = getattr(data, "classes", None)
    result = _evaluate_arrays(model, images, labels, batch_size)
    k = result["confusion_matrix"].shape[0]
    if classes is not None and len(classes) != k:
        name = getattr(data, "name", "the data")
        raise ValueError(f"evaluate: the model gives {k} class scores but {name!r} has "
                         f"{len(classes)} classes.")
    result["classes"] = [str(c) for c in classes] if classes is not None else \
        [str(i) for i in range(k)]
    return result


def predict(model: Module, images: Any, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (softmax of the logits) for a batch of images, in evaluation mode.

    Args:
        model: a classifier returning logits ``(N, K)``.
        images: floating-point images ``(N, C, H, W)`` scaled as in training (ndarray or
            Tensor).
        batch_size: images per forward pass.

    Returns:
        ``(N, K)`` probabilities; each row sums to 1.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> predict(model, np.zeros((2, 1, 2, 2), np.float32)).sum(axis=1).round(6)
        array([1., 1.], dtype=float32)
    """
    if not isinstance(model, Module):
        raise TypeError(f"predict: model must be a cnnlab.nn.Module, received "
                        f"{type(model).__name__}.")
    if not _is_int(batch_size) or batch_size <= 0:
        raise ValueError(f"predict: batch_size must be a positive int, received {batch_size!r}.")
    array = np.asarray(images.data if isinstance(images, Tensor) else images)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"predict: images must be floating-point (scaled as in training), "
                        f"received dtype {array.dtype}.")
    if array.ndim < 2 or len(array) == 0:
        raise ValueError(f"predict: images must be a non-empty batch (N, C, H, W), received "
                         f"shape {array.shape}.")
    outputs = []
    with _evaluation_mode(model):
        for begin in range(0, len(array), batch_size):
            logits = model(Tensor(array[begin:begin + batch_size]))     # (B, K)
            outputs.append(F.softmax(logits, dim=1).data)
    return np.concatenate(outputs)
