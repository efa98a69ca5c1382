"""The training loop: fit's history, callbacks, divergence, Ctrl-C, evaluate, predict, metrics."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab import nn, optim
from cnnlab.data import ArrayDataset
from cnnlab.train import (
    EarlyStopping,
    History,
    ModelCheckpoint,
    Terminated,
    TrainingDiverged,
    evaluate,
    fit,
    load_checkpoint,
    predict,
)
from cnnlab.train.lock import OutputLock, OutputLocked
from cnnlab.train.metrics import (
    accuracy,
    confusion_matrix,
    format_confusion_matrix,
    per_class_accuracy,
)
from cnnlab.train.progress import EpochProgress


# ---------------------------------------------------------------------------- fixtures
def quadrant_data(n: int = 96, seed: int = 0, name: str = "quadrants") -> ArrayDataset:
    """8×8 noise; the class is the bright region: 0 top-left, 1 top-right, 2 the bottom half."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.random((n, 1, 8, 8), dtype=np.float32) * 0.3
    for i, label in enumerate(labels):
        rows = slice(0, 4) if label < 2 else slice(4, 8)
        cols = slice(0, 4) if label == 0 else slice(4, 8) if label == 1 else slice(0, 8)
        images[i, 0, rows, cols] += 0.7
    return ArrayDataset(images, labels, ["left", "right", "bottom"], name=name)


def tiny_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Dropout(0.25), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def setup(lr: float = 0.1, seed: int = 0):
    cnnlab.manual_seed(seed)
    model = tiny_net()
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, optimizer


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# ---------------------------------------------------------------------------- fit and History
def test_fit_learns_and_records_each_epoch():
    model, optimizer = setup()
    schedule = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(model, quadrant_data(), epochs=3, optimizer=optimizer, batch_size=16,
                  lr_schedule=schedule, val_data=quadrant_data(30, seed=1), progress=False)
    assert isinstance(history, History) and len(history) == 3 and not history.stopped_early
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3]
    assert history["lr"] == [0.1, 0.05, 0.025]              # the rate used during each epoch
    assert optimizer.param_groups[0]["lr"] == 0.0125         # stepped once per epoch
    for entry in history.epochs:
        assert set(entry) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
                              "seconds", "images_per_s"}
        assert entry["seconds"] > 0 and entry["images_per_s"] > 0
        assert 0 <= entry["accuracy"] <= 1 and math.isfinite(entry["loss"])
    assert history["val_accuracy"][-1] == 1.0                # the task is easy
    assert history["loss"][-1] < history["loss"][0]
    assert History.from_json(history.to_json()) == history
    assert json.loads(history.to_json())["epochs"][0]["epoch"] == 1


def test_val_logs_match_evaluate_and_are_absent_without_val_data():
    model, optimizer = setup()
    val = quadrant_data(30, seed=1)
    history = fit(model, quadrant_data(), epochs=1, optimizer=optimizer, batch_size=16,
                  val_data=val, progress=False)
    result = evaluate(model, val, batch_size=16)             # validation batches as in fit
    assert history["val_loss"] == [result["loss"]]
    assert history["val_accuracy"] == [result["accuracy"]]
    model, optimizer = setup()
    history = fit(model, quadrant_data(), epochs=1, optimizer=optimizer, batch_size=16,
                  progress=False)
    assert "val_loss" not in history.epochs[0]
    with pytest.raises(KeyError, match="History has no 'val_loss' record"):
        history["val_loss"]


def test_training_loss_is_the_mean_over_the_epochs_batches():
    """With lr = 0 nothing changes, so the epoch's loss is the loss of the data (no dropout)."""
    cnnlab.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    data = quadrant_data(50)                                  # batches of 16, 16, 16, 2
    history = fit(model, data, epochs=1, optimizer=optim.SGD(model.parameters(), lr=0.0),
                  batch_size=16, progress=False)
    result = evaluate(model, data)
    assert history["loss"][0] == pytest.approx(result["loss"], rel=1e-6)
    assert history["accuracy"][0] == pytest.approx(result["accuracy"])


