"""Rich display in notebooks: every ``_repr_html_`` shows the right numbers, marks the right cells.

These call the display methods directly (as Jupyter does); no kernel is started. The notebooks
themselves run in tests/test_notebooks.py.
"""

from __future__ import annotations

import base64
import html as html_module
import io
import re

import numpy as np
import pytest
from PIL import Image

import cnnlab
from cnnlab import _display, models, nn
from cnnlab.data import ArrayDataset
from cnnlab.tools import explain, receptive_field, summary
from cnnlab.tools._explain_html import _WINDOW, _WRONG
from cnnlab.train import History
from cnnlab.train.progress import EpochProgress


def _cells(html: str) -> list[str]:
    """The text of every table cell, tags removed."""
    return [html_module.unescape(re.sub(r"<[^>]+>", "", c))
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", html)]


def _pngs(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(d)))
            for d in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


# ----------------------------------------------------------------------------- helpers
def test_table_escapes_cells_and_aligns_numbers_right():
    html = _display.table(["name", "n"], [["<b>x</b>", "1,234"]], right=(False, True))
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert '<td style="text-align:right">1,234</td>' in html


def test_images_become_uint8_pngs_of_the_right_size():
    assert _display.to_uint8(np.array([[0.0, 1.0]])).tolist() == [[0, 255]]     # [0, 1] scaled
    assert _display.to_uint8(np.array([[-2.0, 0.0, 2.0]])).tolist() == [[0, 128, 255]]
    assert _display.to_uint8(np.zeros((1, 3, 4))).shape == (3, 4)             # (C, H, W) grey
    image = Image.open(io.BytesIO(_display.png_bytes(np.eye(3), scale=4)))
    assert image.size == (12, 12)
    with pytest.raises(ValueError, match="expected an image"):
        _display.to_uint8(np.zeros((2, 2, 2, 2)))


# ----------------------------------------------------------------------------- summary, fields
def test_summary_html_has_every_layer_and_the_totals():
    table = summary(models.lenet5(), (1, 28, 28))
    html = table._repr_html_()
    cells = _cells(html)
    for row in table.rows:
        assert row.layer in cells
    assert "4,704" in cells and "117,600" in cells and "2+2, 2+2" in cells
    assert "Total parameters: 61,706" in html
    assert "Multiply-accumulates per sample: 416,520" in html
    assert cells.count("all") == 6                     # flatten and the fully connected layers
    assert str(table).splitlines()[2].startswith("Input")   # the text table is unchanged


def test_receptive_field_is_still_a_list_and_shows_as_a_table():
    two = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Conv2d(1, 1, 3))
    rows = receptive_field(two, (1, 9, 9))
    assert isinstance(rows, list) and [r.size for r in rows] == [(3, 3), (3, 3), (5, 5)]
    cells = _cells(rows._repr_html_())
    assert cells[5:10] == ["0", "Conv2d(1→1, 3×3)", "3×3", "1×1", "1×1"]
    assert cells[-3:] == ["5×5", "1×1", "2×2"]


# ----------------------------------------------------------------------------- explain
EDGE = "3 0 1 2 7 4; 1 5 8 9 3 1; 2 7 2 5 1 3; 0 1 3 1 7 8; 4 2 1 6 2 8; 2 4 5 2 3 9"
VERTICAL = "1 0 -1; 1 0 -1; 1 0 -1"
EDGE_OUT = [[-5, -4, 0, 8], [-10, -2, 2, 3], [0, -2, -4, -7], [-3, -2, -3, -16]]


def test_conv_html_highlights_the_window_of_the_first_entry():
    e = explain.conv2d(EDGE, VERTICAL)
    text = e.text
    html = e._repr_html_()
    assert e.text == text                                 # drawing never changes the text
    # the 3×3 window in the input, the 3×3 kernel and the one output entry
    assert html.count(_WINDOW) == 9 + 9 + 1
    cells = _cells(html)
    assert cells[-16:] == [str(v) for row in EDGE_OUT for v in row]
    assert "Z[0,0] = 3*1 + 0*0 + 1*(-1)" in html          # the worked sums are kept
    assert "Output Z (4×4)" not in html                   # the grid replaces the text matrix


