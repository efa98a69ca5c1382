"""Pictures: each one is written, shows what it should, and mistakes get one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cnnlab
from cnnlab import models
from cnnlab.cli import main

pytest.importorskip("matplotlib")
from cnnlab.tools import viz  # noqa: E402


@pytest.fixture(scope="module")
def lenet():
    cnnlab.manual_seed(0)
    return models.lenet5()


def test_filter_bank_shows_every_kernel_on_one_symmetric_scale(lenet, tmp_path):
    fig = viz.filter_bank(lenet, out=tmp_path / "bank.png")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 6                                        # 6 filters × 1 channel
    limit = float(np.abs(lenet[0].weight.data).max())
    assert {im.get_clim() for im in images} == {(-limit, limit)}
    np.testing.assert_array_equal(images[2].get_array(), lenet[0].weight.data[2, 0])
    assert (tmp_path / "bank.png").stat().st_size > 1000
    fig = viz.filter_bank(lenet, layer="3")
    assert len([ax for ax in fig.axes if ax.images]) == 16 * 6
    assert "16 filters of 5×5 × 6 channels" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="layer '1' is not a convolution of this model; its "
                                         "convolutions: 0, 3"):
        viz.filter_bank(lenet, layer="1")


def test_feature_maps_show_each_layer_of_one_image(lenet, tmp_path):
    x = np.random.default_rng(0).random((1, 28, 28)).astype(np.float32)
    outputs = viz.activations(lenet, x)
    assert [name for name, _, _ in outputs][:6] == ["0", "1", "2", "3", "4", "5"]
    np.testing.assert_allclose(outputs[-1][2], lenet(x[None]).data, rtol=1e-6)
    fig = viz.feature_maps(lenet, x, tmp_path / "maps.png", channels=4)
    rows = {ax.get_subplotspec().rowspan.start for ax in fig.axes if ax.images}
    assert len(rows) == 7                                           # input + 6 spatial layers
    assert len([ax for ax in fig.axes if ax.images]) == 1 + 6 * 4
    assert (tmp_path / "maps.png").exists()


def test_training_curves_and_confusion_matrix(tmp_path):
    history = {"epochs": [{"epoch": e, "loss": 1 / e, "accuracy": 1 - 0.1 / e,
                           "val_loss": 1.2 / e, "val_accuracy": 0.9 - 0.1 / e}
                          for e in (1, 2, 3)]}
    (tmp_path / "history.json").write_text(json.dumps(history))
    fig = viz.training_curves(tmp_path, tmp_path / "curves.png")
    loss, accuracy = fig.axes
    assert [line.get_label() for line in loss.lines] == ["training", "validation"]
    assert list(accuracy.lines[1].get_ydata()) == [0.8, 0.85, 0.9 - 0.1 / 3]
    assert "best validation accuracy 0.8667 (epoch 3)" in accuracy.get_title()
    fig = viz.confusion_matrix([[5, 1], [0, 4]], ["cat", "dog"], tmp_path / "confusion.png")
    assert [t.get_text() for t in fig.axes[0].texts] == ["5", "1", "0", "4"]
    assert "accuracy 0.9000" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="expected a square matrix with one row per class"):
        viz.confusion_matrix([[1, 2]], ["a", "b"])
    with pytest.raises(ValueError, match="cannot read a training history"):
        viz.training_curves(tmp_path / "missing.json")


@pytest.mark.slow
def test_viz_command_on_a_trained_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--quiet", "--out", str(run)]) == 0
    from PIL import Image
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    for argv in (["filters", str(run / "model.safetensors")],
                 ["features", str(run / "model.safetensors"), str(tmp_path / "blank.png")],
                 ["curves", str(run)], ["confusion", str(run / "model.safetensors")]):
        out = tmp_path / f"{argv[0]}.png"
        capsys.readouterr()
        assert main(["viz", *argv, "--out", str(out)]) == 0
        assert out.stat().st_size > 1000 and f"wrote {out}" in capsys.readouterr().out
    assert main(["viz", "filters", str(run / "model.safetensors"), "--layer", "9",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "layer '9' is not a convolution" in capsys.readouterr().err