def test_fit_rejects_bad_arguments():
    model, optimizer = setup()
    data = quadrant_data(12)
    with pytest.raises(ValueError, match=r"start_epoch must be an int in \[0, epochs\) = "
                                         r"\[0, 3\), received 3"):
        fit(model, data, epochs=3, start_epoch=3, optimizer=optimizer, progress=False)
    with pytest.raises(ValueError, match="epochs must be a positive int, received 0"):
        fit(model, data, epochs=0, optimizer=optimizer)
    other = tiny_net()
    with pytest.raises(ValueError, match="optimizer holds none of the model's parameters"):
        fit(other, data, epochs=1, optimizer=optimizer)
    schedule = optim.lr_scheduler.StepLR(optim.SGD(other.parameters(), lr=0.1), step_size=1)
    with pytest.raises(ValueError, match="lr_schedule schedules another optimizer"):
        fit(model, data, epochs=1, optimizer=optimizer, lr_schedule=schedule)
    with pytest.raises(TypeError, match="train_data must be a dataset with .images and .labels"):
        fit(model, [1, 2, 3], epochs=1, optimizer=optimizer)
    with pytest.raises(TypeError, match="each callback needs an on_epoch_end"):
        fit(model, data, epochs=1, optimizer=optimizer, callbacks=[object()])
    with pytest.raises(TypeError, match="optimizer must be a cnnlab.optim.Optimizer"):
        fit(model, data, epochs=1, optimizer="sgd")


def test_fit_accepts_a_loader_and_sets_its_epoch():
    class Loader:
        def __init__(self):
            self.epochs = []
            self.data = quadrant_data(12)

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

        def __len__(self):
            return 2

        def __iter__(self):
            yield self.data.images[:6], self.data.labels[:6]
            yield self.data.images[6:], self.data.labels[6:]

    loader = Loader()
    model, optimizer = setup()
    fit(model, loader, epochs=4, start_epoch=1, optimizer=optimizer, progress=False)
    assert loader.epochs == [1, 2, 3]


# ---------------------------------------------------------------------------- callbacks
def test_callbacks_see_epochs_logs_and_can_stop():
    calls = []

    class Recorder:
        def on_train_begin(self, context):
            calls.append(("begin", context.start_epoch, context.steps, context.has_validation))

        def on_epoch_end(self, epoch, logs):
            calls.append(("end", epoch, logs["epoch"]))
            return epoch == 2

        def on_train_end(self, history):
            calls.append(("done", len(history)))

    model, optimizer = setup()
    history = fit(model, quadrant_data(), epochs=6, start_epoch=1, optimizer=optimizer,
                  batch_size=32, callbacks=[Recorder()], progress=False)
    assert calls == [("begin", 1, 3, False), ("end", 1, 2), ("end", 2, 3), ("done", 2)]
    assert history.stopped_early


def test_early_stopping_waits_patience_epochs():
    model, optimizer = setup(lr=0.0)                          # nothing improves
    stopper = EarlyStopping("val_loss", patience=2)
    history = fit(model, quadrant_data(), epochs=10, optimizer=optimizer, batch_size=32,
                  val_data=quadrant_data(30, seed=1), callbacks=[stopper], progress=False)
    assert len(history) == 3 and history.stopped_early and stopper.stopped_epoch == 3
    assert stopper.best == history["val_loss"][0]


def test_early_stopping_mode_and_errors():
    assert EarlyStopping("val_accuracy").mode == "max"
    assert EarlyStopping("loss").mode == "min"
    stopper = EarlyStopping("accuracy", patience=1, min_delta=0.1)
    assert [stopper.on_epoch_end(e, {"accuracy": a}) for e, a in enumerate([0.5, 0.55])] == \
        [False, True]                                         # +0.05 is below min_delta
    with pytest.raises(ValueError, match="monitor must be one of loss, accuracy"):
        EarlyStopping("val_acc")
    with pytest.raises(ValueError, match="patience must be a positive int, received 0"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="mode must be one of 'auto', 'min', 'max'"):
        EarlyStopping(mode="up")
    model, optimizer = setup()
    with pytest.raises(ValueError, match="monitors 'val_loss', but fit was given no val_data"):
        fit(model, quadrant_data(12), epochs=1, optimizer=optimizer,
            callbacks=[EarlyStopping("val_loss")], progress=False)


