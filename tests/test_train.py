"""The training loop: fit's history, callbacks, divergence, Ctrl-C, evaluate, predict, metrics."""

from __future__ import annotations

import io
import json
import math
import os
import signal

import numpy as np
import pytest

import cnnlab
from cnnlab import nn, optim
from cnnlab.data import ArrayDataset
from cnnlab.train import (
    EarlyStopping,
    History,
    ModelCheckpoint,
    TrainingDiverged,
    evaluate,
    fit,
    load_checkpoint,
    predict,
)
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
        ["best.json", "best.npz", "last.json", "last.npz"]
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.npz"]
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