def test_conv_html_marks_each_wrong_entry_with_the_correct_value():
    answer = np.array(EDGE_OUT, dtype=float)
    answer[0, 3], answer[2, 1] = 9, 2
    e = explain.conv2d(EDGE, VERTICAL, check=answer)
    html = e._repr_html_()
    assert len(e.wrong) == 2 and html.count(_WRONG) == 2
    assert "<s>9</s> 8" in html and "<s>2</s> -2" in html
    assert "Check: 14 of 16 entries right" in html
    assert "Z[0,3] (the first wrong entry)" in html
    # the highlighted window is the first wrong entry's: rows 0..2, columns 3..5 of the input
    first_rows = re.findall(r"<tr>(.*?)</tr>", html)[:3]
    for row in first_rows:
        styles = re.findall(r'<td style="([^"]*)"', row)
        assert [_WINDOW in s for s in styles] == [False] * 3 + [True] * 3


def test_conv_html_greys_the_padding_and_keeps_the_gradients():
    e = explain.conv2d("1 2 0; 3 -1 2; 0 1 4", "1 -2; 3 0", bias=1, padding=1,
                       grad=np.ones((4, 4)))
    html = e._repr_html_()
    assert html.count("color:#999;background:#f2f2f2") == 5 * 5 - 3 * 3 - 3   # 3 in the window
    assert "dL/dB = Σ dL/dZ" in html and "Gradients (given dL/dZ)" in html


def test_pool_and_relu_html():
    e = explain.pool("1 3 2 1; 2 9 1 1; 1 3 2 3; 5 6 1 2", 2, check="9 2; 5 3")
    html = e._repr_html_()
    assert html.count(_WRONG) == 1 and "<s>5</s> 6" in html
    assert "Z[1,0] = max(1, 3, 5, 6) = 6" in html
    r = explain.relu("1 -2; -3 4")._repr_html_()
    assert r.count("background:#dbe8fb") == 2 and "X[1,0] = max(0, -3) = 0" in r


def test_other_explanations_show_their_text_as_html():
    e = explain.softmax("5 6 1 2", target=1)
    html = e._repr_html_()
    assert "p1 = 403.4288 / 561.9493 = 0.717910" in html and "<b>Probabilities</b>" in html
    assert "refused by PyTorch for stride 2" in explain.padding(7, 3, 2)._repr_html_()


# ----------------------------------------------------------------------------- history, data
EPOCHS = [{"epoch": 1, "loss": 0.9, "accuracy": 0.7, "val_loss": 0.6, "val_accuracy": 0.8,
           "lr": 0.1, "seconds": 1.5, "images_per_s": 1234.0},
          {"epoch": 2, "loss": 0.4, "accuracy": 0.9, "val_loss": 0.35, "val_accuracy": 0.9,
           "lr": 0.1, "seconds": 1.4, "images_per_s": 1300.0}]


def test_history_html_is_a_table_and_a_plot(monkeypatch):
    pytest.importorskip("matplotlib")
    html = History(EPOCHS)._repr_html_()
    cells = _cells(html)
    assert cells[:8] == ["epoch", "loss", "accuracy", "val loss", "val accuracy", "lr",
                         "seconds", "images/s"]
    assert cells[8:16] == ["1", "0.9000", "0.7000", "0.6000", "0.8000", "0.1", "1.5", "1,234"]
    assert len(_pngs(html)) == 1
    monkeypatch.setattr(_display, "matplotlib_available", lambda: False)
    assert "<img" not in History(EPOCHS)._repr_html_()
    assert "<td" not in History([])._repr_html_() and "0 epochs" in History([])._repr_html_()


