"""Checkpoints: exact resume, atomic pairs, allow_pickle=False, and clear errors for bad files."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

import cnnlab
from cnnlab import nn, optim
from cnnlab.data import ArrayDataset, transforms
from cnnlab.train import (
    ModelCheckpoint,
    fit,
    load_checkpoint,
    restore,
    restore_model,
    restore_training,
    save_checkpoint,
)


def stripes(n: int, seed: int) -> ArrayDataset:
    """8×8 noise; class 0 has a bright row, class 1 a bright column (somewhere)."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, 1, 8, 8), dtype=np.float32) * 0.4
    labels = rng.integers(0, 2, n)
    where = rng.integers(0, 8, n)
    for i in range(n):
        if labels[i] == 0:
            images[i, 0, where[i], :] += 0.6
        else:
            images[i, 0, :, where[i]] += 0.6
    return ArrayDataset(images, labels, ["row", "column"])


TRAIN, VAL = stripes(80, 0), stripes(24, 1)


def build(name: str = "tiny", channels: int = 4) -> nn.Sequential:
    if name != "tiny":
        raise KeyError(f"unknown model {name!r}")
    return nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.3), nn.Flatten(),
                         nn.Linear(channels * 16, 2))


def make_optimizer(kind: str, model: nn.Module):
    if kind == "sgd":
        return optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    return optim.Adam(model.parameters(), lr=0.01)


def new_run(kind: str, seed: int = 0):
    """Model, optimiser and cosine schedule, built the way a fresh process would."""
    cnnlab.manual_seed(seed)
    model = build()
    optimizer = make_optimizer(kind, model)
    schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5, eta_min=0.001)
    return model, optimizer, schedule


def train(model, optimizer, schedule, epochs, start_epoch=0, callbacks=()):
    return fit(model, TRAIN, epochs=epochs, start_epoch=start_epoch, optimizer=optimizer,
               batch_size=16, lr_schedule=schedule, val_data=VAL, seed=3, progress=False,
               callbacks=callbacks,
               transform=transforms.RandomCrop(8, padding=1))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ---------------------------------------------------------------------------- resume exactness
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_resume_continues_bit_for_bit(tmp_path, kind):
    """3 epochs, save, a fresh process restores and trains 2 more == 5 epochs straight."""
    model, optimizer, schedule = new_run(kind)
    straight = train(model, optimizer, schedule, epochs=5)
    expected = model.state_dict()

    model, optimizer, schedule = new_run(kind)
    saver = ModelCheckpoint(tmp_path, monitor="val_loss", model_name="tiny",
                            model_args={"channels": 4})
    train(model, optimizer, schedule, epochs=5, callbacks=[saver, _StopAfter(3)])

    cnnlab.manual_seed(12345)                                 # the new process's own state
    checkpoint = load_checkpoint(tmp_path / "last.npz")
    model = restore(checkpoint, build)
    optimizer = make_optimizer(kind, model)
    schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5, eta_min=0.001)
    start = restore_training(checkpoint, None, optimizer, schedule)
    assert start == 3
    resumed = train(model, optimizer, schedule, epochs=5, start_epoch=start)

    assert_same_weights(model.state_dict(), expected)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert resumed[key] == straight[key][3:], key


class _StopAfter:
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs):
        return logs["epoch"] >= self.epochs


def test_resume_without_the_saved_state_differs(tmp_path):
    """The test above can fail: leave out the random state or the optimiser, and it does."""
    model, optimizer, schedule = new_run("sgd")
    train(model, optimizer, schedule, epochs=4)
    expected = model.state_dict()
    model, optimizer, schedule = new_run("sgd")
    train(model, optimizer, schedule, epochs=4, callbacks=[ModelCheckpoint(
        tmp_path, monitor=None, model_name="tiny"), _StopAfter(2)])
    checkpoint = load_checkpoint(tmp_path / "last.npz")
    for rng, with_optimizer in ((False, True), (True, False)):
        model, optimizer, schedule = new_run("sgd", seed=99)
        if with_optimizer:
            restore_training(checkpoint, model, optimizer, schedule, rng=rng)
        else:
            restore_training(checkpoint, model, None, None, rng=rng)
        train(model, optimizer, schedule, epochs=4, start_epoch=2)
        state = model.state_dict()
        assert any(not np.array_equal(state[k], expected[k]) for k in state)


