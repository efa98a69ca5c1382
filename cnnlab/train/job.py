"""A training job as ``cnnlab train`` runs it: data, standardisation, model, optimiser, schedule,
resume, checkpoints and the final test metrics — importable, so the command line and the explorer
run the same code.

>>> TrainConfig().model, default_lr("sgd")
('lenet5', 0.05)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .callbacks import Callback


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the checkpoint and printed first)."""

    model: str = "lenet5"         # a name from cnnlab.models.available()
    data: str = "digits"          # digits (embedded), mnist, fashion-mnist, or an image folder
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3              # Adam (beats 1e-3 on fashion-mnist); SGD: 0.05, momentum 0.9
    optimizer: str = "adam"       # adam | sgd
    seed: int = 0
    schedule: str = "constant"    # constant | cosine (annealed to 0 over the epochs)
    out: str = ""                 # default: runs/<model>-<data>

    def __post_init__(self):
        if not self.out:
            self.out = f"runs/{self.model}-{Path(self.data).name}"


def default_lr(optimizer: str) -> float:
    """The learning rate a run gets when none is asked for: 2e-3 for Adam, 0.05 for SGD."""
    return TrainConfig.lr if optimizer == "adam" else 0.05


def run_training(config: TrainConfig, *, resume: str | None = None, progress: bool = True,
                 callbacks: Sequence[Callback] = (), log: Callable[[str], None] = print
                 ) -> dict:
    """Train ``config.model`` on ``config.data`` and write ``config.out``.

    Writes ``model.npz`` (+ ``.json``; the last epoch, a resume point), ``best.npz`` (the best
    test accuracy), ``history.json`` and ``metrics.json``; returns the metrics (``test_accuracy``,
    ``test_loss``, ``train_seconds``, ``epochs``, ``images_per_s``). ``callbacks`` run after the
    checkpoint writer (the explorer's live curves). A mistake in the request raises
    ``ValueError`` before any work; ``KeyboardInterrupt`` propagates after the running step is
    saved (``interrupted.npz``), the last complete epoch staying in ``model.npz``.
    """
    from .. import models, optim, random
    from ..data import load_dataset
    from ..data.images import border_mean
    from ..data.transforms import Normalize
    from .callbacks import ModelCheckpoint
    from .checkpoint import load_checkpoint, restore_training
    from .loop import evaluate, fit

    out = Path(config.out)
    train_set, test_set = load_dataset(config.data)
    # Standardise with the training set's per-channel statistics; the checkpoint keeps them,
    # so evaluate and predict feed the network what it was trained on.
    normalize = Normalize.from_data(train_set.images)
    # How light the training images' background is (0 black ... 1 white): predict inverts a
    # picture whose background is the opposite (light drawings for an MNIST model, and back).
    background = round(border_mean(train_set.images), 4)
    train_set.images, test_set.images = normalize(train_set.images), normalize(test_set.images)
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
    start_epoch = 0
    if resume:
        checkpoint = load_checkpoint(resume)
        _check_resumable_schedule(resume, checkpoint.config, config)
        start_epoch = restore_training(checkpoint, model, optimizer, scheduler)
        if start_epoch >= config.epochs:
            raise ValueError(f"the checkpoint {resume} has already trained {start_epoch} "
                             f"epochs; ask for more with --epochs (received {config.epochs}).")

    log("cnnlab train: " + ", ".join(f"{k}={v}" for k, v in asdict(config).items())
        + f"; {len(train_set):,} training and {len(test_set):,} test images "
        f"{input_size}×{input_size}×{in_channels}; {model.num_parameters():,} parameters"
        + (f"; resuming after epoch {start_epoch}" if start_epoch else ""))
    out.mkdir(parents=True, exist_ok=True)
    # model.npz: the latest epoch (resume from it); best.npz: the best validation accuracy.
    saver = ModelCheckpoint(out, monitor="val_accuracy", model_name=config.model,
                            model_args=model_args,
                            config={**asdict(config), "classes": list(train_set.classes),
                                    "normalize": {"mean": normalize.mean.tolist(),
                                                  "std": normalize.std.tolist()},
                                    "border_mean": background},
                            last="model", best="best")
    start = time.perf_counter()
    history = fit(model, train_set, epochs=config.epochs, optimizer=optimizer,
                  batch_size=config.batch_size, lr_schedule=scheduler,
                  callbacks=[saver, *callbacks], val_data=test_set,
                  seed=config.seed, start_epoch=start_epoch, progress=progress)
    train_seconds = time.perf_counter() - start
    results = evaluate(model, test_set, batch_size=256)
    metrics = {"test_accuracy": float(results["accuracy"]), "test_loss": float(results["loss"]),
               "train_seconds": round(train_seconds, 2), "epochs": config.epochs,
               "images_per_s": round(len(train_set) * (config.epochs - start_epoch)
                                     / train_seconds, 1)}
    write_json(out / "history.json", history.to_json() if hasattr(history, "to_json")
               else history)
    write_json(out / "metrics.json", metrics)
    return metrics


def _check_resumable_schedule(path: str, saved: dict, config: TrainConfig) -> None:
    """A resumed run keeps its schedule; a cosine one also its length (the curve depends on it)."""
    schedule = saved.get("schedule", "constant")
    if schedule != config.schedule:
        raise ValueError(f"the checkpoint {path} was trained with --schedule {schedule}; resume "
                         f"it with the same schedule (received --schedule {config.schedule}).")
    if schedule == "cosine" and saved.get("epochs") != config.epochs:
        raise ValueError(f"the checkpoint {path} follows a cosine schedule over "
                         f"{saved.get('epochs')} epochs; resume it with --epochs "
                         f"{saved.get('epochs')} (received {config.epochs}).")


def write_json(path: Path, data) -> None:
    """Atomically: a half-written file never replaces a good one."""
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + ("\n" if not text.endswith("\n") else ""))
    tmp.replace(path)