def test_dataset_html_shows_two_images_of_each_class_with_labels():
    images = np.zeros((12, 1, 4, 4), np.uint8)
    images[:, 0, 0, 0] = np.arange(12)
    labels = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    html = ArrayDataset(images, labels, ["a", "b", "c"], "toy")._repr_html_()
    captions = re.findall(r"<figcaption[^>]*>(.*?)</figcaption>", html)
    assert captions == ["a (#0)", "b (#1)", "c (#2)", "a (#3)", "b (#4)", "c (#5)"]
    pngs = _pngs(html)
    assert len(pngs) == 6 and pngs[0].size[0] >= 4
    assert "ArrayDataset(&#x27;toy&#x27;, 12 images" in html


def test_dataset_html_shows_the_first_10_of_11_classes_and_says_so():
    labels = np.arange(11)
    images = np.zeros((11, 1, 4, 4), np.uint8)
    html = ArrayDataset(images, labels, [f"c{i}" for i in range(11)], "many")._repr_html_()
    captions = re.findall(r"<figcaption[^>]*>(.*?)</figcaption>", html)
    assert captions == [f"c{i} (#{i})" for i in range(10)]
    assert "the first two images of each class (the first 10 classes)" in html
    few = ArrayDataset(images[:3], labels[:3], ["a", "b", "c"], "few")._repr_html_()
    assert "the first two images of each class</b>" in few


# ----------------------------------------------------------------------------- notebook-only paths
class _Handle:
    def __init__(self, shown: list[str]) -> None:
        self.shown = shown

    def update(self, data, raw=False):
        self.shown.append(data["text/plain"])


def test_progress_in_a_notebook_updates_one_output_per_epoch(monkeypatch):
    pytest.importorskip("IPython")
    displays: list[list[str]] = []

    def display(data, raw=False, display_id=False):
        displays.append([data["text/plain"]])
        return _Handle(displays[-1])

    monkeypatch.setattr(_display, "in_notebook", lambda: True)
    monkeypatch.setattr("IPython.display.display", display)
    monkeypatch.setattr("cnnlab.train.progress._REDRAW_SECONDS", 0.0)
    for epoch in (1, 2):
        bar = EpochProgress(epoch, 2, steps=3)
        for step in (1, 2, 3):
            bar.update(step, loss=0.5, accuracy=0.75, images=32 * step)
        bar.close({"loss": 0.5, "accuracy": 0.75, "seconds": 2.0})
    assert len(displays) == 2                        # one output per epoch, updated in place
    assert all(len(shown) == 4 for shown in displays)
    assert "3/3" in displays[0][2] and displays[1][-1] == "epoch 2/2  loss 0.5000  accuracy " \
                                                           "0.7500  2.0 s"
    assert not EpochProgress(1, 1, steps=1, enabled=False).enabled


def test_figures_in_a_notebook_are_closed_so_they_show_once(monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    from cnnlab.tools import viz

    monkeypatch.setattr(_display, "in_notebook", lambda: True)
    cnnlab.manual_seed(0)
    before = set(plt.get_fignums())
    fig = viz.filter_bank(models.lenet5())
    assert fig.axes and set(plt.get_fignums()) == before


def test_padding_schemes_are_a_table_and_long_sums_fold():
    cells = _cells(explain.padding(6, 3, stride=2)._repr_html_())
    assert cells[4:8] == ["TensorFlow 'SAME'", "0", "1", "3"]
    html = explain.conv2d(np.arange(64.0).reshape(8, 8), VERTICAL)._repr_html_()
    assert "<details><summary><b>Worked sums" in html and "(36 lines)" in html
    assert html.count("Check:") == 0
    checked = explain.conv2d(EDGE, VERTICAL, check=EDGE_OUT)._repr_html_()
    assert checked.count("Check: 16 of 16 entries right") == 1      # the note, not the text too


def test_outside_a_kernel_nothing_counts_as_a_notebook():
    assert _display.in_notebook() is False                  # pytest: no IPython kernel
    assert not EpochProgress(1, 1, steps=1, stream=io.StringIO()).enabled


def test_ipython_plain_text_is_the_printed_text():
    pretty = pytest.importorskip("IPython.lib.pretty")
    e = explain.conv2d(EDGE, VERTICAL)
    table = summary(models.lenet5(), (1, 28, 28))
    assert pretty.pretty(e) == e.text and pretty.pretty(table) == str(table)
