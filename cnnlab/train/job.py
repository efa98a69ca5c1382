"""A training job as ``cnnlab train`` runs it: data, standardisation, model, optimiser, schedule,
resume, checkpoints and the final test metrics — importable, so the command line and the explorer
run the same code.

>>> TrainConfig().model, default_lr("sgd")
('lenet5', 0.05)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .callbacks import Callback


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the checkpoint and printed first)."""

    model: str = "lenet5"         # a name from cnnlab.models.available()
    data: str = "digits"          # digits (embedded), mnist, fashion-mnist, or an image folder
    epochs: int = 15
    batch_size: int = 64
    lr: float = 2e-3              # Adam (beats 1e-3 on fashion-mnist); SGD: 0.05, momentum 0.9
    optimizer: str = "adam"       # adam | sgd
    seed: int = 0
    schedule: str = "cosine"      # cosine (annealed to 0 over the epochs) | constant
    augment: str = "auto"         # auto | none | affine | flip (see AUGMENTATIONS)
    out: str = ""                 # default: runs/<model>-<data>

    def __post_init__(self):
        if not self.out:
            self.out = f"runs/{self.model}-{Path(self.data).name}"


#: Augmentation of the training batches (validation and test see the images as stored). Pixels
#: moved in from outside the image take the background's value. ``auto``: ``affine`` for
#: digits and MNIST, ``flip`` for Fashion-MNIST, ``none`` for a folder of your own images.
AUGMENTATIONS = {
    "none": "no augmentation",
    "affine": "rotation up to 10°, shifts up to 10%, scale 0.9-1.1 (handwriting)",
    "flip": "horizontal flip, shifts up to 10% (objects seen from either side)",
}
_AUTO_AUGMENT = {"digits": "affine", "mnist": "affine", "fashion-mnist": "flip"}


def augmentation(name: str, data: str, background: Sequence[float]):
    """The training transform for ``--augment name`` (``auto`` resolved by ``data``), or None.

    ``background``: the value outside the image per channel, in the units the network sees.
    """
    from ..data.transforms import Compose, RandomAffine, RandomHorizontalFlip

    if name == "auto":
        name = _AUTO_AUGMENT.get(data, "none")
    if name not in AUGMENTATIONS:
        raise ValueError(f"--augment: expected auto or one of {', '.join(AUGMENTATIONS)}, "
                         f"received {name!r}.")
    if name == "affine":
        return RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1),
                            fill=background)
    if name == "flip":
        return Compose([RandomHorizontalFlip(),
                        RandomAffine(degrees=0, translate=(0.1, 0.1), fill=background)])
    return None


#: What a resumed run may not change (the weights, their optimiser state and the schedule's
#: curve depend on it), and how each setting is spelled on the command line.
_FIXED_ON_RESUME = ("model", "data", "optimizer", "schedule")
_OPTION = {"batch_size": "--batch-size", "lr": "--lr", "seed": "--seed", "epochs": "--epochs",
           "model": "--model", "data": "--data", "optimizer": "--optimizer",
           "schedule": "--schedule"}


def default_lr(optimizer: str) -> float:
    """The learning rate a run gets when none is asked for: 2e-3 for Adam, 0.05 for SGD."""
    return TrainConfig.lr if optimizer == "adam" else 0.05


def resume_config(checkpoint_path: str, given: Mapping[str, Any]) -> TrainConfig:
    """The configuration of a resumed run: each setting as ``given`` (the options the user
    typed), else as the checkpoint saved it; ``out`` defaults to the checkpoint's folder.

    ``run_training(config, resume=checkpoint_path)`` then says what changed, or refuses.
    """
    from .checkpoint import load_checkpoint

    saved = load_checkpoint(checkpoint_path).config
    values = {}
    for item in fields(TrainConfig):
        if given.get(item.name) is not None:
            values[item.name] = given[item.name]
        elif item.name == "out":
            values["out"] = str(Path(checkpoint_path).parent)
        elif item.name in saved:
            values[item.name] = saved[item.name]
    for name, before in _BEFORE_THE_SETTING.items():    # saved by an older cnnlab
        if given.get(name) is None and name not in saved:
            values[name] = before
    if "lr" not in values:
        values["lr"] = default_lr(values.get("optimizer", TrainConfig.optimizer))
    return TrainConfig(**values)


