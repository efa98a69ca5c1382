"""tools.summary: the lecture's LeNet table row by row, rendering, errors, and no side effects."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cnnlab
from cnnlab import models, nn
from cnnlab.tools import Summary, summary

# The lecture's table (activation shapes H×W×C): layer, shape, size, parameters.
LECTURE_LENET = [
    ("Conv2d", (28, 28, 8), 6272, 608),
    ("MaxPool2d", (14, 14, 8), 1568, 0),
    ("Conv2d", (10, 10, 16), 1600, 3216),
    ("MaxPool2d", (5, 5, 16), 400, 0),
    ("Linear", (120,), 120, 48120),
    ("Linear", (84,), 84, 10164),
    ("Linear", (10,), 10, 850),
]


@pytest.fixture
def lecture_lenet() -> nn.Module:
    return models.lenet5(in_channels=3, input_size=32, channels=(8, 16))


def _channels_last(shape):
    return shape if len(shape) == 1 else (*shape[1:], shape[0])


def test_lenet_rows_match_the_lecture_table(lecture_lenet):
    table = summary(lecture_lenet, (3, 32, 32))
    assert isinstance(table, Summary)
    assert table.input_shape == (3, 32, 32) and table.batch_size == 1
    assert table.input_size == 3072
    shown = [(r.layer.split("(")[0], _channels_last(r.output_shape), r.activation_size, r.params)
             for r in table.rows if not r.layer.startswith(("ReLU", "Flatten"))]
    assert shown == LECTURE_LENET
    assert table.total_params == table.trainable_params == 62958
    assert sum(r.params for r in table.rows) == 62958


def test_every_leaf_is_a_row_named_like_its_state_dict_key(lecture_lenet):
    table = summary(lecture_lenet, (3, 32, 32))
    assert [r.name for r in table.rows] == [str(i) for i in range(12)]
    assert [r.layer for r in table.rows] == [
        "Conv2d(3→8, 5×5)", "ReLU", "MaxPool2d(2×2)", "Conv2d(8→16, 5×5)", "ReLU",
        "MaxPool2d(2×2)", "Flatten", "Linear(400→120)", "ReLU", "Linear(120→84)", "ReLU",
        "Linear(84→10)"]
    assert table.rows[6].output_shape == (400,)
    assert table.rows[0].output_shape == (8, 28, 28)        # PyTorch order in .rows


def test_str_renders_the_lecture_table(lecture_lenet):
    lines = str(summary(lecture_lenet, (3, 32, 32))).splitlines()
    assert lines[0].split() == ["Layer", "Activation", "shape", "Activation", "size", "#",
                                "Parameters", "MACs", "Padding", "Receptive", "field"]
    assert set(lines[1]) == {"="}
    assert lines[2].split() == ["Input", "32×32×3", "3,072", "0", "0", "1×1"]
    # MACs = output values × inputs per output: 28·28·8 × 3·5·5, 10·10·16 × 8·5·5, 400·120
    assert lines[3].split() == ["0", "Conv2d(3→8,", "5×5)", "28×28×8", "6,272", "608",
                                "470,400", "0+0,", "0+0", "5×5"]
    assert lines[4].split()[-1] == "5×5"                                    # ReLU keeps it
    assert lines[5].split()[-2:] == ["6×6", "/2"]                           # pool 2, stride 2
    assert lines[6].split() == ["3", "Conv2d(8→16,", "5×5)", "10×10×16", "1,600", "3,216",
                                "320,000", "0+0,", "0+0", "14×14", "/2"]
    assert lines[8].split()[-2:] == ["16×16", "/4"]
    assert lines[10].split() == ["7", "Linear(400→120)", "120", "120", "48,120", "48,000",
                                 "all"]
    assert lines[12].split() == ["9", "Linear(120→84)", "84", "84", "10,164", "10,080", "all"]
    assert lines[-4:] == ["Total parameters: 62,958", "Trainable parameters: 62,958",
                          "Non-trainable parameters: 0",
                          "Multiply-accumulates per sample: 849,320"]
    column = lines[0].index("Receptive field")                  # aligned columns
    assert all(line[column - 3:column] == "   " and line[column] != " " for line in lines[2:14])


def test_nested_names_and_batch_shape():
    table = summary(models.small_vgg(), (4, 1, 28, 28))
    assert table.batch_size == 4 and table.input_shape == (1, 28, 28)
    names = [r.name for r in table.rows]
    assert names[:2] == ["features.0", "features.1"] and names[-1] == "classifier.4"
    rows = {r.name: r for r in table.rows}
    assert rows["features.0"].layer == "Conv2d(1→32, 3×3, padding 1)"
    assert rows["features.1"].params == 64                  # BatchNorm: γ and β, not buffers
    assert rows["features.13"].output_shape == (64, 7, 7)
    assert rows["classifier.1"].params == 3136 * 256 + 256
    assert rows["classifier.3"].layer == "Dropout(p=0.5)"
    assert table.total_params == 870826 == sum(r.params for r in table.rows)


def test_resnet_rows_in_execution_order_with_shared_relu_counted_once():
    table = summary(models.small_resnet(), (1, 28, 28))
    names = [r.name for r in table.rows]
    block = [n for n in names if n.startswith("layer2.0.")]
    assert block == ["layer2.0.conv1", "layer2.0.bn1", "layer2.0.relu", "layer2.0.conv2",
                     "layer2.0.bn2", "layer2.0.downsample.0", "layer2.0.downsample.1",
                     "layer2.0.relu"]
    rows = {r.name: r for r in table.rows}
    assert rows["layer2.0.conv1"].layer == "Conv2d(32→64, 3×3, stride 2, padding 1)"
    assert rows["layer3.0.downsample.0"].output_shape == (128, 7, 7)
    assert rows["avgpool"].output_shape == (128, 1, 1)
    assert table.total_params == 308074 == sum(r.params for r in table.rows)


def test_lecture_convnet_shapes():
    table = summary(models.lecture_convnet(), (3, 64, 64))
    convs = [r for r in table.rows if r.layer.startswith("Conv2d")]
    assert [_channels_last(r.output_shape) for r in convs] == [(62, 62, 8), (29, 29, 16),
                                                               (12, 12, 32)]
    assert [r.params for r in convs] == [224, 3216, 25120]


def test_to_dict_is_json_ready(lecture_lenet):
    data = json.loads(json.dumps(summary(lecture_lenet, (3, 32, 32)).to_dict()))
    assert data["total_params"] == 62958 and data["input_shape"] == [3, 32, 32]
    assert data["rows"][0] == {"name": "0", "layer": "Conv2d(3→8, 5×5)",
                               "output_shape": [8, 28, 28], "activation_size": 6272,
                               "params": 608, "macs": 470400, "padding": [[0, 0], [0, 0]],
                               "receptive_field": {"size": [5, 5], "jump": [1, 1],
                                                   "start": [2, 2]}}
    assert data["rows"][6]["receptive_field"] is None and data["total_macs"] == 849320


def test_model_is_left_unchanged():
    cnnlab.manual_seed(0)
    net = models.small_vgg(input_size=8)
    before = net.state_dict()
    net.classifier.train()
    net.features.eval()
    summary(net, (1, 8, 8))
    after = net.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)     # BN stats untouched
    assert all(not m.training for m in net.features.modules())
    assert all(m.training for m in net.classifier.modules())
    assert all("forward" not in m.__dict__ for m in net.modules())


def test_float64_model_and_frozen_parameters():
    net = models.lenet5().double()
    net[0].weight.requires_grad = False
    table = summary(net, (1, 28, 28))
    assert table.total_params == 61706
    assert table.trainable_params == 61706 - 150
    assert "Non-trainable parameters: 150\n" in str(table)


def test_too_small_input_names_the_layer_and_the_shape_it_received(lecture_lenet):
    with pytest.raises(ValueError, match=r"^layer 3 \(Conv2d\(8→16, 5×5\)\) received input of "
                                         r"shape \(1, 8, 4, 4\): .*larger than the padded input"):
        summary(lecture_lenet, (3, 12, 12))
    with pytest.raises(ValueError, match=r"^layer 7 \(Linear\(400→120\)\) received input of "
                                         r"shape \(1, 16\): .*expected input with 400 features"):
        summary(lecture_lenet, (3, 16, 16))
    with pytest.raises(ValueError, match=r"^layer features\.13 \(MaxPool2d\(2×2\)\) received "
                                         r"input of shape \(1, 64, 1, 1\)"):
        summary(models.small_vgg(input_size=4), (1, 3, 3))
    assert all("forward" not in m.__dict__ for m in lecture_lenet.modules())


def test_wrong_channels_and_custom_module_errors():
    with pytest.raises(ValueError, match=r"^layer 0 \(Conv2d\(3→6, 5×5\)\) received input of "
                                         r"shape \(1, 1, 32, 32\): .*expected input with 3"):
        summary(models.lenet5(in_channels=3, input_size=32), (1, 32, 32))
    block = models.BasicBlock(4, 8, stride=2)
    with pytest.raises(ValueError, match=r"^layer conv1 \(Conv2d\(4→8, 3×3, stride 2, padding "
                                         r"1\)\) received input of shape \(1, 2, 5, 5\)"):
        summary(block, (2, 5, 5))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"input_shape must be \(C, H, W\) or \(N, C, H, W\) "
                                         r"with positive ints, received \(28, 28\)\."):
        summary(models.lenet5(), (28, 28))
    with pytest.raises(ValueError, match="received"):
        summary(models.lenet5(), (1, 0, 28))
    with pytest.raises(TypeError, match="summary expects a cnnlab nn.Module, received list"):
        summary([nn.ReLU()], (1, 28, 28))


def test_a_leaf_model_and_other_layers():
    table = summary(nn.Conv2d(2, 4, 3, stride=2, dilation=2, groups=2), (2, 9, 9))
    assert table.rows[0].name == ""
    assert table.rows[0].layer == "Conv2d(2→4, 3×3, stride 2, dilation 2, groups 2)"
    assert table.rows[0].output_shape == (4, 3, 3)
    net = nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1), nn.LeakyReLU(0.2),
                        nn.AdaptiveAvgPool2d((2, 3)), nn.Flatten(), nn.BatchNorm1d(24))
    layers = [r.layer for r in summary(net, (4, 9, 9)).rows]
    assert layers == ["AvgPool2d(3×3, stride 2, padding 1)", "LeakyReLU(negative_slope=0.2)",
                      "AdaptiveAvgPool2d(2×3)", "Flatten", "BatchNorm1d(24)"]
