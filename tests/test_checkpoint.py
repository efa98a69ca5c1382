"""Checkpoints: exact resume, one-file atomic commits (also under SIGKILL and concurrent readers),
the safetensors layout, version-1 files, and one clear sentence for every bad or hostile file."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab import nn, optim
from cnnlab.data import ArrayDataset, transforms
from cnnlab.train import (
    CheckpointError,
    ModelCheckpoint,
    fit,
    load_checkpoint,
    restore,
    restore_model,
    restore_training,
    save_checkpoint,
)
from cnnlab.train import safetensors_format as st
from cnnlab.train.checkpoint import atomic_write, remove_stale_temporaries

V1 = Path(__file__).parent / "data" / "v1_checkpoint"


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
    checkpoint = load_checkpoint(tmp_path / "last.safetensors")
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
    checkpoint = load_checkpoint(tmp_path / "last.safetensors")
    for rng, with_optimizer in ((False, True), (True, False)):
        model, optimizer, schedule = new_run("sgd", seed=99)
        if with_optimizer:
            restore_training(checkpoint, model, optimizer, schedule, rng=rng)
        else:
            restore_training(checkpoint, model, None, None, rng=rng)
        train(model, optimizer, schedule, epochs=4, start_epoch=2)
        state = model.state_dict()
        assert any(not np.array_equal(state[k], expected[k]) for k in state)



# ---------------------------------------------------------------------------- round trip, layout
def test_round_trip_of_everything(tmp_path):
    model, optimizer, schedule = new_run("adam")
    train(model, optimizer, schedule, epochs=1)
    history = [{"epoch": 1, "loss": 0.5}]
    path = save_checkpoint(tmp_path / "model", model, optimizer, model_name="tiny",
                           model_args={"channels": 4}, config={"data": "stripes", "lr": 0.01},
                           epoch=1, metrics={"val_accuracy": np.float32(0.75),
                                             "per_class": np.array([0.5, np.nan])},
                           scheduler=schedule, history=history)
    assert path == tmp_path / "model.safetensors" and _files(tmp_path) == ["model.safetensors"]
    metadata = _description(path)
    assert metadata["format"] == "cnnlab-checkpoint" and metadata["format_version"] == 2
    assert metadata["model"]["parameters"] == model.num_parameters()
    assert metadata["optimizer"]["class"] == "Adam"
    assert metadata["optimizer"]["param_groups"][0]["betas"] == [0.9, 0.999]
    assert metadata["scheduler"]["class"] == "CosineAnnealingLR"
    assert metadata["metrics"] == {"val_accuracy": 0.75, "per_class": [0.5, None]}

    for given in (path, tmp_path / "model", str(path)):
        checkpoint = load_checkpoint(given)
        assert checkpoint.path == path
    assert checkpoint.model_args == {"channels": 4} and checkpoint.epoch == 1
    assert checkpoint.config == {"data": "stripes", "lr": 0.01}
    assert checkpoint.history == history
    assert_same_weights(checkpoint.model_state, model.state_dict())
    saved = optimizer.state_dict()
    assert checkpoint.optimizer_state["param_groups"] == json.loads(
        json.dumps(saved["param_groups"]))
    for index, values in saved["state"].items():
        for name, value in values.items():
            stored = checkpoint.optimizer_state["state"][index][name]
            assert stored.shape == np.shape(value)          # Adam's step stays a 0-d array
            np.testing.assert_array_equal(stored, value)
    assert checkpoint.scheduler_state == schedule.state_dict()
    assert checkpoint.rng_state == cnnlab.random.get_state()


def _description(path) -> dict:
    """The cnnlab description in a safetensors header, read by hand (the layout's proof)."""
    data = Path(path).read_bytes()
    length = int.from_bytes(data[:8], "little")
    assert length % 8 == 0                                  # padded, as safetensors writes it
    header = json.loads(data[8:8 + length])
    assert header["__metadata__"]["format"] == "pt"
    return json.loads(header["__metadata__"]["cnnlab"])


def test_the_safetensors_package_and_torch_open_our_files(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    model, optimizer, schedule = new_run("sgd")
    train(model, optimizer, schedule, epochs=1)
    path = save_checkpoint(tmp_path / "m", model, optimizer, model_name="tiny", epoch=1)
    arrays = safetensors_numpy.load_file(str(path))
    assert_same_weights({k: v for k, v in arrays.items() if not k.startswith("optimizer/")},
                        model.state_dict())
    assert "optimizer/0/momentum_buffer" in arrays
    # and back: a file the safetensors package wrote loads into cnnlab's reader
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    tensors = safetensors_torch.load_file(str(path))
    reference = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                    torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Dropout(0.3),
                                    torch.nn.Flatten(), torch.nn.Linear(64, 2))
    weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer/")}
    weights["1.num_batches_tracked"] = torch.tensor(0)
    reference.load_state_dict(weights)
    reference.eval()
    model.eval()
    x = VAL.images[:5]
    np.testing.assert_allclose(reference(torch.from_numpy(x)).detach().numpy(),
                               model(cnnlab.tensor(x)).data, rtol=1e-5, atol=1e-5)
    # A header written by the safetensors package itself parses with ours.
    other = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(other),
                                metadata={"a": "b"})
    with open(other, "rb") as file:
        header = st.read_header(file, other.stat().st_size, "theirs", 100)
        arrays = st.read_tensors(file, header, hashlib.sha256())
    assert header.metadata == {"a": "b"}
    np.testing.assert_array_equal(arrays["w"], np.arange(6).reshape(2, 3))