#: What a checkpoint saved before a setting existed was trained with.
_BEFORE_THE_SETTING = {"schedule": "constant", "augment": "none"}


class _EpochLines(Callback):
    """One plain line per epoch through ``log`` (for pipes, files and CI, where no bar shows)."""

    def __init__(self, epochs: int, log: Callable[[str], None]) -> None:
        self.epochs, self.log = epochs, log

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        from .progress import epoch_line

        self.log(epoch_line(epoch + 1, self.epochs, logs))


def run_training(config: TrainConfig, *, resume: str | None = None, progress: bool = True,
                 callbacks: Sequence[Callback] = (), log: Callable[[str], None] = print,
                 epoch_lines: bool = False) -> dict:
    """Train ``config.model`` on ``config.data`` and write ``config.out``.

    Writes ``model.safetensors`` (the last epoch, a resume point), ``best.safetensors`` (the
    best test accuracy), ``history.json`` (all epochs, those of a resumed run's first part
    included) and ``metrics.json``; returns the metrics (``test_accuracy``, ``test_loss``,
    ``train_seconds`` (both parts of a resumed run), ``epochs``, ``images_per_s``).
    ``callbacks`` run after the checkpoint writer (the explorer's live curves); ``progress``
    draws the bar on a terminal, ``epoch_lines`` logs one line per epoch instead.

    Only one training writes to a folder at a time (``.train.lock``; a second one raises
    ``OutputLocked``). A mistake in the request raises ``ValueError`` before any work;
    ``KeyboardInterrupt`` (Ctrl-C) or ``Terminated`` (SIGTERM) propagates after the running step
    is saved (``interrupted.safetensors``), the last complete epoch staying in
    ``model.safetensors``.
    """
    from .lock import OutputLock

    with OutputLock(config.out):
        return _run_locked(config, resume, progress, callbacks, log, epoch_lines)


def _run_locked(config: TrainConfig, resume: str | None, progress: bool,
                callbacks: Sequence[Callback], log: Callable[[str], None],
                epoch_lines: bool) -> dict:
    from .. import models, optim, random
    from ..data import load_dataset
    from ..data.images import border_mean
    from ..data.transforms import Normalize
    from ..ops import kernels
    from .callbacks import ModelCheckpoint
    from .checkpoint import load_checkpoint, restore_training
    from .loop import History, evaluate, fit

    out = Path(config.out)
    checkpoint, changes = None, []
    if resume:
        checkpoint = load_checkpoint(resume)
        changes = _check_resume(resume, checkpoint, config)
    train_set, test_set = load_dataset(config.data)
    if config.batch_size > len(train_set):
        log(f"cnnlab train: batch size {config.batch_size:,} is larger than the "
            f"{len(train_set):,} training images; using {len(train_set):,}")
        config.batch_size = len(train_set)
    # Standardise with the training set's per-channel statistics; the checkpoint keeps them,
    # so evaluate and predict feed the network what it was trained on.
    normalize = Normalize.from_data(train_set.images)
    # How light the training images' background is (0 black ... 1 white): predict inverts a
    # picture whose background is the opposite (light drawings for an MNIST model, and back).
    background = round(border_mean(train_set.images), 4)
    train_set.images, test_set.images = normalize(train_set.images), normalize(test_set.images)
    fill = normalize(np.full((1, train_set.images.shape[1], 1, 1), background, np.float32))
    transform = augmentation(config.augment, config.data, fill.ravel().tolist())
    in_channels, input_size = train_set.images.shape[1], train_set.images.shape[2]
    model_args = {"in_channels": int(in_channels), "input_size": int(input_size),
                  "num_classes": len(train_set.classes)}
    random.manual_seed(config.seed)
    model = models.get(config.model, **model_args)
    if config.optimizer == "adam":
        optimizer = optim.Adam(model.parameters(), lr=config.lr)
    else:
        optimizer = optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    scheduler = (optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
                 if config.schedule == "cosine" else None)
    start_epoch, history_before, seconds_before = 0, [], 0.0
    if checkpoint is not None:
        start_epoch = restore_training(checkpoint, model, optimizer, scheduler)
        if scheduler is None:                    # a changed --lr applies (constant schedule)
            for group in optimizer.param_groups:
                group["lr"] = config.lr
        history_before = [e for e in checkpoint.history if e.get("epoch", 0) <= start_epoch]
        seconds_before = float(checkpoint.extra.get("train_seconds") or 0.0)

    log("cnnlab train: " + ", ".join(f"{k}={v}" for k, v in asdict(config).items())
        + f"; {len(train_set):,} training and {len(test_set):,} test images "
        f"{input_size}×{input_size}×{in_channels}; {model.num_parameters():,} parameters; "
        f"{kernels.active()} kernels"
        + (f"; resuming after epoch {start_epoch}" if checkpoint is not None else "")
        + (f" with {', '.join(changes)}" if changes else ""))
    # model.safetensors: the latest epoch (resume from it); best: the best validation accuracy.
    saver = ModelCheckpoint(out, monitor="val_accuracy", model_name=config.model,
                            model_args=model_args,
                            config={**asdict(config), "classes": list(train_set.classes),
                                    "normalize": {"mean": normalize.mean.tolist(),
                                                  "std": normalize.std.tolist()},
                                    "border_mean": background},
                            last="model", best="best", history=history_before,
                            seconds=seconds_before)
    extra = [_EpochLines(config.epochs, log)] if epoch_lines else []
    start = time.perf_counter()
    history = fit(model, train_set, epochs=config.epochs, optimizer=optimizer,
                  batch_size=config.batch_size, lr_schedule=scheduler,
                  callbacks=[saver, *extra, *callbacks], val_data=test_set,
                  seed=config.seed, start_epoch=start_epoch, progress=progress,
                  transform=transform)
    train_seconds = time.perf_counter() - start
    results = evaluate(model, test_set, batch_size=256)
    metrics = {"test_accuracy": float(results["accuracy"]), "test_loss": float(results["loss"]),
               "train_seconds": round(seconds_before + train_seconds, 2),
               "epochs": config.epochs,
               "images_per_s": round(len(train_set) * (config.epochs - start_epoch)
                                     / train_seconds, 1)}
    everything = History(epochs=history_before + history.epochs,
                         stopped_early=history.stopped_early)
    write_json(out / "history.json", everything.to_json())
    write_json(out / "metrics.json", metrics)
    return metrics


