"""The ``cnnlab`` command: success paths on the embedded digits, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_cli

from cnnlab import models
from cnnlab.cli import main
from cnnlab.train import load_checkpoint, restore, save_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One quick epoch of LeNet-5 on digits (shared by the tests below)."""
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--epochs", "1", "--quiet", "--out", str(out)])
    assert code == 0
    return out


def test_train_writes_checkpoint_history_and_metrics(trained):
    for name in ("model.safetensors", "best.safetensors", "history.json", "metrics.json"):
        assert (trained / name).exists(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert {"test_accuracy", "test_loss", "train_seconds"} <= set(metrics)
    assert metrics["test_accuracy"] > 0.85            # one epoch of LeNet-5 on 8,000 digits
    history = json.loads((trained / "history.json").read_text())
    assert len(history["epochs"]) == 1 and "val_accuracy" in history["epochs"][0]
    checkpoint = load_checkpoint(trained / "model.safetensors")
    assert checkpoint.model_name == "lenet5"
    assert checkpoint.metadata["model"]["parameters"] == 61706


def test_evaluate_prints_accuracy_and_confusion_matrix(trained, capsys):
    code, out, _ = run_cli(capsys, "evaluate", str(trained / "model.safetensors"))
    metrics = json.loads((trained / "metrics.json").read_text())
    assert code == 0
    assert f"accuracy {metrics['test_accuracy']:.4f}" in out
    assert "confusion matrix" in out and "per-class accuracy" in out


def test_checkpoint_keeps_the_input_standardisation(trained, tmp_path, capsys):
    from cnnlab.data import load_dataset

    train, _ = load_dataset("digits")
    checkpoint = load_checkpoint(trained / "model.safetensors")
    stats = checkpoint.config["normalize"]
    np.testing.assert_allclose(stats["mean"], [train.images.mean(dtype=np.float64)], rtol=1e-12)
    np.testing.assert_allclose(stats["std"], [train.images.std(dtype=np.float64)], rtol=1e-12)
    # A hand-edited, unusable entry is a user mistake, reported in one line.
    save_checkpoint(tmp_path / "model", restore(checkpoint, models.get), model_name="lenet5",
                    model_args=checkpoint.model_args, epoch=checkpoint.epoch,
                    config={**checkpoint.config, "normalize": {"mean": [0.1]}})
    code, out, err = run_cli(capsys, "evaluate", str(tmp_path / "model.safetensors"))
    assert code == 2 and "unreadable 'normalize' entry" in err and err.count("\n") == 1


def test_predict_reads_an_image_file(trained, tmp_path, capsys):
    from PIL import Image

    from cnnlab.data import load_dataset

    _, test = load_dataset("digits")
    index = int(np.flatnonzero(test.labels == 0)[0])
    Image.fromarray((test.images[index, 0] * 255).astype(np.uint8)).save(tmp_path / "zero.png")
    code, out, _ = run_cli(capsys, "predict", str(trained / "model.safetensors"),
                           str(tmp_path / "zero.png"))
    assert code == 0
    assert out.startswith(f"{tmp_path / 'zero.png'}: 0 ")


def test_resume_continues_exactly(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    constant = ["--schedule", "constant", "--quiet"]     # more epochs: a constant rate
    assert main(["train", "--epochs", "2", *constant, "--out", str(straight)]) == 0
    assert main(["train", "--epochs", "1", *constant, "--out", str(resumed)]) == 0
    assert main(["train", "--epochs", "2", "--quiet", "--out", str(resumed),
                 "--resume", str(resumed / "model.safetensors")]) == 0
    a = load_checkpoint(straight / "model.safetensors").model_state
    b = load_checkpoint(resumed / "model.safetensors").model_state
    assert a and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_cosine_run_interrupted_and_resumed_equals_a_straight_one(tmp_path, monkeypatch,
                                                                    capsys):
    from cnnlab.train import ModelCheckpoint
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    cosine = ["--epochs", "3", "--schedule", "cosine", "--quiet"]
    assert main(["train", *cosine, "--out", str(straight)]) == 0
    lrs = [e["lr"] for e in json.loads((straight / "history.json").read_text())["epochs"]]
    assert lrs == pytest.approx([2e-3, 1.5e-3, 0.5e-3])        # 2e-3 · (1 + cos(πt/3)) / 2

    original = ModelCheckpoint.on_epoch_end

    def stop_after_first_epoch(self, epoch, logs):
        original(self, epoch, logs)
        raise KeyboardInterrupt
    monkeypatch.setattr(ModelCheckpoint, "on_epoch_end", stop_after_first_epoch)
    assert main(["train", *cosine, "--out", str(resumed)]) == 130
    monkeypatch.undo()
    code, _, err = run_cli(capsys, "train", "--epochs", "4", "--schedule", "cosine", "--quiet",
                       "--out", str(resumed), "--resume", str(resumed / "model.safetensors"))
    assert code == 2 and "follows a cosine schedule over 3 epochs; resume it with --epochs 3 " \
                         "(received 4)" in err
    code, _, err = run_cli(capsys, "train", "--epochs", "3", "--quiet", "--out", str(resumed),
                       "--schedule", "constant", "--resume", str(resumed / "model.safetensors"))
    assert code == 2 and "was trained with --schedule cosine; resume it with the same " \
                         "schedule (received --schedule constant)" in err
    assert main(["train", "--resume", str(resumed / "model.safetensors")]) == 0   # as saved
    a = load_checkpoint(straight / "model.safetensors").model_state
    b = load_checkpoint(resumed / "model.safetensors").model_state
    assert a and all(np.array_equal(a[k], b[k]) for k in a)


def test_predict_with_the_image_first_says_what_a_checkpoint_is(tmp_path, capsys):
    image = tmp_path / "digit.png"
    image.write_bytes(b"not really a png")
    code, _, err = run_cli(capsys, "predict", str(image), str(image))
    assert code == 2
    assert f"expected a checkpoint file (.safetensors), received '{image}'" in err


def test_summary_prints_the_lecture_table(capsys):
    code, out, _ = run_cli(capsys, "summary", "lenet5", "--in-channels", "3", "--input-size", "32",
                       "--channels", "8,16")
    assert code == 0
    assert "62,958" in out and "28×28×8" in out


@pytest.mark.parametrize("argv,message", [
    (["train", "--model", "nope"], "unknown model 'nope'"),
    (["train", "--data", "nope"], "unknown dataset 'nope'"),
    (["train", "--epochs", "0"], "--epochs: expected a positive integer, received 0"),
    (["train", "--lr", "abc"], "--lr: expected a positive number, received 'abc'"),
    (["evaluate", "/nonexistent/model.safetensors"], "does not exist"),
    (["summary", "lenet5", "--input-size", "8"], "input_size must be at least 16"),
    (["summary", "lenet5", "--channels", "6,x"], "expected comma-separated channel counts"),
])
def test_mistakes_exit_2_with_one_line(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "cnnlab", "--version"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("cnnlab ")


@pytest.mark.slow
def test_default_train_reaches_97_percent_on_digits(tmp_path):
    """The README's first command: ``cnnlab train`` with its defaults, offline."""
    assert main(["train", "--quiet", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97
