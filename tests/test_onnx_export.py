"""ONNX export: every layer family and every registered model, run by ONNX Runtime, equals cnnlab
within 1e-5 (float32); the batch axis is dynamic; what cannot be expressed is named."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from cnnlab import models, nn  # noqa: E402
from cnnlab.interop import to_onnx  # noqa: E402


def _runtime(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _randomise_batch_norms(model: nn.Module, rng) -> None:
    """Running statistics and affine terms away from (0, 1), so BatchNorm does something."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            m.running_mean[...] = rng.normal(size=m.num_features)
            m.running_var[...] = rng.uniform(0.5, 2.0, size=m.num_features)
            if m.weight is not None:
                m.weight.data[...] = rng.normal(size=m.num_features)
                m.bias.data[...] = rng.normal(size=m.num_features)


def check_export(model: nn.Module, shape: tuple[int, ...], seed: int = 0, batch: int = 3):
    """Export with a batch of 2, run ONNX Runtime on a batch of ``batch``: equal to cnnlab."""
    rng = np.random.default_rng(seed)
    _randomise_batch_norms(model, rng)
    model.eval()
    example = rng.normal(size=(2, *shape)).astype(np.float32)
    proto = to_onnx(model, example)
    x = rng.normal(size=(batch, *shape)).astype(np.float32)
    (got,) = _runtime(proto).run(None, {"input": x})
    np.testing.assert_allclose(got, model(x).data, rtol=1e-5, atol=1e-5)
    return proto