def _check_resume(path: str, checkpoint: Any, config: TrainConfig) -> list[str]:
    """Refuse what a resumed run cannot change (one sentence); list what it does change."""
    saved, where = checkpoint.config, f"the checkpoint {path}"
    if checkpoint.extra.get("interrupted"):
        step, steps = checkpoint.extra.get("step"), checkpoint.extra.get("steps")
        instead = (f"resume from model.safetensors beside it (the end of epoch "
                   f"{checkpoint.epoch})" if checkpoint.epoch else "start the training again")
        raise ValueError(
            f"{where} was saved by an interrupt in the middle of epoch {checkpoint.epoch + 1} "
            f"(after step {step} of {steps}); resuming it would repeat those steps, so "
            f"{instead}."
        )
    for name in _FIXED_ON_RESUME:
        before = saved.get(name, _BEFORE_THE_SETTING.get(name))
        if before is not None and before != getattr(config, name):
            raise ValueError(f"{where} was trained with {_OPTION[name]} {before}; resume it "
                             f"with the same {name} (received {_OPTION[name]} "
                             f"{getattr(config, name)}).")
    if config.schedule == "cosine":
        if saved.get("epochs") != config.epochs:
            raise ValueError(f"{where} follows a cosine schedule over {saved.get('epochs')} "
                             f"epochs; resume it with --epochs {saved.get('epochs')} (received "
                             f"{config.epochs}).")
        if saved.get("lr") is not None and saved["lr"] != config.lr:
            raise ValueError(f"{where} follows a cosine schedule from --lr {saved['lr']}, whose "
                             f"curve a new rate would break; resume it without --lr (received "
                             f"--lr {config.lr}).")
    if checkpoint.epoch >= config.epochs:
        raise ValueError(f"{where} has already trained {checkpoint.epoch} epochs; ask for more "
                         f"with --epochs (received {config.epochs}).")
    return [f"{_OPTION[name]} {getattr(config, name)} instead of {saved[name]}"
            for name in ("lr", "batch_size", "seed")
            if name in saved and saved[name] != getattr(config, name)]


def write_json(path: Path, data) -> None:
    """Atomically: a half-written file never replaces a good one."""
    from .checkpoint import atomic_write

    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    atomic_write(path, (text + ("\n" if not text.endswith("\n") else "")).encode("utf-8"))