def test_version_1_checkpoints_still_load():
    """tests/data/v1_checkpoint: a model.npz + model.json pair written by cnnlab 0.1."""
    from cnnlab import models

    with np.load(V1 / "model.npz", allow_pickle=False) as archive:
        stored = {k[len("model/"):]: archive[k] for k in archive.files if k.startswith("model/")}
    for given in (V1 / "model.npz", V1 / "model.json", V1 / "model"):
        checkpoint = load_checkpoint(given)
        assert checkpoint.path == V1 / "model.npz"
    assert checkpoint.epoch == 1 and checkpoint.optimizer_class == "Adam"
    assert checkpoint.scheduler_class == "CosineAnnealingLR"
    assert checkpoint.config["normalize"] == {"mean": [0.25], "std": [0.5]}
    model = restore(checkpoint, models.get)
    assert_same_weights(model.state_dict(), stored)
    optimizer = optim.Adam(model.parameters(), lr=0.002)
    schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    assert restore_training(checkpoint, None, optimizer, schedule) == 1
    assert optimizer.state_dict()["state"][0]["step"] == 1


def test_the_command_line_reads_a_version_1_checkpoint(tmp_path, capsys):
    from PIL import Image

    from cnnlab.cli import main

    Image.fromarray(np.eye(16, dtype=np.uint8) * 255).save(tmp_path / "diagonal.png")
    assert main(["predict", str(V1 / "model.npz"), str(tmp_path / "diagonal.png")]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"{tmp_path / 'diagonal.png'}: ") and line.split(": ")[1][0] in "abc"


def test_restore_model_into_a_built_model(tmp_path):
    cnnlab.manual_seed(0)
    model = build()
    save_checkpoint(tmp_path / "m", model, model_name="tiny", epoch=0)
    cnnlab.manual_seed(1)
    other = build()
    restore_model(load_checkpoint(tmp_path / "m.safetensors"), other)
    assert_same_weights(other.state_dict(), model.state_dict())


# ---------------------------------------------------------------------------- atomic writes
def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _saved(folder, epoch: int, seed: int) -> dict:
    cnnlab.manual_seed(seed)
    model = build()
    save_checkpoint(folder / "model", model, model_name="tiny", epoch=epoch)
    return model.state_dict()


@pytest.mark.parametrize("failing", ["write", "replace", "interrupt"])
def test_a_failed_save_leaves_the_old_checkpoint_and_no_temp_file(tmp_path, monkeypatch,
                                                                  failing):
    old = _saved(tmp_path, epoch=1, seed=0)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt if failing == "interrupt" else OSError("disk full")

    monkeypatch.setattr(os, "fsync" if failing == "write" else "replace", fail)
    with pytest.raises(KeyboardInterrupt if failing == "interrupt" else OSError):
        _saved(tmp_path, epoch=2, seed=1)
    monkeypatch.undo()
    assert _files(tmp_path) == ["model.safetensors"]
    checkpoint = load_checkpoint(tmp_path / "model.safetensors")
    assert checkpoint.epoch == 1
    assert_same_weights(checkpoint.model_state, old)


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".model.safetensors.{dead}.0a1b2c3d.tmp"
    mine = tmp_path / f".model.safetensors.{os.getpid()}.0a1b2c3d.tmp"
    alive = tmp_path / f".model.safetensors.{os.getppid()}.0a1b2c3d.tmp"
    other = tmp_path / ".notes.tmp"
    for path in (stale, mine, alive, other):
        path.write_bytes(b"half a checkpoint")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert _files(tmp_path) == sorted(p.name for p in (mine, alive, other))


def test_other_hidden_temporary_files_are_left_alone(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # named like ours but without a process number, or with too few parts to be ours
    others = [tmp_path / ".notes.draft.0a1b2c3d.tmp", tmp_path / f".{dead}.tmp"]
    for path in others:
        path.write_bytes(b"someone else's")
    assert remove_stale_temporaries(tmp_path) == []
    assert _files(tmp_path) == sorted(p.name for p in others)


def test_atomic_write_fsyncs_the_file_then_renames_then_fsyncs_the_folder(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"),
                                                     real_replace(a, b))[1])
    atomic_write(tmp_path / "f", [b"ab", memoryview(b"cd")])
    assert calls == ["fsync", "replace", "fsync"]
    assert (tmp_path / "f").read_bytes() == b"abcd"