# ---------------------------------------------------------------------------- round trip
def test_round_trip_of_everything(tmp_path):
    model, optimizer, schedule = new_run("adam")
    train(model, optimizer, schedule, epochs=1)
    path = save_checkpoint(tmp_path / "model", model, optimizer, model_name="tiny",
                           model_args={"channels": 4}, config={"data": "stripes", "lr": 0.01},
                           epoch=1, metrics={"val_accuracy": np.float32(0.75),
                                             "per_class": np.array([0.5, np.nan])},
                           scheduler=schedule)
    assert path == tmp_path / "model.npz"
    metadata = json.loads((tmp_path / "model.json").read_text())
    assert metadata["format"] == "cnnlab-checkpoint" and metadata["format_version"] == 1
    assert metadata["npz_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert metadata["model"]["parameters"] == model.num_parameters()
    assert metadata["optimizer"]["class"] == "Adam"
    assert metadata["optimizer"]["param_groups"][0]["betas"] == [0.9, 0.999]
    assert metadata["scheduler"]["class"] == "CosineAnnealingLR"
    assert metadata["metrics"] == {"val_accuracy": 0.75, "per_class": [0.5, None]}

    for given in (path, tmp_path / "model.json", tmp_path / "model", str(path)):
        checkpoint = load_checkpoint(given)
        assert checkpoint.path == path
    assert checkpoint.model_args == {"channels": 4} and checkpoint.epoch == 1
    assert checkpoint.config == {"data": "stripes", "lr": 0.01}
    assert_same_weights(checkpoint.model_state, model.state_dict())
    saved = optimizer.state_dict()
    assert checkpoint.optimizer_state["param_groups"] == json.loads(
        json.dumps(saved["param_groups"]))
    for index, values in saved["state"].items():
        for name, value in values.items():
            np.testing.assert_array_equal(checkpoint.optimizer_state["state"][index][name], value)
    assert checkpoint.scheduler_state == schedule.state_dict()
    assert checkpoint.rng_state == cnnlab.random.get_state()
    with np.load(path, allow_pickle=False) as archive:
        assert "model/0.weight" in archive.files and "model/1.running_mean" in archive.files
        assert "optimizer/state/0/exp_avg" in archive.files and "rng/state" in archive.files


def test_restore_model_into_a_built_model(tmp_path):
    cnnlab.manual_seed(0)
    model = build()
    save_checkpoint(tmp_path / "m.npz", model, model_name="tiny", epoch=0)
    cnnlab.manual_seed(1)
    other = build()
    restore_model(load_checkpoint(tmp_path / "m.npz"), other)
    assert_same_weights(other.state_dict(), model.state_dict())


# ---------------------------------------------------------------------------- atomic writes
def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _saved(folder, epoch: int, seed: int) -> dict:
    cnnlab.manual_seed(seed)
    model = build()
    save_checkpoint(folder / "model.npz", model, model_name="tiny", epoch=epoch)
    return model.state_dict()


@pytest.mark.parametrize("failing", ["write", "replace"])
def test_failed_npz_write_leaves_the_old_checkpoint_and_no_temp_file(tmp_path, monkeypatch,
                                                                     failing):
    old = _saved(tmp_path, epoch=1, seed=0)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync" if failing == "write" else "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        _saved(tmp_path, epoch=2, seed=1)
    monkeypatch.undo()
    assert _files(tmp_path) == ["model.json", "model.npz"]
    checkpoint = load_checkpoint(tmp_path / "model.npz")
    assert checkpoint.epoch == 1
    assert_same_weights(checkpoint.model_state, old)


def test_a_save_stopped_between_the_two_files_cannot_load(tmp_path, monkeypatch):
    _saved(tmp_path, epoch=1, seed=0)
    real_replace, calls = os.replace, []

    def replace_once(src, dst):
        calls.append(dst)
        if len(calls) == 2:                                   # the JSON, after the new .npz
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_once)
    with pytest.raises(KeyboardInterrupt):
        _saved(tmp_path, epoch=2, seed=1)
    monkeypatch.undo()
    assert _files(tmp_path) == ["model.json", "model.npz"]   # no temporary file left
    with pytest.raises(ValueError, match="checkpoint files do not belong together: 'model.json' "
                                         "records SHA-256 .* interrupted"):
        load_checkpoint(tmp_path / "model.npz")