def test_model_checkpoint_keeps_last_and_best(tmp_path):
    """Monitoring the learning rate (max) under a decaying schedule: best stays epoch 1."""
    model, optimizer = setup()
    schedule = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    weights = []

    class Snapshot:
        def on_epoch_end(self, epoch, logs):
            weights.append(model.state_dict())

    saver = ModelCheckpoint(tmp_path / "run", monitor="lr", mode="max", model_name="tiny",
                            config={"note": "test"})
    fit(model, quadrant_data(), epochs=3, optimizer=optimizer, lr_schedule=schedule,
        batch_size=32, callbacks=[Snapshot(), saver], progress=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == \
        ["best.safetensors", "last.safetensors"]
    best, last = load_checkpoint(saver.path("best")), load_checkpoint(saver.path("last"))
    assert (best.epoch, last.epoch) == (1, 3) and saver.best_epoch == 1
    assert best.metrics["lr"] == 0.1 and last.metrics["lr"] == 0.025
    assert best.config == {"note": "test"} and best.model_name == "tiny"
    assert last.extra["fit"] == {"epochs": 3, "batch_size": 32, "seed": 0}
    for key, value in weights[0].items():
        np.testing.assert_array_equal(best.model_state[key], value)
    for key, value in weights[2].items():
        np.testing.assert_array_equal(last.model_state[key], value)

    # resumed, a worse epoch does not replace the best file
    saver = ModelCheckpoint(tmp_path / "run", monitor="lr", mode="max", model_name="tiny")
    fit(model, quadrant_data(), epochs=4, start_epoch=3, optimizer=optimizer,
        lr_schedule=schedule, batch_size=32, callbacks=[saver], progress=False)
    assert load_checkpoint(saver.path("best")).epoch == 1
    assert load_checkpoint(saver.path("last")).epoch == 4


def test_model_checkpoint_needs_validation_for_val_monitor(tmp_path):
    model, optimizer = setup()
    with pytest.raises(ValueError, match="monitors 'val_accuracy', but fit was given no "
                                         "val_data; pass val_data or monitor 'accuracy'"):
        fit(model, quadrant_data(12), epochs=1, optimizer=optimizer,
            callbacks=[ModelCheckpoint(tmp_path)], progress=False)
    saver = ModelCheckpoint(tmp_path, monitor=None)
    fit(model, quadrant_data(12), epochs=1, optimizer=optimizer, callbacks=[saver],
        progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors"]
    with pytest.raises(ValueError, match="monitor must be one of"):
        ModelCheckpoint(tmp_path, monitor="acc")


# ---------------------------------------------------------------------------- divergence
class PoisonAt(nn.Module):
    """The identity, except that training-mode call number ``at`` returns NaN."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x):
        if not self.training:
            return x
        self.calls += 1
        return x * float("nan") if self.calls == self.at else x


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cnnlab.manual_seed(0)
    poison = PoisonAt(at=3 + 2)                               # epoch 2, step 2 (3 steps/epoch)
    model = nn.Sequential(poison, *tiny_net())
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    saver = ModelCheckpoint(tmp_path, monitor="loss", model_name="tiny")
    with pytest.raises(TrainingDiverged, match=r"training diverged at epoch 2, step 2 of 3: the "
                                               r"loss became nan; .*last good checkpoint is "
                                               r"kept") as caught:
        fit(model, quadrant_data(), epochs=5, optimizer=optimizer, batch_size=32,
            callbacks=[saver], progress=False)
    assert isinstance(caught.value, ValueError)
    assert (caught.value.epoch, caught.value.step) == (2, 2) and math.isnan(caught.value.value)
    for name in ("last", "best"):
        checkpoint = load_checkpoint(saver.path(name))
        assert checkpoint.epoch == 1
        assert all(np.isfinite(v).all() for v in checkpoint.model_state.values())


def test_non_finite_weights_after_an_epoch_are_not_saved(tmp_path):
    model, optimizer = setup()
    real_step, calls = optimizer.step, [0]

    def step_then_poison():
        real_step()
        calls[0] += 1
        if calls[0] == 6:                                     # the last step of epoch 2
            model[-1].weight.data[0, 0] = np.inf

    optimizer.step = step_then_poison
    saver = ModelCheckpoint(tmp_path, monitor=None)
    with pytest.raises(TrainingDiverged, match="epoch 2, step 3 of 3: the weights became inf"):
        fit(model, quadrant_data(), epochs=4, optimizer=optimizer, batch_size=32,
            callbacks=[saver], progress=False)
    assert load_checkpoint(saver.path("last")).epoch == 1


# ---------------------------------------------------------------------------- Ctrl-C
class SigintAt(nn.Module):
    """The identity; training-mode call number ``at`` sends this process ``count`` SIGINTs."""

    def __init__(self, at: int, count: int = 1) -> None:
        super().__init__()
        self.at, self.count, self.calls = at, count, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                for _ in range(self.count):
                    os.kill(os.getpid(), signal.SIGINT)
        return x


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test, as in a terminal. A shell that starts a
    background job (``cmd &``) makes it ignore SIGINT, and fit then rightly leaves it alone."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_finishes_the_step_saves_and_reraises(tmp_path, python_sigint):
    cnnlab.manual_seed(0)
    model = nn.Sequential(SigintAt(at=3 + 2), *tiny_net())   # epoch 2, step 2
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    saver = ModelCheckpoint(tmp_path, monitor=None, model_name="tiny")
    interrupted = []

    class Watcher:
        def on_epoch_end(self, epoch, logs):
            return False

        def on_interrupt(self, epoch, logs):
            interrupted.append((epoch, sorted(logs)))

    with pytest.raises(KeyboardInterrupt):
        fit(model, quadrant_data(), epochs=5, optimizer=optimizer, batch_size=32,
            callbacks=[saver, Watcher()], progress=False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # restored
    assert interrupted == [(1, ["accuracy", "epoch", "loss"])]
    saved = load_checkpoint(saver.path("interrupted"))
    assert saved.extra["interrupted"] and saved.extra["step"] == 2 and saved.extra["steps"] == 3
    assert saved.epoch == 1                                   # epochs completed
    for key, value in model.state_dict().items():             # the state after step 2
        np.testing.assert_array_equal(saved.model_state[key], value)
    last = load_checkpoint(saver.path("last"))                # still the end of epoch 1
    assert last.epoch == 1 and not last.extra["interrupted"]


def test_second_ctrl_c_interrupts_at_once(tmp_path, python_sigint):
    cnnlab.manual_seed(0)
    model = nn.Sequential(SigintAt(at=2, count=2), *tiny_net())
    saver = ModelCheckpoint(tmp_path, monitor=None, model_name="tiny")
    with pytest.raises(KeyboardInterrupt):
        fit(model, quadrant_data(), epochs=2, optimizer=optim.SGD(model.parameters(), lr=0.1),
            batch_size=32, callbacks=[saver], progress=False)
    assert load_checkpoint(saver.path("interrupted")).extra["step"] == 1     # step 2 cut short
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_after_the_last_step_is_not_lost(tmp_path, python_sigint):
    class SigintAtEnd:
        def on_epoch_end(self, epoch, logs):
            if logs["epoch"] == 2:
                os.kill(os.getpid(), signal.SIGINT)           # during the last epoch's callbacks

    model, optimizer = setup()
    saver = ModelCheckpoint(tmp_path, monitor=None)
    with pytest.raises(KeyboardInterrupt):
        fit(model, quadrant_data(12), epochs=2, optimizer=optimizer,
            callbacks=[SigintAtEnd(), saver], progress=False)
    assert load_checkpoint(saver.path("last")).epoch == 2     # the callbacks finished
    assert load_checkpoint(saver.path("interrupted")).epoch == 2


class SigtermAt(nn.Module):
    """The identity; training-mode call number ``at`` sends this process SIGTERM."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), signal.SIGTERM)
        return x


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    cnnlab.manual_seed(0)
    model = nn.Sequential(SigtermAt(at=3 + 2), *tiny_net())   # epoch 2, step 2
    saver = ModelCheckpoint(tmp_path, monitor=None, model_name="tiny")
    with pytest.raises(Terminated) as caught:
        fit(model, quadrant_data(), epochs=5, optimizer=optim.SGD(model.parameters(), lr=0.1),
            batch_size=32, callbacks=[saver], progress=False)
    assert isinstance(caught.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL              # restored
    saved = load_checkpoint(saver.path("interrupted"))
    assert saved.extra["interrupted"] and saved.extra["step"] == 2
    for key, value in model.state_dict().items():             # the step finished first
        np.testing.assert_array_equal(saved.model_state[key], value)
    assert load_checkpoint(saver.path("last")).epoch == 1


def test_a_programs_own_sigterm_handler_is_left_alone(tmp_path):
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda *args: calls.append(args[0]))
    try:
        cnnlab.manual_seed(0)
        model = nn.Sequential(SigtermAt(at=2), *tiny_net())
        fit(model, quadrant_data(), epochs=1, optimizer=optim.SGD(model.parameters(), lr=0.1),
            batch_size=32, progress=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert calls == [signal.SIGTERM]


# ---------------------------------------------------------------------------- one run per folder
def test_a_second_lock_on_a_folder_is_refused_and_released(tmp_path):
    with OutputLock(tmp_path / "run") as lock:
        assert lock.path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(OutputLocked, match=rf"another training \(process {os.getpid()}\) is "
                                               rf"writing to '.*run'; wait for it to finish or "
                                               rf"choose another --out"):
            OutputLock(tmp_path / "run").acquire()
    assert not lock.path.exists()
    with OutputLock(tmp_path / "run"):                       # free again
        pass


def test_stale_locks_are_taken_over_and_their_temporaries_removed(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    for owner in (dead, os.getpid(), "garbage"):            # killed, our own leftover, junk
        (tmp_path / ".train.lock").write_text(f"{owner}\n")
        leftover = tmp_path / f".model.safetensors.{dead}.00ff00ff.tmp"
        leftover.write_bytes(b"half")
        with OutputLock(tmp_path) as lock:
            assert lock.path.read_text() == f"{os.getpid()}\n"
            assert lock.removed == [leftover] and not leftover.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputLocked, match="output folder '.*file' is a file; expected a folder"):
        OutputLock(tmp_path / "file").acquire()


# ---------------------------------------------------------------------------- cnnlab train
@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """A folder data set: 16×16 noise with a bright row or a bright column, 12 of each."""
    from PIL import Image

    root = tmp_path_factory.mktemp("data") / "shapes"
    rng = np.random.default_rng(0)
    for kind in ("row", "column"):
        (root / kind).mkdir(parents=True)
        for i in range(12):
            image = (rng.random((16, 16)) * 60).astype(np.uint8)
            where = rng.integers(2, 14)
            if kind == "row":
                image[where, :] = 255
            else:
                image[:, where] = 255
            Image.fromarray(image).save(root / kind / f"{i}.png")
    return root


def _cnnlab(*argv: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(cnnlab.__file__).parents[1])}
    return subprocess.Popen([sys.executable, "-m", "cnnlab", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def test_sigterm_exits_143_a_second_run_refuses_and_lines_go_to_a_pipe(tmp_path, shapes):
    out = tmp_path / "run"
    child = _cnnlab("train", "--data", str(shapes), "--epochs", "100000", "--batch-size", "8",
                    "--out", str(out))
    try:
        header = child.stdout.readline()
        assert header.startswith("cnnlab train: model=lenet5")
        line = child.stdout.readline()                      # stdout is a pipe: plain lines
        assert line.startswith("epoch 1/100000  loss ") and "\r" not in line
        second = _cnnlab("train", "--data", str(shapes), "--epochs", "1", "--out", str(out))
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2
        assert err == (f"cnnlab train: error: another training (process {child.pid}) is "
                       f"writing to '{out}'; wait for it to finish or choose another --out.\n")
        child.send_signal(signal.SIGTERM)
        rest, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 143
    assert "cnnlab train: terminated; " in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors", "interrupted.safetensors",
                                                     "model.safetensors"]    # lock released
    assert load_checkpoint(out / "interrupted.safetensors").extra["interrupted"]
    assert load_checkpoint(out / "model.safetensors").epoch >= 1


def test_resume_continues_the_history_and_says_what_changed(tmp_path, shapes, capsys):
    from cnnlab.cli import main

    out = tmp_path / "run"
    base = ["train", "--data", str(shapes), "--batch-size", "8", "--out", str(out), "--quiet",
            "--schedule", "constant"]
    assert main([*base, "--epochs", "2"]) == 0
    first = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    # every setting not given comes from the checkpoint; a new --lr applies and is said
    assert main(["train", "--resume", str(out / "model.safetensors"), "--epochs", "3",
                 "--lr", "0.001"]) == 0
    said = capsys.readouterr().out
    assert "resuming after epoch 2 with --lr 0.001 instead of 0.002" in said
    assert f"data={shapes}" in said and "batch_size=8" in said
    history = json.loads((out / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2, 3]
    assert [e["lr"] for e in history] == [0.002, 0.002, 0.001]
    checkpoint = load_checkpoint(out / "model.safetensors")
    assert checkpoint.config["lr"] == 0.001 and len(checkpoint.history) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_seconds"] >= first["train_seconds"] + history[2]["seconds"] - 0.01
    # what cannot change is refused in one sentence
    for argv, message in (
            (["--model", "small_vgg"], "was trained with --model lenet5; resume it with the same "
                                       "model (received --model small_vgg)"),
            (["--optimizer", "sgd"], "was trained with --optimizer adam"),
            (["--data", "digits"], f"was trained with --data {shapes}"),
            (["--epochs", "3"], "has already trained 3 epochs; ask for more with --epochs")):
        code = main(["train", "--resume", str(out / "model.safetensors"), *argv])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_an_interrupted_checkpoint_is_not_a_resume_point(tmp_path, shapes, capsys, monkeypatch):
    from cnnlab.cli import main

    out = tmp_path / "run"
    original = ModelCheckpoint.on_epoch_end

    def interrupt_in_epoch_2(self, epoch, logs):
        original(self, epoch, logs)
        if epoch == 1:                      # as if stopped after the first step of epoch 2
            self.context.epoch, self.context.step = 1, 1
            raise KeyboardInterrupt
    monkeypatch.setattr(ModelCheckpoint, "on_epoch_end", interrupt_in_epoch_2)
    assert main(["train", "--data", str(shapes), "--epochs", "3", "--quiet", "--batch-size", "8",
                 "--out", str(out)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    code = main(["train", "--resume", str(out / "interrupted.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and "was saved by an interrupt in the middle of epoch 2 (after step 1 of " \
        "3); resuming it would repeat those steps, so resume from model.safetensors beside it " \
        "(the end of epoch 1)" in err


def test_a_batch_larger_than_the_data_is_clamped_with_a_note(tmp_path, shapes, capsys):
    from cnnlab.cli import main

    assert main(["train", "--data", str(shapes), "--epochs", "1", "--batch-size", "100000",
                 "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cnnlab train: batch size 100,000 is larger than the 19 training "
                          "images; using 19\n")
    assert load_checkpoint(tmp_path / "model.safetensors").config["batch_size"] == 19


# ---------------------------------------------------------------------------- evaluate, predict
class Oracle(nn.Module):
    """Logits ``10 · onehot(round(x[:, 0, 0, 0]))``: the image holds the predicted class."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.seen.append((self.training, cnnlab.is_grad_enabled()))
        predicted = np.rint(np.asarray(x.data)[:, 0, 0, 0]).astype(int)
        return cnnlab.tensor(10.0 * np.eye(self.num_classes)[predicted])


def test_evaluate_hand_case():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0, 2])
    data = ArrayDataset(predicted.astype(np.float32).reshape(7, 1, 1, 1), labels,
                        ["a", "b", "c"], name="hand")
    model = Oracle()
    result = evaluate(model, data, batch_size=3)              # batches of 3, 3, 1
    np.testing.assert_array_equal(result["confusion_matrix"],
                                  [[1, 1, 0], [0, 2, 0], [1, 0, 2]])     # rows: true class
    assert result["accuracy"] == pytest.approx(5 / 7)
    np.testing.assert_allclose(result["per_class_accuracy"], [0.5, 1.0, 2 / 3])
    assert result["count"] == 7 and result["classes"] == ["a", "b", "c"]
    # logits 10 for the predicted class, 0 for the others: -log softmax_t = log(e^10 + 2) - z_t
    right = math.log(1 + 2 * math.exp(-10))
    wrong = 10 + right
    assert result["loss"] == pytest.approx((5 * right + 2 * wrong) / 7, rel=1e-6)
    assert model.seen == [(False, False)] * 3                 # eval mode, no gradients, batched


def test_evaluate_restores_modes_and_checks_classes():
    model = nn.Sequential(Oracle(), nn.Dropout(0.5))
    model[1].eval()                                           # a mixed setting survives
    data = ArrayDataset(np.zeros((4, 1, 1, 1), np.float32), [0, 1, 0, 1], ["x", "y"], name="two")
    with pytest.raises(ValueError, match="the model gives 3 class scores but 'two' has 2"):
        evaluate(model, data)
    assert model.training and model[0].training and not model[1].training
    with pytest.raises(TypeError, match="images must be floating-point"):
        evaluate(Oracle(), (np.zeros((2, 1, 1, 1), np.uint8), np.array([0, 1])))
    with pytest.raises(ValueError, match="evaluate data is empty"):
        evaluate(Oracle(), (np.zeros((0, 1, 1, 1), np.float32), np.zeros(0, np.int64)))


def test_predict_gives_softmax_in_eval_mode():
    cnnlab.manual_seed(0)
    model = tiny_net()
    images = quadrant_data(10).images
    probabilities = predict(model, images, batch_size=4)
    assert probabilities.shape == (10, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-6)
    model.eval()
    logits = model(images).data
    model.train()
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probabilities, expected / expected.sum(axis=1, keepdims=True),
                               rtol=1e-5)
    np.testing.assert_array_equal(predict(model, images), probabilities)    # no dropout
    assert model.training
    with pytest.raises(TypeError, match="images must be floating-point .* received dtype uint8"):
        predict(model, np.zeros((2, 1, 8, 8), np.uint8))


# ---------------------------------------------------------------------------- progress
def test_progress_is_silent_unless_a_terminal(monkeypatch, capsys):
    model, optimizer = setup()
    fit(model, quadrant_data(12), epochs=1, optimizer=optimizer, progress=True)
    assert capsys.readouterr() == ("", "")                    # stderr is not a terminal here
    terminal = Tty()
    monkeypatch.setattr("sys.stderr", terminal)
    fit(model, quadrant_data(12), epochs=1, optimizer=optimizer, progress=False)
    assert terminal.getvalue() == ""
    fit(model, quadrant_data(12), epochs=2, optimizer=optimizer, progress=True,
        val_data=quadrant_data(6))
    text = terminal.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text and "img/s" in text
    assert "val_accuracy" in text and text.endswith("\n")


def test_epoch_lines_without_a_terminal_have_no_carriage_returns(tmp_path, shapes):
    child = _cnnlab("train", "--data", str(shapes), "--epochs", "2", "--batch-size", "8",
                    "--out", str(tmp_path))
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    lines = out.splitlines()
    assert [line.split("  ")[0] for line in lines[1:3]] == ["epoch 1/2", "epoch 2/2"]
    assert "\r" not in out + err
    quiet = _cnnlab("train", "--data", str(shapes), "--epochs", "2", "--out", str(tmp_path / "q"),
                    "--quiet")
    out, _ = quiet.communicate(timeout=120)
    assert "epoch 1/2" not in out


def test_progress_bar_line():
    stream = Tty()
    bar = EpochProgress(3, 10, steps=4, stream=stream)
    bar.update(4, loss=0.25, accuracy=0.875, images=128)
    assert "epoch 3/10" in stream.getvalue() and "4/4" in stream.getvalue()
    assert "loss 0.2500" in stream.getvalue() and "acc 0.8750" in stream.getvalue()
    bar.close({"loss": 0.25, "accuracy": 0.875, "seconds": 1.5})
    assert stream.getvalue().endswith("\n")
    final = stream.getvalue().split("\r")[-1].rstrip()        # padded to wipe the longer bar
    assert final == "epoch 3/10  loss 0.2500  accuracy 0.8750  1.5 s"
    bar.update(1, loss=0.1, accuracy=1.0, images=1)           # closed: draws nothing more
    assert stream.getvalue().endswith("\n")


# ---------------------------------------------------------------------------- metrics
def test_confusion_matrix_matches_a_loop():
    rng = np.random.default_rng(0)
    labels, predicted = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    expected = np.zeros((5, 5), np.int64)
    for t, p in zip(labels, predicted):
        expected[t, p] += 1
    matrix = confusion_matrix(labels, predicted, 5)
    np.testing.assert_array_equal(matrix, expected)
    assert accuracy(labels, predicted) == np.trace(expected) / 200
    np.testing.assert_allclose(per_class_accuracy(matrix), np.diag(expected) / expected.sum(1))


def test_metrics_edge_cases():
    matrix = confusion_matrix([0, 0], [0, 1], 3)
    per_class = per_class_accuracy(matrix)
    assert per_class[0] == 0.5 and np.isnan(per_class[1:]).all()   # classes without samples
    assert math.isnan(accuracy([], []))
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\), "
                                         r"received 3"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="same length, received 2 labels and 1 predictions"):
        accuracy([0, 1], [0])
    with pytest.raises(TypeError, match="integer class indices, received dtype float64"):
        accuracy([0.0, 1.0], [0, 1])
    assert format_confusion_matrix(np.array([[12, 0], [3, 9]]), ["cat", "dog"]).splitlines() == [
        "true \\ predicted  cat  dog",
        "cat                12    0",
        "dog                 3    9",
    ]


@pytest.mark.parametrize("name, data, kinds", [
    ("auto", "digits", ["RandomAffine"]),
    ("auto", "mnist", ["RandomAffine"]),
    ("auto", "fashion-mnist", ["RandomHorizontalFlip", "RandomAffine"]),
    ("auto", "my_photos", []),
    ("none", "digits", []),
    ("flip", "digits", ["RandomHorizontalFlip", "RandomAffine"]),
])
def test_augmentation_follows_the_data_unless_asked(name, data, kinds):
    from cnnlab.train.job import augmentation

    transform = augmentation(name, data, [-0.42])
    found = ([] if transform is None else
             [type(t).__name__ for t in getattr(transform, "transforms", [transform])])
    assert found == kinds
    if kinds:
        affine = (transform.transforms[-1] if len(kinds) > 1 else transform)
        assert list(affine.fill) == [-0.42]          # the background, not raw zero


def test_augmentation_moves_pixels_and_fills_with_the_background():
    from cnnlab.train.job import augmentation

    x = np.full((16, 1, 28, 28), -0.5, np.float32)
    x[:, :, 8:20, 8:20] = 2.0
    moved = augmentation("affine", "digits", [-0.5])(x, np.random.default_rng(0))
    assert moved.shape == x.shape and not np.array_equal(moved, x)
    assert set(np.unique(moved)) <= {-0.5, 2.0}      # nearest neighbour: no new values
    with pytest.raises(ValueError, match="--augment: expected auto or one of none, affine, "
                                         "flip, received 'rotate'."):
        augmentation("rotate", "digits", [0.0])


def test_a_checkpoint_from_before_augment_and_schedule_resumes_as_it_was_trained(monkeypatch):
    """Older checkpoints saved neither setting: they were trained constant, unaugmented."""
    from types import SimpleNamespace

    from cnnlab.train import checkpoint, job

    saved = {"model": "lenet5", "data": "digits", "epochs": 10, "lr": 0.002,
             "optimizer": "adam", "batch_size": 64, "seed": 0}
    monkeypatch.setattr(checkpoint, "load_checkpoint",
                        lambda path: SimpleNamespace(config=dict(saved)))
    resumed = job.resume_config("runs/old/model.safetensors", {"epochs": 12})
    assert (resumed.schedule, resumed.augment, resumed.epochs) == ("constant", "none", 12)
    asked = job.resume_config("runs/old/model.safetensors", {"augment": "affine"})
    assert asked.augment == "affine" and asked.schedule == "constant"
    saved.update(schedule="cosine", augment="flip")
    assert job.resume_config("x", {}).augment == "flip"