_KILLED_CHILD = r"""
import os, sys, time
import numpy as np
import cnnlab
from cnnlab import nn, optim
from cnnlab.data import ArrayDataset
from cnnlab.train import ModelCheckpoint, fit

folder, kill_at, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real_replace, commits = os.replace, [0]

def replace(src, dst):
    if str(dst).endswith(".safetensors"):
        commits[0] += 1
        if commits[0] == kill_at and phase == "before":
            print("before", flush=True)
            time.sleep(30)                      # killed here: the new file is complete, unnamed
    real_replace(src, dst)
    if str(dst).endswith(".safetensors") and commits[0] == kill_at and phase == "after":
        print("after", flush=True)
        time.sleep(30)                          # killed here: renamed, folder not yet fsynced

os.replace = replace
cnnlab.manual_seed(0)
rng = np.random.default_rng(0)
data = ArrayDataset(rng.random((64, 1, 4, 4), dtype=np.float32), rng.integers(0, 2, 64),
                    ["a", "b"])
model = nn.Sequential(nn.Flatten(), nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))
saver = ModelCheckpoint(folder, monitor=None, model_name="mlp", last="model", best=None)
print("ready", flush=True)
fit(model, data, epochs=100000, optimizer=optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
    batch_size=16, callbacks=[saver], progress=False)
"""


def _kill_during_saves(folder: Path, kills: int) -> dict[str, int]:
    """Kill (SIGKILL) a training ``kills`` times: while a finished checkpoint waits for its
    rename, right after the rename, and at random moments; the last good one must always load."""
    rng = np.random.default_rng(1)
    env = {**os.environ, "PYTHONPATH": str(Path(cnnlab.__file__).parents[1])}
    counts = {"kills": 0, "loaded": 0, "stale_removed": 0, "concurrent_loads": 0}
    for i in range(kills):
        phase = ("before", "after", "random")[i % 3] if i else "before"
        kill_at = 2 + i % 4
        child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, str(folder),
                                  str(kill_at), phase], stdout=subprocess.PIPE, text=True,
                                 env=env)
        try:
            assert child.stdout.readline() == "ready\n"
            if phase == "random":               # meanwhile, read what the writer commits
                deadline = time.perf_counter() + rng.uniform(0.0, 0.3)
                while time.perf_counter() < deadline:
                    load_checkpoint(folder / "model.safetensors")
                    counts["concurrent_loads"] += 1
            else:
                assert child.stdout.readline() == f"{phase}\n"
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
        counts["kills"] += 1
        checkpoint = load_checkpoint(folder / "model.safetensors")
        counts["loaded"] += 1
        if phase == "before":
            assert checkpoint.epoch == kill_at - 1
        elif phase == "after":
            assert checkpoint.epoch == kill_at
        counts["stale_removed"] += len(remove_stale_temporaries(folder))
        assert _files(folder) == ["model.safetensors"]
    return counts


def test_sigkill_at_the_commit_never_loses_the_last_checkpoint(tmp_path):
    counts = _kill_during_saves(tmp_path, kills=4)
    assert counts["loaded"] == 4 and counts["stale_removed"] >= 1


@pytest.mark.slow
def test_sigkill_at_the_commit_24_times(tmp_path):
    counts = _kill_during_saves(tmp_path, kills=24)
    assert counts["kills"] == counts["loaded"] == 24
    assert counts["stale_removed"] >= 8                     # every "before" kill left one
    print(counts)


def test_readers_never_see_a_partial_checkpoint_while_a_writer_saves(tmp_path):
    cnnlab.manual_seed(0)
    model = build()
    model[0].bias.data[0] = 0
    save_checkpoint(tmp_path / "model", model, model_name="tiny", epoch=0)
    done, failures, loads = threading.Event(), [], [0]

    def read():
        while not done.is_set():
            try:
                checkpoint = load_checkpoint(tmp_path / "model.safetensors")
                assert checkpoint.model_state["0.bias"][0] == checkpoint.epoch
                loads[0] += 1
            except Exception as error:                      # noqa: BLE001 - counted, reported
                failures.append(repr(error))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for epoch in range(1, 150):
            model[0].bias.data[0] = epoch                   # each file tells its own epoch
            save_checkpoint(tmp_path / "model", model, model_name="tiny", epoch=epoch)
    finally:
        done.set()
        reader.join()
    assert failures == [] and loads[0] > 10


