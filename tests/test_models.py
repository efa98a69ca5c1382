"""Model builders and the registry: parameter counts, shapes, torch equivalence, clear errors."""

from __future__ import annotations

import inspect
from collections import OrderedDict

import numpy as np
import pytest

import cnnlab
from cnnlab import functional as F
from cnnlab import models

# --------------------------------------------------------------------------- helpers


def _randomize(model: cnnlab.nn.Module, seed: int = 0) -> None:
    """Random weights and BatchNorm statistics (defaults 1 and 0 would hide mistakes)."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = value
        elif key.endswith("running_var") or (key.endswith("weight") and value.ndim == 1):
            state[key] = rng.uniform(0.5, 1.5, value.shape)
        else:
            state[key] = rng.normal(0.0, 0.3, value.shape)
    model.load_state_dict(state)


def _copy_to_torch(ours: cnnlab.nn.Module, theirs) -> None:
    """Check that the state_dicts have the same keys, in order, and shapes; copy ours over."""
    import torch

    mine = ours.state_dict()
    reference = theirs.state_dict()
    assert [(k, v.shape) for k, v in mine.items()] == \
        [(k, tuple(v.shape)) for k, v in reference.items()]
    theirs.load_state_dict({k: torch.tensor(v) for k, v in mine.items()})


def _torch_vgg(tnn, in_channels, num_classes, input_size, channels=(32, 64), hidden=256):
    layers, c_in, size = [], in_channels, input_size
    for c_out in channels:
        for _ in range(2):
            layers += [tnn.Conv2d(c_in, c_out, 3, padding=1, bias=False), tnn.BatchNorm2d(c_out),
                       tnn.ReLU()]
            c_in = c_out
        layers.append(tnn.MaxPool2d(2))
        size //= 2
    classifier = tnn.Sequential(tnn.Flatten(), tnn.Linear(c_in * size * size, hidden), tnn.ReLU(),
                                tnn.Dropout(0.5), tnn.Linear(hidden, num_classes))
    return tnn.Sequential(OrderedDict(features=tnn.Sequential(*layers), classifier=classifier))


def _torch_resnet(torch, in_channels, num_classes, channels=(32, 64, 128), blocks=1):
    tnn = torch.nn

    class Block(tnn.Module):                    # torchvision's BasicBlock, written out
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(c_out)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(c_out)
            self.downsample = None
            if stride != 1 or c_in != c_out:
                self.downsample = tnn.Sequential(tnn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(c_out))

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    layers = OrderedDict(conv1=tnn.Conv2d(in_channels, channels[0], 3, 1, 1, bias=False),
                         bn1=tnn.BatchNorm2d(channels[0]), relu=tnn.ReLU())
    c_in = channels[0]
    for i, c_out in enumerate(channels):
        stage = [Block(c_in, c_out, 1 if i == 0 else 2)]
        stage += [Block(c_out, c_out, 1) for _ in range(blocks - 1)]
        layers[f"layer{i + 1}"] = tnn.Sequential(*stage)
        c_in = c_out
    layers.update(avgpool=tnn.AdaptiveAvgPool2d(1), flatten=tnn.Flatten(),
                  fc=tnn.Linear(c_in, num_classes))
    return tnn.Sequential(layers)


# --------------------------------------------------------------------------- parameter counts

def test_lenet5_lecture_table_network_through_the_registry():
    net = models.get("lenet5", in_channels=3, input_size=32, channels=(8, 16))
    assert net.num_parameters() == 62958


def test_small_vgg_parameter_count_is_in_the_planned_range():
    net = models.small_vgg()
    # convs 288 + 9,216 + 18,432 + 36,864, BN 2·(32+32+64+64), FC 3,136·256+256, 256·10+10
    assert net.num_parameters() == 870826
    assert 300_000 <= net.num_parameters() <= 1_000_000
    # convs 144 + 2,304 + 4,608 + 9,216, BN 2·(16+16+32+32), FC 1,568·128+128, 128·10+10
    assert models.small_vgg(channels=(16, 32), hidden=128).num_parameters() == 218586


def test_small_resnet_and_lecture_convnet_parameter_counts():
    assert models.small_resnet().num_parameters() == 308074
    # the lecture's per-layer counts 224, 3,216, 25,120, then FC 4,608·10 + 10
    net = models.lecture_convnet()
    counts = [p.size for p in net.parameters()]
    assert [counts[i] + counts[i + 1] for i in range(0, 8, 2)] == [224, 3216, 25120, 46090]


def test_lecture_convnet_shapes_follow_the_slide():
    net = models.lecture_convnet()
    x = np.zeros((1, 3, 64, 64), np.float32)
    assert [net[:i](x).shape[1:] for i in (1, 3, 5)] == [(8, 62, 62), (16, 29, 29), (32, 12, 12)]


# --------------------------------------------------------------------------- forward shapes

@pytest.mark.parametrize("name, in_channels, input_size", [
    ("lenet5", 1, 28), ("lenet5", 3, 32), ("lenet5", 1, 16),
    ("small_vgg", 1, 28), ("small_vgg", 3, 32), ("small_vgg", 1, 4), ("small_vgg", 3, 9),
    ("small_resnet", 1, 28), ("small_resnet", 3, 32), ("small_resnet", 1, 1),
    ("small_resnet", 3, 7),
    ("lecture_convnet", 3, 64), ("lecture_convnet", 1, 28), ("lecture_convnet", 3, 19),
])
def test_every_model_builds_for_any_dataset_shape(name, in_channels, input_size):
    net = models.get(name, in_channels=in_channels, num_classes=7, input_size=input_size)
    x = np.zeros((2, in_channels, input_size, input_size), np.float32)
    with cnnlab.no_grad():
        y = net.eval()(x)
    assert y.shape == (2, 7) and y.dtype == np.float32


def test_every_builder_takes_the_arguments_the_cli_passes():
    for name in models.available():
        parameters = inspect.signature(models.get_builder(name)).parameters
        assert {"in_channels", "num_classes", "input_size", "channels"} <= set(parameters), name


# --------------------------------------------------------------------------- torch equivalence

@pytest.mark.parametrize("in_channels, input_size", [(1, 28), (3, 12)])
def test_small_vgg_matches_torch_state_dict_and_forward(in_channels, input_size):
    torch = pytest.importorskip("torch")
    ours = models.small_vgg(in_channels=in_channels, num_classes=5, input_size=input_size)
    ours.double()
    _randomize(ours)
    theirs = _torch_vgg(torch.nn, in_channels, 5, input_size).double()
    _copy_to_torch(ours.eval(), theirs.eval())
    x = np.random.default_rng(1).standard_normal((3, in_channels, input_size, input_size))
    with cnnlab.no_grad():
        y = ours(x).data
    np.testing.assert_allclose(y, theirs(torch.tensor(x)).detach().numpy(), atol=1e-10)


def test_small_resnet_matches_torch_state_dict_forward_and_gradients():
    """Evaluation mode, then a training step (batch statistics, residual gradients)."""
    torch = pytest.importorskip("torch")
    ours = models.small_resnet(in_channels=3, num_classes=4, input_size=10,
                               channels=(4, 8, 16), blocks=2).double()
    _randomize(ours)
    theirs = _torch_resnet(torch, 3, 4, channels=(4, 8, 16), blocks=2).double()
    _copy_to_torch(ours, theirs)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 10, 10))
    with cnnlab.no_grad():
        y = ours.eval()(x).data
    np.testing.assert_allclose(y, theirs.eval()(torch.tensor(x)).detach().numpy(), atol=1e-10)

    target = rng.integers(0, 4, 4)
    loss = F.cross_entropy(ours.train()(x), target)
    loss.backward()
    tloss = torch.nn.functional.cross_entropy(theirs.train()(torch.tensor(x)),
                                              torch.tensor(target))
    tloss.backward()
    assert abs(loss.item() - tloss.item()) < 1e-10
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name].grad.numpy(), atol=1e-9, err_msg=name)
    reference = theirs.state_dict()
    for key, value in ours.state_dict().items():              # running statistics too
        np.testing.assert_allclose(value, reference[key].numpy(), atol=1e-12, err_msg=key)


def test_lecture_convnet_matches_torch_forward():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    ours = models.lecture_convnet(num_classes=6).double()
    theirs = tnn.Sequential(tnn.Conv2d(3, 8, 3), tnn.ReLU(), tnn.Conv2d(8, 16, 5, 2), tnn.ReLU(),
                            tnn.Conv2d(16, 32, 7, 2), tnn.ReLU(), tnn.Flatten(),
                            tnn.Linear(4608, 6)).double()
    _copy_to_torch(ours, theirs)
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64))
    with cnnlab.no_grad():
        y = ours(x).data
    np.testing.assert_allclose(y, theirs(torch.tensor(x)).detach().numpy(), atol=1e-10)


def test_basic_block_identity_shortcut_adds_the_input():
    block = models.BasicBlock(4, 4)
    assert block.downsample is None
    for module in (block.conv1, block.conv2):
        module.weight.data[...] = 0                 # the residual branch gives 0 (BN bias 0)
    x = np.abs(np.random.default_rng(4).standard_normal((2, 4, 5, 5)))
    with cnnlab.no_grad():
        np.testing.assert_allclose(block.eval()(x).data, x, atol=1e-6)


# --------------------------------------------------------------------------- registry

def test_registry_names_and_lookup():
    assert models.available() == ["lenet5", "small_vgg", "small_resnet", "lecture_convnet"]
    assert models.get_builder("Small-VGG") is models.small_vgg
    assert models.get("small-resnet", num_classes=3).fc.out_features == 3


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model 'vgg16'; available models: lenet5, "
                                         r"small_vgg, small_resnet, lecture_convnet\."):
        models.get("vgg16")
    with pytest.raises(TypeError, match="a model name must be a str, received int 3"):
        models.get(3)


def test_bad_keyword_argument_names_the_model_and_the_argument():
    with pytest.raises(TypeError, match=r"model 'small_vgg' has no argument 'depth'; it accepts "
                                        r"in_channels, num_classes, input_size, channels"):
        models.get("small_vgg", depth=3)
    with pytest.raises(TypeError, match="model 'lenet5' has no argument 'blocks'"):
        models.get("lenet5", blocks=2)


@pytest.mark.parametrize("name, kwargs, message", [
    ("small_vgg", {"in_channels": 0}, "small_vgg: in_channels must be a positive int, "
                                      "received 0."),
    ("small_vgg", {"channels": ()}, "small_vgg: channels must be a non-empty sequence of "
                                    "positive ints, received ()."),
    ("small_vgg", {"dropout": 1.5}, "small_vgg: dropout must be a probability between 0 and 1"),
    ("small_vgg", {"hidden": 0}, "small_vgg: hidden must be a positive int, received 0."),
    ("small_resnet", {"blocks": 0}, "small_resnet: blocks must be a positive int, received 0."),
    ("small_resnet", {"num_classes": 2.5}, "small_resnet: num_classes must be a positive int"),
    ("lecture_convnet", {"channels": [8, 16]}, "lecture_convnet: channels must be 3 positive "
                                               "ints, received [8, 16]."),
    ("lenet5", {"input_size": "28"}, "lenet5: input_size must be a positive int"),
])
def test_bad_argument_values_are_named(name, kwargs, message):
    with pytest.raises(ValueError) as error:
        models.get(name, **kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("name, kwargs, message", [
    ("small_vgg", {"input_size": 3},
     "small_vgg: input_size 3 is too small: layer features.13 (MaxPool2d 2×2 closing block 2) "
     "receives a 1×1 feature map and no longer fits (pooling window of size 2"),
    ("small_vgg", {"input_size": 7, "channels": (8, 8, 8)},
     "layer features.20 (MaxPool2d 2×2 closing block 3) receives a 1×1 feature map"),
    ("lecture_convnet", {"input_size": 18},
     "lecture_convnet: input_size 18 is too small: layer 4 (Conv2d 7×7, stride 2) receives a "
     "6×6 feature map and no longer fits (kernel of size 7"),
    ("lecture_convnet", {"input_size": 2},
     "layer 0 (Conv2d 3×3, stride 1) receives a 2×2 feature map"),
    ("lenet5", {"input_size": 8}, "lenet5: input_size must be at least 16"),
])
def test_too_small_input_says_which_layer_no_longer_fits(name, kwargs, message):
    with pytest.raises(ValueError) as error:
        models.get(name, **kwargs)
    assert message in str(error.value)


def test_register_a_custom_builder():
    def tiny(in_channels=1, num_classes=10, input_size=28):
        return cnnlab.nn.Sequential(cnnlab.nn.Flatten(),
                                    cnnlab.nn.Linear(in_channels * input_size ** 2, num_classes))

    models.register("Tiny-MLP", tiny)
    try:
        assert "tiny_mlp" in models.available()
        assert models.get("tiny_mlp", input_size=4).num_parameters() == 16 * 10 + 10
        with pytest.raises(ValueError, match="a model named 'tiny_mlp' is already registered"):
            models.register("tiny_mlp", tiny)
    finally:
        models.unregister("tiny_mlp")
    assert "tiny_mlp" not in models.available()
    with pytest.raises(TypeError, match="it lacks num_classes, input_size"):
        models.register("bad", lambda in_channels: None)
    with pytest.raises(ValueError, match="a model name must be letters"):
        models.register("two words", tiny)