def test_truncated_npz_is_refused(tmp_path):
    _saved(tmp_path, epoch=1, seed=0)
    data = (tmp_path / "model.npz").read_bytes()
    (tmp_path / "model.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="do not belong together"):
        load_checkpoint(tmp_path / "model.npz")


# ---------------------------------------------------------------------------- hostile and bad files
def _forge_pair(folder, arrays: dict, **metadata) -> None:
    """An .npz and a JSON that records its true SHA-256, so only the content is at fault."""
    np.savez(folder / "model.npz", **arrays)
    digest = hashlib.sha256((folder / "model.npz").read_bytes()).hexdigest()
    document = {"format": "cnnlab-checkpoint", "format_version": 1, "npz_sha256": digest,
                "model": {"name": "tiny", "args": {}}, "epoch": 0, **metadata}
    (folder / "model.json").write_text(json.dumps(document))


_UNPICKLED = []


class _Payload:
    def __reduce__(self):
        return (_UNPICKLED.append, ("code ran",))


def test_pickled_arrays_are_never_unpickled(tmp_path):
    _forge_pair(tmp_path, {"format/version": np.array(1),
                           "model/0.weight": np.array([_Payload()], dtype=object)})
    with pytest.raises(ValueError, match="is not a readable checkpoint archive .*allow_pickle"):
        load_checkpoint(tmp_path / "model.npz")
    assert _UNPICKLED == []


def test_clear_errors_for_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint file .*nothing.npz' does not exist"):
        load_checkpoint(tmp_path / "nothing.npz")
    np.savez(tmp_path / "weights.npz", w=np.ones(3))
    with pytest.raises(FileNotFoundError, match="has no metadata file 'weights.json' beside it"):
        load_checkpoint(tmp_path / "weights.npz")
    _forge_pair(tmp_path, {"w": np.ones(3)})
    with pytest.raises(ValueError, match="is a .npz archive but not a cnnlab checkpoint"):
        load_checkpoint(tmp_path / "model.npz")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match="model.json' is not valid JSON"):
        load_checkpoint(tmp_path / "model.npz")
    (tmp_path / "model.json").write_text(json.dumps({"weights": "model.npz"}))
    with pytest.raises(ValueError, match="is not the metadata of a cnnlab checkpoint"):
        load_checkpoint(tmp_path / "model.npz")
    _forge_pair(tmp_path, {"format/version": np.array(2)}, format_version=2)
    with pytest.raises(ValueError, match="has format version 2; this cnnlab .* reads versions "
                                         "up to 1"):
        load_checkpoint(tmp_path / "model.npz")
    (tmp_path / "model.npz").write_bytes(b"not a zip file")
    (tmp_path / "model.json").write_text(json.dumps({
        "format": "cnnlab-checkpoint", "format_version": 1, "model": {"name": "x", "args": {}},
        "epoch": 0, "npz_sha256": hashlib.sha256(b"not a zip file").hexdigest()}))
    with pytest.raises(ValueError, match="is not a readable checkpoint archive"):
        load_checkpoint(tmp_path / "model.npz")
    with pytest.raises(ValueError, match=r"expected a checkpoint file \(\.npz\), received the "
                                         r"directory .*; it holds model.npz, weights.npz"):
        load_checkpoint(tmp_path)


def test_mismatched_pair_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _saved(tmp_path / "a", epoch=1, seed=0)
    _saved(tmp_path / "b", epoch=2, seed=1)
    os.replace(tmp_path / "b" / "model.npz", tmp_path / "a" / "model.npz")
    with pytest.raises(ValueError, match="do not belong together"):
        load_checkpoint(tmp_path / "a" / "model.npz")


def test_model_that_does_not_fit_the_weights(tmp_path):
    cnnlab.manual_seed(0)
    save_checkpoint(tmp_path / "m.npz", build(channels=4), model_name="tiny",
                    model_args={"channels": 4}, epoch=0)
    checkpoint = load_checkpoint(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"weights of checkpoint .*m.npz' \(model 'tiny'\) do "
                                         r"not fit Sequential: '0.weight' expected shape "
                                         r"\(8, 1, 3, 3\), received \(4, 1, 3, 3\)"):
        restore_model(checkpoint, build(channels=8))
    with pytest.raises(ValueError, match="do not fit Linear: missing keys"):
        restore_model(checkpoint, nn.Linear(3, 2))
    checkpoint.model_name = "resnet"
    with pytest.raises(KeyError, match="cannot rebuild model 'resnet' with arguments "
                                       r"\{'channels': 4\} .*unknown model 'resnet'"):
        restore(checkpoint, build)
    checkpoint.model_name = "tiny"
    with pytest.raises(TypeError, match="build_model must return a cnnlab.nn.Module"):
        restore(checkpoint, lambda name, **args: "a model")


def test_restore_training_checks_the_optimizer_and_scheduler(tmp_path):
    cnnlab.manual_seed(0)
    model = build()
    sgd = optim.SGD(model.parameters(), lr=0.1)
    save_checkpoint(tmp_path / "m.npz", model, sgd, model_name="tiny", epoch=2)
    checkpoint = load_checkpoint(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="holds the state of a SGD optimizer, received a Adam"):
        restore_training(checkpoint, model, optim.Adam(model.parameters()))
    with pytest.raises(ValueError, match="was saved without a learning-rate scheduler"):
        restore_training(checkpoint, model, sgd, optim.lr_scheduler.StepLR(sgd, 1))
    save_checkpoint(tmp_path / "bare.npz", model, model_name="tiny", epoch=2)
    with pytest.raises(ValueError, match="was saved without an optimizer state"):
        restore_training(load_checkpoint(tmp_path / "bare.npz"), model, sgd)


def test_save_checks_its_arguments(tmp_path):
    model = build()
    with pytest.raises(FileNotFoundError, match="the directory .*missing' does not exist"):
        save_checkpoint(tmp_path / "missing" / "m.npz", model, model_name="tiny", epoch=0)
    with pytest.raises(TypeError, match="config must hold JSON data .* received a object"):
        save_checkpoint(tmp_path / "m.npz", model, model_name="tiny", epoch=0,
                        config={"bad": object()})
    with pytest.raises(ValueError, match="epoch must be a non-negative int, received -1"):
        save_checkpoint(tmp_path / "m.npz", model, model_name="tiny", epoch=-1)
    with pytest.raises(TypeError, match="model must be a cnnlab.nn.Module"):
        save_checkpoint(tmp_path / "m.npz", {"w": np.ones(2)}, model_name="tiny", epoch=0)
    assert _files(tmp_path) == []