# ---------------------------------------------------------------------------- hostile and bad files
def _forge(path, tensors: dict | None = None, metadata: dict | None = None, *,
           drop: tuple[str, ...] = (), description: str | None = None) -> Path:
    """A checkpoint whose SHA-256 is right, so only the named fault is wrong."""
    tensors = {"w": np.ones(3, np.float32)} if tensors is None else tensors
    digest = hashlib.sha256()
    for value in tensors.values():
        digest.update(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")))
    document = {"format": "cnnlab-checkpoint", "format_version": 2,
                "weights_sha256": digest.hexdigest(), "model": {"name": "tiny", "args": {}},
                "epoch": 0, "config": {}, **(metadata or {})}
    for key in drop:
        where, _, name = key.partition(".")
        del (document[where] if name else document)[name or where]
    text = json.dumps(document) if description is None else description
    path = Path(path)
    path.write_bytes(b"".join(st.encode(tensors, {"cnnlab": text})))
    return path


def _header_file(path, header: bytes, data: bytes = b"") -> Path:
    Path(path).write_bytes(len(header).to_bytes(8, "little") + header + data)
    return Path(path)


def _v1_metadata_beside(npz: Path) -> None:
    """The fixture's version-1 metadata, its digest made to match ``npz``, written beside it."""
    metadata = json.loads((V1 / "model.json").read_text())
    metadata["npz_sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    npz.with_suffix(".json").write_text(json.dumps(metadata))


def _refused(path, match: str) -> None:
    with pytest.raises(CheckpointError, match=match) as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)
    assert str(caught.value).endswith(".")             # one whole sentence
    assert Path(path).stem in str(caught.value)         # ...that names the file
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("drop,match", [
    (("model.name",), "has no model.name"),
    (("model.args",), "has no model.args"),
    (("model",), "has no 'model' entry"),
    (("epoch",), "has no valid 'epoch'"),
    (("weights_sha256",), "has no 'weights_sha256'"),
    (("config",), "has no 'config' entry .*standardisation"),
])
def test_each_missing_entry_is_named(tmp_path, drop, match):
    _refused(_forge(tmp_path / "forged.safetensors", drop=drop), match)


@pytest.mark.parametrize("metadata,match", [
    ({"format": "other"}, "is not a cnnlab checkpoint"),
    ({"format_version": 3}, "has format version 3; this cnnlab .* reads versions up to 2"),
    ({"model": {"name": "", "args": {}}}, "has no model.name"),
    ({"model": {"name": "x", "args": []}}, "has no model.args"),
    ({"epoch": -1}, "has no valid 'epoch'"),
    ({"epoch": "3"}, r"has no valid 'epoch' \(completed epochs\), received '3'\.$"),
    ({"weights_sha256": "0" * 64}, "is damaged: its tensors have SHA-256"),
    ({"config": {"classes": ["a", "b", "c"]}, "model": {"name": "x", "args": {"num_classes": 2}}},
     r"names 3 classes but its model has 2 outputs"),
    ({"optimizer": {"class": "SGD"}}, "'optimizer' entry without its class and param_groups"),
    ({"scheduler": {"state": {}}}, "'scheduler' entry without its class and state"),
    ({"metrics": [1]}, "'metrics' entry that is not a JSON object"),
    ({"history": {"epoch": 1}}, "'history' entry that is not a list"),
    ({"rng_state": [1, 2]}, "random state that is not a JSON object"),
])
def test_bad_descriptions_are_refused(tmp_path, metadata, match):
    _refused(_forge(tmp_path / "forged.safetensors", metadata=metadata), match)


@pytest.mark.parametrize("tensors,match", [
    ({"0.weight": np.array([1.0, np.nan], np.float32)}, r"non-finite weights .* in '0.weight'"),
    ({"0.weight": np.array([np.inf], np.float64)}, "non-finite weights"),
    ({"0.weight": np.array([1, 2], np.int32)}, "stores '0.weight' as int32; weights must be "
                                               "floating-point"),
    ({"0.weight": np.array([True])}, "stores '0.weight' as bool"),
    ({"optimizer/x/momentum": np.ones(2, np.float32)}, "optimizer array named 'x/momentum'"),
])
def test_bad_weights_are_refused(tmp_path, tensors, match):
    metadata = {"optimizer": {"class": "SGD", "param_groups": []}}
    _refused(_forge(tmp_path / "forged.safetensors", tensors, metadata), match)


def test_batch_norm_step_counters_may_be_integers(tmp_path):
    tensors = {"1.num_batches_tracked": np.array(5, np.int64), "1.weight": np.ones(2, np.float32)}
    checkpoint = load_checkpoint(_forge(tmp_path / "m.safetensors", tensors))
    assert checkpoint.model_state["1.num_batches_tracked"] == 5


def test_sizes_are_checked_before_allocating(tmp_path, monkeypatch):
    entry = {"dtype": "F32", "shape": [1_000_000, 1_000_000], "data_offsets": [0, 4]}
    allocated = []
    real_empty = np.empty
    monkeypatch.setattr(np, "empty", lambda *a, **k: (allocated.append(a), real_empty(*a, **k))[1])
    cases = [
        (json.dumps({"w": entry}).encode(), b"\0" * 4, r"declares shape \(1000000, 1000000\) of "
                                                       r"F32 \(4,000,000,000,000 bytes\)"),
        (json.dumps({"w": {**entry, "data_offsets": [0, 4 * 10**12]}}).encode(), b"\0" * 4,
         r"data_offsets .* outside the 4 bytes of data the file holds \(was it cut short\?\)"),
        (json.dumps({"w": {**entry, "shape": [2]}}).encode(), b"\0" * 4,
         r"declares shape \(2,\) of F32 \(8 bytes\) but data_offsets span 4 bytes"),
        (json.dumps({"w": {**entry, "shape": [1], "dtype": "F8"}}).encode(), b"\0" * 4,
         "has dtype 'F8'"),
        (json.dumps({"w": {**entry, "shape": [-1]}}).encode(), b"\0" * 4, "has shape \\[-1\\]"),
        (json.dumps({"w": {**entry, "shape": [1]}, "v": {**entry, "shape": [1]}}).encode(),
         b"\0" * 4, "do not tile its data"),
        (json.dumps({"w": {**entry, "shape": [1]}}).encode(), b"\0" * 8,
         "holds 8 bytes of tensor data, but its header declares 4"),
        (json.dumps({"w": {"dtype": "F32"}}).encode(), b"", "needs dtype, shape and data_offsets"),
        (b'{"a":' + b"[" * 100 + b"]" * 100 + b"}", b"", "nests 101 levels deep; at most 32"),
        (b"{" + b'"a":{' * 40 + b"}" * 41, b"", "nests 41 levels deep"),
        (b"{not json", b"", "is not valid JSON"),
        (b'{"a":' + b"1" * 5000 + b"}", b"", "is not valid JSON .*5000 digits"),
        (json.dumps({"__metadata__": {"cnnlab": 3}}).encode(), b"", "must map strings to strings"),
        (json.dumps({"__metadata__": {"x": "y"}}).encode(), b"", "not a cnnlab checkpoint"),
    ]
    for i, (header, data, match) in enumerate(cases):
        _refused(_header_file(tmp_path / f"{i}.safetensors", header, data), match)
    # a cap on the elements in all, below the file size
    _forge(tmp_path / "big.safetensors", {"w": np.ones(10, np.float32)})
    assert load_checkpoint(tmp_path / "big.safetensors", max_elements=10).epoch == 0
    with pytest.raises(CheckpointError, match="declares more than 9 tensor elements"):
        load_checkpoint(tmp_path / "big.safetensors", max_elements=9)
    # the length field itself
    (tmp_path / "short.safetensors").write_bytes(b"\1\0")
    _refused(tmp_path / "short.safetensors", "has 2 bytes, too few")
    (tmp_path / "long.safetensors").write_bytes((10**9).to_bytes(8, "little") + b"{}")
    _refused(tmp_path / "long.safetensors", "declares a 1,000,000,000-byte header, but the file "
                                            "has only 2 bytes")
    monkeypatch.setattr(st, "MAX_HEADER_BYTES", 4)
    _refused(_header_file(tmp_path / "cap.safetensors", b"{}     "), "at most 4 are accepted")
    assert all(np.prod(shape[0]) < 100 for shape in allocated)


def test_deeply_nested_description_is_refused(tmp_path):
    _refused(_forge(tmp_path / "m.safetensors", description="[" * 5000 + "]" * 5000),
             "the description of .* nests 5000 levels deep")


def test_a_cut_or_changed_file_is_refused(tmp_path):
    _saved(tmp_path, epoch=1, seed=0)
    path = tmp_path / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    _refused(path, "was it cut short")
    path.write_bytes(data + b"more")
    _refused(path, "the file was cut short or extended")
    changed = bytearray(data)
    changed[-3] ^= 0xFF                                       # one weight's byte
    path.write_bytes(bytes(changed))
    _refused(path, "is damaged: its tensors have SHA-256")


def test_model_arguments_larger_than_the_weights_are_refused_before_allocating(tmp_path):
    from cnnlab import models

    model = models.lenet5(input_size=16, channels=(2, 4), num_classes=3)
    args = {"input_size": 16, "channels": [2, 4], "num_classes": 3}
    save_checkpoint(tmp_path / "m", model, model_name="lenet5", model_args=args, epoch=0)
    checkpoint = load_checkpoint(tmp_path / "m.safetensors")
    for size, match in ((3000, "these arguments would create more than 11,275 parameters"),
                        (10**6, "would create more than|would not fit in memory")):
        checkpoint.model_args = {**args, "input_size": size}
        with pytest.raises(ValueError, match=f"cannot rebuild model 'lenet5' .*({match})"):
            restore(checkpoint, models.get)


def test_pickled_arrays_in_a_version_1_file_are_never_unpickled(tmp_path):
    np.savez(tmp_path / "model.npz", **{"format/version": np.array(1),
                                        "model/0.weight": np.array([_Payload()], dtype=object)})
    digest = hashlib.sha256((tmp_path / "model.npz").read_bytes()).hexdigest()
    (tmp_path / "model.json").write_text(json.dumps({
        "format": "cnnlab-checkpoint", "format_version": 1, "npz_sha256": digest,
        "model": {"name": "tiny", "args": {}}, "epoch": 0, "config": {}}))
    with pytest.raises(ValueError, match="is not a readable checkpoint archive .*allow_pickle"):
        load_checkpoint(tmp_path / "model.npz")
    assert _UNPICKLED == []


_UNPICKLED = []


class _Payload:
    def __reduce__(self):
        return (_UNPICKLED.append, ("code ran",))


def test_version_1_files_are_checked_too(tmp_path):
    for name in ("model.npz", "model.json"):
        (tmp_path / name).write_bytes((V1 / name).read_bytes())
    metadata = json.loads((V1 / "model.json").read_text())
    del metadata["config"]
    (tmp_path / "model.json").write_text(json.dumps(metadata))
    _refused(tmp_path / "model.npz", "has no 'config' entry")
    (tmp_path / "model.json").write_text("{not json")
    _refused(tmp_path / "model.npz", "model.json' is not valid JSON")
    (tmp_path / "model.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no metadata file 'model.json' beside it"):
        load_checkpoint(tmp_path / "model.npz")
    # a compressed member that declares far more than the file holds
    np.savez_compressed(tmp_path / "bomb.npz", **{"format/version": np.array(1),
                                                  "model/w": np.zeros(10**7, np.float32)})
    metadata["config"] = {}
    metadata["npz_sha256"] = hashlib.sha256((tmp_path / "bomb.npz").read_bytes()).hexdigest()
    (tmp_path / "bomb.json").write_text(json.dumps(metadata))
    _refused(tmp_path / "bomb.npz", r"declares arrays of 40,000,0\d\d bytes \(10,000,00\d "
                                    r"elements\) in a file of")
    # the element cap, and the pair must belong together
    (tmp_path / "model.json").write_text((V1 / "model.json").read_text())
    assert load_checkpoint(tmp_path / "model.npz").epoch == 1
    with pytest.raises(CheckpointError, match=r"declares arrays of .* \([\d,]+ elements\)"):
        load_checkpoint(tmp_path / "model.npz", max_elements=1000)
    (tmp_path / "model.npz").write_bytes((V1 / "model.npz").read_bytes()[:-10])
    _refused(tmp_path / "model.npz", "checkpoint files do not belong together")


def test_clear_errors_for_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint file .*nothing.safetensors' does "
                                                "not exist"):
        load_checkpoint(tmp_path / "nothing.safetensors")
    with pytest.raises(FileNotFoundError, match="checkpoint file .*nothing' does not exist"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    _refused(tmp_path / "image.png", r"expected a checkpoint file \(\.safetensors\), received "
                                     r"'.*image.png'")
    _saved(tmp_path, epoch=0, seed=0)
    _refused(tmp_path, r"expected a checkpoint file \(\.safetensors\), received the directory "
                       r".*; it holds model.safetensors")


def test_model_that_does_not_fit_the_weights(tmp_path):
    cnnlab.manual_seed(0)
    save_checkpoint(tmp_path / "m", build(channels=4), model_name="tiny",
                    model_args={"channels": 4}, epoch=0)
    checkpoint = load_checkpoint(tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match=r"weights of checkpoint .*m.safetensors' \(model "
                                         r"'tiny'\) do not fit Sequential: '0.weight' expected "
                                         r"shape \(8, 1, 3, 3\), received \(4, 1, 3, 3\)"):
        restore_model(checkpoint, build(channels=8))
    with pytest.raises(ValueError, match="do not fit Linear: missing keys"):
        restore_model(checkpoint, nn.Linear(3, 2))
    checkpoint.model_name = "resnet"
    with pytest.raises(KeyError, match="cannot rebuild model 'resnet' with arguments "
                                       r"\{'channels': 4\} .*unknown model 'resnet'"):
        restore(checkpoint, build)
    checkpoint.model_name = "tiny"
    with pytest.raises(TypeError, match="build_model must return a cnnlab.nn.Module, received "
                                        "str for model 'tiny'"):
        restore(checkpoint, lambda name, **args: "a model")


def test_restore_training_checks_the_optimizer_and_scheduler(tmp_path):
    cnnlab.manual_seed(0)
    model = build()
    sgd = optim.SGD(model.parameters(), lr=0.1)
    save_checkpoint(tmp_path / "m", model, sgd, model_name="tiny", epoch=2)
    checkpoint = load_checkpoint(tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="holds the state of a SGD optimizer, received a Adam"):
        restore_training(checkpoint, model, optim.Adam(model.parameters()))
    with pytest.raises(ValueError, match="was saved without a learning-rate scheduler"):
        restore_training(checkpoint, model, sgd, optim.lr_scheduler.StepLR(sgd, 1))
    save_checkpoint(tmp_path / "bare", model, model_name="tiny", epoch=2)
    with pytest.raises(ValueError, match="was saved without an optimizer state"):
        restore_training(load_checkpoint(tmp_path / "bare.safetensors"), model, sgd)


def test_save_checks_its_arguments(tmp_path):
    model = build()
    with pytest.raises(FileNotFoundError, match="the directory .*missing' does not exist"):
        save_checkpoint(tmp_path / "missing" / "m", model, model_name="tiny", epoch=0)
    with pytest.raises(TypeError, match="config must hold JSON data .* received a object"):
        save_checkpoint(tmp_path / "m", model, model_name="tiny", epoch=0,
                        config={"bad": object()})
    with pytest.raises(ValueError, match="epoch must be a non-negative int, received -1"):
        save_checkpoint(tmp_path / "m", model, model_name="tiny", epoch=-1)
    with pytest.raises(ValueError, match="model_name must be a non-empty string"):
        save_checkpoint(tmp_path / "m", model, model_name="", epoch=0)
    with pytest.raises(TypeError, match="model must be a cnnlab.nn.Module, received dict"):
        save_checkpoint(tmp_path / "m", {"w": np.ones(2)}, model_name="tiny", epoch=0)
    with pytest.raises(TypeError, match="optimizer must be a cnnlab.optim.Optimizer or None, "
                                        "received dict"):
        save_checkpoint(tmp_path / "m", model, {"lr": 0.1}, model_name="tiny", epoch=0)
    with pytest.raises(TypeError, match="scheduler must be a cnnlab lr_scheduler or None, "
                                        "received SGD"):
        save_checkpoint(tmp_path / "m", model, model_name="tiny", epoch=0,
                        scheduler=optim.SGD(model.parameters(), lr=0.1))
    for old in ("m.npz", "m.json"):
        with pytest.raises(ValueError, match=rf"writes one \.safetensors file; received .*{old}"):
            save_checkpoint(tmp_path / old, model, model_name="tiny", epoch=0)
    with pytest.raises(TypeError, match="^history must hold JSON data"):
        save_checkpoint(tmp_path / "m", model, model_name="tiny", epoch=0,
                        history=[{"loss": [object()]}])
    assert _files(tmp_path) == []


def test_extra_and_the_missing_config_sentence(tmp_path):
    model = build()
    save_checkpoint(tmp_path / "m", model, model_name="tiny", epoch=0, config={},
                    extra={"train_seconds": 1.5, "note": "first part"})
    assert load_checkpoint(tmp_path / "m.safetensors").extra == {"train_seconds": 1.5,
                                                                 "note": "first part"}
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(_forge(tmp_path / "f.safetensors", drop=("config",)))
    assert str(caught.value) == (
        f"checkpoint {str(tmp_path / 'f.safetensors')!r} has no 'config' entry (the training "
        "configuration with its input standardisation); without it the model would see "
        "unstandardised inputs.")


def test_restore_training_names_the_checkpoint(tmp_path):
    model = build()
    save_checkpoint(tmp_path / "bare", model, model_name="tiny", epoch=0)
    with pytest.raises(ValueError, match=r"^checkpoint '.*bare.safetensors' was saved without"):
        restore_training(load_checkpoint(tmp_path / "bare.safetensors"), model,
                         optim.SGD(model.parameters(), lr=0.1))


def test_a_version_1_random_state_that_is_not_json(tmp_path):
    with np.load(V1 / "model.npz", allow_pickle=False) as archive:
        arrays = dict(archive)
    arrays["rng/state"] = np.array("{not json")
    np.savez(tmp_path / "model.npz", **arrays)
    _v1_metadata_beside(tmp_path / "model.npz")
    _refused(tmp_path / "model.npz", r"^checkpoint .*model.npz' has a random state that is not "
                                     r"JSON\.$")


def test_metrics_round_trip_and_each_description_part_is_named_when_not_json(tmp_path):
    model = build()
    save_checkpoint(tmp_path / "m", model, model_name="tiny", epoch=1, config={},
                    metrics={"test_accuracy": 0.5})
    assert load_checkpoint(tmp_path / "m.safetensors").metrics == {"test_accuracy": 0.5}
    for part in ("metrics", "extra"):
        with pytest.raises(TypeError, match=f"^{part} must hold JSON data"):
            save_checkpoint(tmp_path / "m", model, model_name="tiny", epoch=1,
                            **{part: {"x": object()}})


def test_a_directory_given_as_checkpoint_lists_both_formats(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "old.npz").write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"received the directory .*; it holds "
                                              r"model\.safetensors, old\.npz\.$"):
        load_checkpoint(tmp_path)