class Residual(nn.Module):
    """A branch and a merge made between layers: ``relu(conv(x) * 0.5 + x - bias)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding="same")
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x) * 0.5 + x - 0.25)


@pytest.mark.parametrize("name", models.available())
def test_every_registered_model(name):
    sizes = {"lecture_convnet": (3, 32, 32)}
    shape = sizes.get(name, (1, 28, 28))
    kwargs = {"in_channels": shape[0], "input_size": shape[1]}
    check_export(models.get(name, **kwargs), shape)


CONVS = [
    (nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2), (4, 17)),
    (nn.Conv1d(4, 4, 5, padding="same", groups=4, padding_mode="reflect"), (4, 11)),
    (nn.Conv2d(3, 6, 3, stride=2, padding="same"), (3, 10, 9)),
    (nn.Conv2d(4, 6, (3, 2), padding=((2, 0), (1, 3)), groups=2, bias=False), (4, 8, 7)),
    (nn.Conv2d(3, 4, 3, dilation=(2, 1), padding="valid"), (3, 9, 9)),
    (nn.Conv2d(3, 4, 3, padding=2, padding_mode="replicate"), (3, 7, 6)),
    (nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode="circular", stride=(1, 2)), (3, 7, 6)),
    (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (3, 6, 6)),
    (nn.Conv3d(2, 4, 3, stride=(1, 2, 2), padding=(1, 0, 1)), (2, 5, 6, 7)),
    (nn.Conv3d(2, 2, 3, padding="same", padding_mode="circular", groups=2), (2, 4, 5, 5)),
    (nn.ConvTranspose1d(4, 2, 3, stride=2, padding=1, output_padding=1), (4, 6)),
    (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (4, 5, 4)),
    (nn.ConvTranspose2d(3, 2, (2, 3), stride=(2, 1), dilation=2, bias=False), (3, 4, 5)),
    (nn.ConvTranspose3d(2, 3, 2, stride=2), (2, 3, 3, 2)),
]


@pytest.mark.parametrize("layer, shape", CONVS, ids=lambda v: repr(v).split("\n")[0][:60])
def test_convolutions(layer, shape):
    check_export(nn.Sequential(layer), shape)


def test_padding_modes_write_a_pad_node():
    proto = check_export(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular")),
                         (2, 5, 5))
    pad = next(n for n in proto.graph.node if n.op_type == "Pad")
    assert onnx.helper.get_attribute_value(pad.attribute[0]) == b"wrap"


POOLS = [
    (nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True), (2, 10)),
    (nn.MaxPool2d(2), (3, 7, 8)),
    (nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2)), (2, 9, 8)),
    (nn.MaxPool2d(3, stride=2, ceil_mode=True), (2, 8, 10)),
    (nn.MaxPool3d(2, stride=1, padding=1), (2, 3, 4, 4)),
    (nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False), (2, 9)),
    (nn.AvgPool2d(3, stride=2, padding=1), (3, 9, 8)),
    (nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), (2, 8, 8)),
    (nn.AvgPool2d(2, ceil_mode=True), (2, 5, 7)),
    (nn.AvgPool3d((1, 2, 2)), (2, 3, 4, 4)),
    (nn.AdaptiveAvgPool2d(1), (3, 5, 7)),
    (nn.AdaptiveAvgPool2d((2, 3)), (3, 6, 9)),
    (nn.AdaptiveAvgPool1d(1), (3, 7)),
    (nn.AdaptiveAvgPool3d((1, 2, 2)), (2, 3, 4, 4)),
    (nn.MaxPool2d(3, 2, padding="same"), (2, 8, 7)),                          # ONNX's forms
    (nn.MaxPool2d(3, 1, padding=((2, 0), (0, 1)), ceil_mode=True), (2, 5, 6)),
    (nn.AvgPool2d(3, 2, padding=((0, 2), (1, 1)), count_include_pad=False), (2, 7, 6)),
    (nn.AvgPool2d(2, 1, padding="same", dilation=2, count_include_pad=False), (2, 6, 6)),
    (nn.AvgPool3d(2, 1, padding=((1, 0), (0, 0), (0, 1)), dilation=(1, 2, 1)), (1, 3, 5, 4)),
]


@pytest.mark.parametrize("layer, shape", POOLS, ids=lambda v: repr(v).split("\n")[0][:60])
def test_pooling(layer, shape):
    check_export(nn.Sequential(layer), shape)


def _random_conv(rng):
    """A random 2-D convolution block: kernel, stride, dilation, groups, padding form and mode."""
    groups = int(rng.choice([1, 2]))
    c_in, c_out = 2 * groups, 2 * groups * int(rng.integers(1, 3))
    kernel = tuple(int(k) for k in rng.integers(1, 4, size=2))
    stride = tuple(int(s) for s in rng.integers(1, 3, size=2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, size=2))
    mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
    forms = ["same", "valid", tuple(int(p) for p in rng.integers(0, 2, size=2))]
    if mode == "zeros":
        forms.append(tuple(tuple(int(p) for p in rng.integers(0, 3, size=2)) for _ in range(2)))
    padding = forms[int(rng.integers(len(forms)))]
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups,
                     bias=bool(rng.integers(2)), padding_mode=mode)
    pool = (nn.MaxPool2d(2, 1, ceil_mode=True) if rng.integers(2) else
            nn.AvgPool2d(2, 1, padding=1, count_include_pad=bool(rng.integers(2))))
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(), pool), (c_in, 9, 8)


@pytest.mark.parametrize("seed", range(12))
def test_random_convolution_blocks(seed):
    model, shape = _random_conv(np.random.default_rng(100 + seed))
    check_export(model, shape, seed=seed)


@pytest.mark.parametrize("layers, shape", [
    ([nn.BatchNorm1d(4)], (4,)),
    ([nn.BatchNorm1d(4)], (4, 6)),
    ([nn.BatchNorm2d(3, eps=1e-3)], (3, 5, 5)),
    ([nn.BatchNorm2d(3, affine=False)], (3, 4, 4)),
    ([nn.BatchNorm3d(2)], (2, 3, 3, 3)),
    ([nn.ReLU(), nn.LeakyReLU(0.2), nn.Sigmoid(), nn.Tanh()], (5,)),
    ([nn.Flatten(), nn.Linear(12, 7), nn.Dropout(0.3), nn.Softmax(dim=1)], (3, 2, 2)),
    ([nn.Linear(4, 3, bias=False), nn.LogSoftmax(dim=-1)], (5, 4)),
    ([nn.Linear(4, 3)], (5, 4)),
    ([nn.Flatten(2), nn.Identity(), nn.Unflatten(1, (2, 2))], (4, 3, 2)),
    ([nn.Flatten(1, 2)], (2, 3, 4)),
])
def test_norm_activations_linear_shapes(layers, shape):
    check_export(nn.Sequential(*layers), shape)


def test_branches_and_merges_between_layers():
    proto = check_export(Residual(), (3, 6, 6))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Conv") == 1 and {"Mul", "Add", "Sub"} <= set(ops)


def test_a_layer_used_twice_is_written_twice():
    relu, conv = nn.ReLU(), nn.Conv2d(2, 2, 1)
    proto = check_export(nn.Sequential(conv, relu, conv, relu), (2, 3, 3))
    assert [n.op_type for n in proto.graph.node].count("Conv") == 2


def test_checker_clean_dynamic_batch_and_recent_opset(tmp_path):
    path = tmp_path / "lenet.onnx"
    proto = to_onnx(models.lenet5(), np.zeros((1, 1, 28, 28), np.float32), path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert proto.opset_import[0].version >= 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"


@pytest.mark.parametrize("opset", [17, 18])
def test_older_opsets(opset):
    model = models.small_resnet(channels=(4, 8)).eval()
    x = np.random.default_rng(opset).normal(size=(2, 1, 12, 12)).astype(np.float32)
    proto = to_onnx(model, x, opset=opset)
    assert proto.opset_import[0].version == opset
    (got,) = _runtime(proto).run(None, {"input": x})
    np.testing.assert_allclose(got, model(x).data, rtol=1e-5, atol=1e-5)


def test_normalisation_is_folded_in():
    model = models.lenet5().eval()
    mean, std = [0.1307], [0.3081]
    proto = to_onnx(model, np.zeros((1, 1, 28, 28), np.float32), normalize=(mean, std))
    x = np.random.default_rng(3).uniform(size=(2, 1, 28, 28)).astype(np.float32)
    (got,) = _runtime(proto).run(None, {"input": x})
    np.testing.assert_allclose(got, model((x - 0.1307) / 0.3081).data, rtol=1e-5, atol=1e-5)
    assert [n.op_type for n in proto.graph.node][:2] == ["Sub", "Div"]


class Doubled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        from cnnlab import functional as F
        return F.sigmoid(self.fc(x))


def test_what_cannot_be_expressed_is_named():
    x = np.zeros((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"layer 0 \(AvgPool2d.*cannot be exported to ONNX: "
                                         r"ONNX's AveragePool has no divisor_override\."):
        to_onnx(nn.Sequential(nn.AvgPool2d(2, divisor_override=3)), x)
    with pytest.raises(ValueError, match=r"layer 0 \(AdaptiveAvgPool2d.*not all the same size"):
        to_onnx(nn.Sequential(nn.AdaptiveAvgPool2d(2)), x)
    with pytest.raises(ValueError, match=r"layer 0 \(MaxPool2d.*returned a tuple, not one tensor"):
        to_onnx(nn.Sequential(nn.MaxPool2d(2, return_indices=True)), x)
    with pytest.raises(ValueError, match=r"made outside any layer by _unary; only layers and "
                                         r"the operators"):
        to_onnx(Doubled(), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"opset must be an int from 17 to \d+, received 13"):
        to_onnx(nn.Sequential(nn.ReLU()), x, opset=13)
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d.*circular padding \(Pad mode 'wrap'\)"
                                         r" needs opset 19, the export asked for opset 17\."):
        to_onnx(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular")), x,
                opset=17)


def test_the_model_is_left_as_it_was():
    model = models.small_vgg()
    model.train()
    to_onnx(model, np.zeros((1, 1, 28, 28), np.float32))
    assert all(m.training for m in model.modules())
    assert all("forward" not in m.__dict__ for m in model.modules())
