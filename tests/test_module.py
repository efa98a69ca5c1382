"""Module bookkeeping, Sequential, and LeNet-5 end to end against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab import functional as F
from cnnlab import models, nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.scale = nn.Parameter(np.ones(1, np.float32))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))

    def forward(self, x):
        return self.head(F.relu(self.bn(self.conv(x))) * self.scale)


def test_registration_order_and_keys():
    block = Block()
    assert list(block.state_dict()) == [
        "scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
        "bn.running_var", "bn.num_batches_tracked", "head.1.weight", "head.1.bias"]
    assert [n for n, _ in block.named_parameters()] == [
        "scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "head.1.weight",
        "head.1.bias"]
    assert block.num_parameters() == 1 + 2 * 9 + 2 + 2 + 2 + 32 * 3 + 3


def test_state_dict_keys_match_torch_for_the_same_model():
    torch = pytest.importorskip("torch")

    class TorchBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)
            self.bn = torch.nn.BatchNorm2d(2)
            self.scale = torch.nn.Parameter(torch.ones(1))
            self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32, 3))

    ours, theirs = Block().state_dict(), TorchBlock().state_dict()
    assert sorted(ours) == sorted(theirs)        # torch lists own params before children's
    assert all(ours[k].shape == tuple(theirs[k].shape) for k in ours)


def test_state_dict_is_a_copy_and_round_trips():
    a, b = Block(), Block()
    state = a.state_dict()
    state["conv.weight"][...] = 7.0
    assert not np.all(a.conv.weight.data == 7.0)
    b.load_state_dict(a.state_dict())
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value)
    running = b.bn.running_mean
    b.load_state_dict({**a.state_dict(), "bn.running_mean": np.full(2, 3.0)})
    assert running is b.bn.running_mean and running.tolist() == [3.0, 3.0]   # copied in place


def test_load_state_dict_errors_name_the_keys():
    block = Block()
    state = block.state_dict()
    del state["conv.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['conv.bias'\], unexpected keys "
                                         r"\['extra'\]"):
        block.load_state_dict(state)
    state = Block().state_dict()
    state["conv.weight"] = np.zeros((3, 1, 3, 3))
    with pytest.raises(ValueError, match=r"'conv.weight' expected shape \(2, 1, 3, 3\), "
                                         r"received \(3, 1, 3, 3\)"):
        block.load_state_dict(state)


def test_train_eval_reach_every_submodule():
    block = Block()
    block.eval()
    assert not any(m.training for m in block.modules())
    block.train()
    assert all(m.training for m in block.modules())


def test_zero_grad_and_double():
    block = Block().double()
    assert all(p.dtype == np.float64 for p in block.parameters())
    assert block.bn.running_var.dtype == np.float64
    block(np.ones((2, 1, 6, 6))).sum().backward()
    assert all(p.grad is not None for p in block.parameters())
    block.zero_grad()
    assert all(p.grad is None for p in block.parameters())


def test_module_without_super_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(RuntimeError, match=r"Broken.__init__ must call super\(\).__init__\(\)"):
        Broken()


def test_sequential_indexing_and_repr():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten())
    assert len(net) == 3 and isinstance(net[0], nn.Conv2d) and isinstance(net[-1], nn.Flatten)
    assert len(net[1:]) == 2
    with pytest.raises(IndexError, match="Sequential has 3 layers, received index 3"):
        net[3]
    assert repr(net).splitlines()[1] == "  (0): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))"
    with pytest.raises(TypeError, match="Sequential expects Modules, received int at position 1"):
        nn.Sequential(nn.ReLU(), 3)


# ----------------------------------------------------------------------- LeNet-5
def test_lenet5_lecture_table_network_has_62958_parameters():
    net = models.lenet5(in_channels=3, num_classes=10, input_size=32, channels=(8, 16))
    assert net.num_parameters() == 62958
    assert net(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)


def test_lenet5_mnist_shapes():
    net = models.lenet5()
    assert net[0].padding == (2, 2)
    assert net(np.zeros((4, 1, 28, 28), np.float32)).shape == (4, 10)
    assert net.num_parameters() == 61706           # the classic LeNet-5 count on 28×28


def test_lenet5_rejects_too_small_input():
    with pytest.raises(ValueError, match="input_size must be at least 16"):
        models.lenet5(input_size=8)


def test_lenet5_matches_torch_forward_and_every_gradient():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    ours = models.lenet5().double()
    theirs = tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5),
        tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(),
        tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10)).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 28, 28))
    target = rng.integers(0, 10, 8)
    loss = F.cross_entropy(ours(x), target)
    loss.backward()
    tloss = tnn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(target))
    tloss.backward()
    assert abs(loss.item() - tloss.item()) < 1e-12
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name].grad.numpy(), atol=1e-10, err_msg=name)


def test_lenet5_learns_a_separable_toy_problem():
    """A few SGD steps on two synthetic classes (bright top half vs bottom half) fit them."""
    cnnlab.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 28, 28)).astype(np.float32) * 0.2
    y = rng.integers(0, 2, 64)
    x[y == 0, :, :14] += 1.0
    x[y == 1, :, 14:] += 1.0
    net = models.lenet5(num_classes=2)
    opt = cnnlab.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    with cnnlab.no_grad():
        accuracy = (net(x).data.argmax(1) == y).mean()
    assert loss.item() < 0.1 and accuracy == 1.0


def _gradcheck_module(model: nn.Module, x: np.ndarray, target: np.ndarray):
    """gradcheck of ``cross_entropy(model(x))`` with respect to x and every parameter."""
    slots = [(module, name) for module in model.modules()
             for name, p in module._parameters.items() if p is not None]
    initial = [module._parameters[name].data for module, name in slots]

    def loss(x, *params):
        for (module, name), p in zip(slots, params):
            module._parameters[name] = p           # differentiate through the given tensors
        return F.cross_entropy(model(x), target)

    return cnnlab.gradcheck(loss, [x, *initial])


@pytest.mark.parametrize("training", [True, False])
def test_every_layer_type_gradchecks_inside_a_model(training):
    """Conv, transposed conv, BN, pools, activations, linear: all parameters in one network."""
    cnnlab.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"),
        nn.BatchNorm2d(3),
        nn.LeakyReLU(0.1),
        nn.MaxPool2d(2, stride=1, padding=1),
        nn.Conv2d(3, 4, 3, stride=2, padding="same", padding_mode="reflect", groups=1),
        nn.Tanh(),
        nn.ConvTranspose2d(4, 2, 2, stride=2, groups=2),
        nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False, padding=1),
        nn.Identity(),
        nn.AdaptiveAvgPool2d((2, 3)),
        nn.Flatten(),
        nn.Linear(12, 5),
        nn.Sigmoid(),
        nn.Linear(5, 3),
    ).double()
    model.train(training)
    if not training:
        model[1].running_mean[...] = [0.1, -0.2, 0.3]
        model[1].running_var[...] = [0.5, 2.0, 1.5]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 6, 5))
    result = _gradcheck_module(model, x, np.array([0, 2, 1]))
    assert result, str(result)


@pytest.mark.parametrize("call,error,match", [
    (lambda: cnnlab.optim.SGD(nn.Linear(2, 2), lr=0.1), TypeError,
     r"SGD: params must be an iterable of Parameters, received the module Linear itself; "
     r"pass model.parameters\(\)"),
    (lambda: models.lenet5(channels=6), ValueError,
     r"lenet5: channels must be two positive ints, received 6"),
    (lambda: cnnlab.tensor(None), TypeError, r"a tensor needs numeric data, received NoneType"),
    (lambda: cnnlab.tensor(["a", "b"]), TypeError, r"a tensor needs numeric data"),
    (lambda: nn.Linear(3, 2)(np.zeros((4, 5), np.float32)), ValueError,
     r"Linear\(3→2\) expected input with 3 features in the last axis, received 5"),
])
def test_common_mistakes_are_explained(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_load_state_dict_copies_parameters_in_place():
    layer = nn.Linear(2, 2)
    weight = layer.weight.data
    layer.load_state_dict({"weight": np.ones((2, 2)), "bias": np.zeros(2)})
    assert layer.weight.data is weight and weight.dtype == np.float32
    assert weight.tolist() == [[1.0, 1.0], [1.0, 1.0]]