def test_process_1_counts_as_alive():
    from cnnlab.train.checkpoint import _pid_alive

    assert _pid_alive(1) and _pid_alive(os.getpid())
    assert not _pid_alive(0) and not _pid_alive(-5)


def test_version_1_element_cap_counts_all_arrays_and_foreign_archives(tmp_path):
    largest = 10080                                     # model/9.weight of the fixture
    assert load_checkpoint(V1 / "model.npz", max_elements=4 * largest).epoch == 1
    with pytest.raises(CheckpointError, match=r"\([\d,]+ elements\)"):
        load_checkpoint(V1 / "model.npz", max_elements=2 * largest)   # all arrays together
    np.savez(tmp_path / "model.npz", w=np.ones(3, np.float32))
    _v1_metadata_beside(tmp_path / "model.npz")
    _refused(tmp_path / "model.npz", r"model.npz' is a \.npz archive but not a cnnlab checkpoint "
                                     r"\(it has no 'format/version' entry\)\.$")
    (tmp_path / "model.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"^checkpoint file '.*model.npz' does not exist"):
        load_checkpoint(tmp_path / "model.json")


@pytest.mark.parametrize("key", ["metrics", "extra"])
def test_description_parts_that_are_not_objects(tmp_path, key):
    _refused(_forge(tmp_path / "m.safetensors", metadata={key: [1, 2]}),
             rf"^checkpoint '.*m.safetensors' has a '{key}' entry that is not a JSON object\.$")


def test_a_newer_format_version_names_the_file_and_the_versions_read(tmp_path):
    _refused(_forge(tmp_path / "newer.safetensors", metadata={"format_version": 3}),
             rf"^checkpoint '.*newer.safetensors' has format version 3; this cnnlab "
             rf"{cnnlab.__version__} reads versions up to 2\.$")


def test_a_damaged_file_shows_both_digests_to_compare(tmp_path):
    weights = np.ones(3, np.float32)
    actual = hashlib.sha256(weights.tobytes()).hexdigest()
    path = _forge(tmp_path / "m.safetensors", {"w": weights}, {"weights_sha256": "ab" * 32})
    _refused(path, rf"is damaged: its tensors have SHA-256 {actual[:12]}…, its description "
                   rf"records abababababab…\.$")


@pytest.mark.parametrize("part", ["model_args", "optimizer groups", "scheduler state"])
def test_each_part_that_is_not_json_is_named_when_saving(tmp_path, part):
    class NotedStepLR(optim.lr_scheduler.StepLR):
        pass

    model = build()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    scheduler = NotedStepLR(optimizer, 1)
    arguments = {}
    if part == "model_args":
        arguments["model_args"] = {"activation": object()}
    elif part == "optimizer groups":
        optimizer.param_groups[0]["note"] = object()       # a key of the user's own
    else:
        scheduler.callback = object()
    with pytest.raises(TypeError, match=rf"^{part} must hold JSON data \(numbers, strings, "
                                        rf"lists, dicts\), received a object\.$"):
        save_checkpoint(tmp_path / "m", model, optimizer, scheduler=scheduler,
                        model_name="tiny", epoch=0, **arguments)
    assert _files(tmp_path) == []


def test_restore_training_names_both_scheduler_classes(tmp_path):
    model = build()
    sgd = optim.SGD(model.parameters(), lr=0.1)
    save_checkpoint(tmp_path / "m", model, sgd, scheduler=optim.lr_scheduler.StepLR(sgd, 1),
                    model_name="tiny", epoch=1)
    cosine = optim.lr_scheduler.CosineAnnealingLR(sgd, T_max=5)
    with pytest.raises(ValueError, match=r"^checkpoint '.*m.safetensors' holds the state of a "
                                         r"StepLR scheduler, received a CosineAnnealingLR to "
                                         r"restore it into\.$"):
        restore_training(load_checkpoint(tmp_path / "m.safetensors"), model, sgd, cosine)


def test_a_name_with_an_old_suffix_is_taken_as_given(tmp_path):
    save_checkpoint(tmp_path / "run.npz.safetensors", build(), model_name="tiny", epoch=0)
    for old in ("run.npz", "run.json"):
        with pytest.raises(FileNotFoundError, match=rf"^checkpoint file '.*{old}' does not "
                                                    rf"exist\.$"):
            load_checkpoint(tmp_path / old)


def test_version_1_arrays_are_counted_together_against_the_file_s_size(tmp_path):
    # each array alone fits in the file's bytes, the two together do not: a zip bomb in parts
    arrays = {"format/version": np.array(1),
              "model/a": np.random.default_rng(0).random(1000).astype(np.float32),
              "model/b": np.zeros(1000, np.float32)}                  # compresses to ~30 bytes
    np.savez_compressed(tmp_path / "model.npz", **arrays)
    size = (tmp_path / "model.npz").stat().st_size
    assert 4000 < size < 8000
    _v1_metadata_beside(tmp_path / "model.npz")
    _refused(tmp_path / "model.npz", rf"declares arrays of 8,\d\d\d bytes \(2,001 elements\) "
                                     rf"in a file of {size:,} bytes\.$")


def test_a_model_state_key_in_the_optimizer_s_namespace_is_refused(tmp_path):
    class Odd(nn.Linear):                  # its own state_dict, with a key like the optimizer's
        def state_dict(self):
            return {"optimizer/0/momentum": np.ones(2, np.float32)}

    with pytest.raises(ValueError, match=r"^save_checkpoint: the model's state key "
                                         r"'optimizer/0/momentum' collides with the optimizer's "
                                         r"'optimizer/' prefix\.$"):
        save_checkpoint(tmp_path / "m", Odd(2, 2), model_name="odd", epoch=0)
    assert _files(tmp_path) == []


def test_an_eight_byte_foreign_file_is_named_foreign(tmp_path):
    (tmp_path / "tiny.gif").write_bytes(b"GIF89a\0\0")             # as long as a header size
    _refused(tmp_path / "tiny.gif", r"^expected a checkpoint file \(\.safetensors\), received "
                                    r"'.*tiny.gif'\.$")


def test_the_description_records_when_it_was_saved(tmp_path):
    import datetime

    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    path = save_checkpoint(tmp_path / "m", build(), model_name="tiny", epoch=0)
    saved_at = datetime.datetime.strptime(_description(path)["saved_at"], "%Y-%m-%dT%H:%M:%S%z")
    assert before <= saved_at <= datetime.datetime.now(datetime.timezone.utc)


def test_the_whole_description_is_kept(tmp_path):
    path = save_checkpoint(tmp_path / "m", build(), model_name="tiny", epoch=0)
    assert load_checkpoint(path).metadata == _description(path)


def test_a_version_1_description_over_16_mib_is_refused_unread(tmp_path):
    (tmp_path / "model.npz").write_bytes((V1 / "model.npz").read_bytes())
    with open(tmp_path / "model.json", "wb") as file:
        file.truncate(17 << 20)                                     # sparse
    _refused(tmp_path / "model.npz", r"^checkpoint '.*model.npz' has a description of "
                                     r"17,825,792 bytes; at most 16,777,216 are accepted\.$")
