"""Training from the page: one run at a time, in a background thread, by the same job as
``cnnlab train`` (:func:`cnnlab.train.job.run_training`); its progress as a list of events the
page reads as server-sent events; stop; the result saved as a normal checkpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..train.callbacks import Callback
from .errors import ApiError

DATASETS = ("digits", "mnist", "fashion-mnist")     # by name only: the page never names a folder
LIMITS = {"epochs": (1, 100), "batch_size": (1, 1024)}


def _first_conv_filters(model) -> dict[str, Any] | None:
    """The first convolution's kernels (filter, channel 0), for the page to draw."""
    from .network import _is_conv

    for name, module in model.named_modules():
        if _is_conv(module):
            w = np.asarray(module.weight.data, dtype=np.float64)[:, 0]           # (F, kh, kw)
            return {"layer": name, "values": np.round(w, 4).tolist()}
    return None


class _Reporter(Callback):
    """Turns ``fit``'s hooks into events; asks ``fit`` to stop when the page says so."""

    def __init__(self, run: Training) -> None:
        self.run = run
        self.context = None
        self.last = 0.0
        self.last_filters = 0.0

    def on_train_begin(self, context) -> None:
        self.context = context
        self.run.emit("begin", {"epochs": context.epochs, "steps": context.steps,
                                "filters": _first_conv_filters(context.model)})

    def on_step_end(self, step: int, logs: dict[str, float]) -> bool:
        now = time.monotonic()
        steps = self.context.steps
        if now - self.last > 0.2 or step == steps:                     # at most 5 a second
            self.last = now
            event = {"epoch": self.context.epoch, "step": step, "steps": steps,
                     "progress": self.context.epoch + step / steps,
                     "loss": logs.get("loss"), "accuracy": logs.get("accuracy")}
            if now - self.last_filters > 1.0:                       # filters once a second
                self.last_filters = now
                event["filters"] = _first_conv_filters(self.context.model)
            self.run.emit("step", event)
        return self.run.stop_requested.is_set()

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        self.run.emit("epoch", {**{k: float(v) for k, v in logs.items()},
                                "filters": _first_conv_filters(self.context.model)})
        return self.run.stop_requested.is_set()


class Training:
    """One training run: its settings, its events, and how it ended."""

    def __init__(self, config, opened: Callable[[Path], dict[str, Any]]) -> None:
        self.config = config
        self.opened = opened                   # loads the result checkpoint into the explorer
        self.events: list[dict[str, Any]] = []
        self.state = "running"                 # running | done | stopped | failed
        self.stop_requested = threading.Event()
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="cnnlab-training", daemon=True)

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        with self.changed:
            self.events.append({"event": kind, "data": data})
            self.changed.notify_all()

    def _run(self) -> None:
        from ..train.checkpoint import checkpoint_path
        from ..train.job import run_training

        out = Path(self.config.out)
        try:
            metrics = run_training(self.config, progress=False, callbacks=[_Reporter(self)],
                                   log=lambda line: self.emit("log", {"line": line}))
            result, state = checkpoint_path(out / "model"), "done"
            if self.stop_requested.is_set():
                state = "stopped"              # after a whole epoch: model is that epoch
        except KeyboardInterrupt:              # stopped within an epoch: its steps so far
            metrics, state = {}, "stopped"
            result = checkpoint_path(out / "interrupted")
        except Exception as error:             # a bad data set, a diverged run...
            from .errors import one_sentence

            self._finish("failed", {"error": one_sentence(error)})
            return
        if not result.exists():
            self._finish(state, {"message": "stopped before the first step; nothing saved."})
            return
        try:
            model = self.opened(result)
        except Exception as error:
            from .errors import one_sentence

            self._finish("failed", {"error": f"the run saved {result.name} but it could not "
                                             f"be opened: {one_sentence(error)}"})
            return
        self._finish(state, {"metrics": metrics, "checkpoint": str(result), "model": model})

    def _finish(self, state: str, data: dict[str, Any]) -> None:
        with self.changed:
            self.state = state
            self.events.append({"event": state, "data": data})
            self.changed.notify_all()

    def status(self) -> dict[str, Any]:
        with self.changed:
            return {"state": self.state, "events": len(self.events),
                    "config": vars(self.config).copy(),
                    "last": self.events[-1] if self.events else None}


class Trainer:
    """At most one :class:`Training` at a time."""

    def __init__(self, runs_dir: Path, opened: Callable[[Path], dict[str, Any]]) -> None:
        self.runs_dir = Path(runs_dir)
        self.opened = opened
        self.current: Training | None = None
        self.lock = threading.Lock()

    def start(self, request: Any) -> Training:
        config = self.config(request)
        with self.lock:
            if self.current is not None and self.current.state == "running":
                raise ApiError("a training is already running; stop it or wait for it to "
                               "finish (one training at a time).", 409)
            self.current = Training(config, self.opened)
            self.current.thread.start()
            return self.current

    def stop(self) -> Training:
        run = self.current
        if run is None or run.state != "running":
            raise ApiError("no training is running.", 409)
        run.stop_requested.set()
        return run

    def config(self, request: Any):
        """A :class:`~cnnlab.train.job.TrainConfig` from the page's JSON, every field checked."""
        from .. import models
        from ..train.job import TrainConfig, default_lr

        if not isinstance(request, dict):
            raise ApiError(f"expected a JSON object of settings, received "
                           f"{type(request).__name__}.")
        unknown = set(request) - {"model", "data", "epochs", "lr", "optimizer", "batch_size"}
        if unknown:
            raise ApiError(f"unknown training settings {sorted(unknown)}; expected model, "
                           f"data, epochs, lr, optimizer, batch_size.")
        model = request.get("model", "lenet5")
        if model not in models.available():
            raise ApiError(f"model must be one of {', '.join(models.available())}, received "
                           f"{model!r}.")
        data = request.get("data", "digits")
        if data not in DATASETS:
            raise ApiError(f"data must be one of {', '.join(DATASETS)}, received {data!r}.")
        optimizer = request.get("optimizer", "adam")
        if optimizer not in ("adam", "sgd"):
            raise ApiError(f"optimizer must be adam or sgd, received {optimizer!r}.")
        numbers = {}
        for key, (low, high) in LIMITS.items():
            value = request.get(key, {"epochs": 1, "batch_size": 64}[key])
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ApiError(f"{key} must be an integer in {low}..{high}, received {value!r}.")
            numbers[key] = value
        lr = request.get("lr", default_lr(optimizer))
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 10:
            raise ApiError(f"lr must be a number in (0, 10], received {lr!r}.")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = self.runs_dir / f"explorer-{model}-{data}-{stamp}"
        for n in range(2, 1000):
            if not out.exists():
                break
            out = self.runs_dir / f"explorer-{model}-{data}-{stamp}-{n}"
        return TrainConfig(model=model, data=data, epochs=numbers["epochs"],
                           batch_size=numbers["batch_size"], lr=float(lr), optimizer=optimizer,
                           out=str(out))
