"""ONNX import: graphs built with onnx.helper (branches and merges included) run as ONNX Runtime
runs them; cnnlab → ONNX → cnnlab is exact; PyTorch's exporter's files import; the CLI writes a
checkpoint every command reads; what cannot be imported is named in one sentence."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from helpers import run_cli  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnnlab import models, nn  # noqa: E402
from cnnlab.interop import from_onnx, to_onnx  # noqa: E402
from cnnlab.interop._deps import require  # noqa: E402
from cnnlab.train.inference import load_trained  # noqa: E402

RNG = np.random.default_rng(7)


def _init(name: str, *shape: int, positive: bool = False):
    array = RNG.normal(size=shape).astype(np.float32)
    return numpy_helper.from_array(np.abs(array) + 0.5 if positive else array, name)


def _model(nodes, inputs, output, initializers, out_shape, opset: int = 19):
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)], initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 9
    onnx.checker.check_model(proto)
    return proto


def check_import(proto, tmp_path, shape, batch: int = 2):
    """cnnlab's import of ``proto`` equals ONNX Runtime on the same file within 1e-5."""
    path = tmp_path / "model.onnx"
    onnx.save(proto, path)
    x = RNG.normal(size=(batch, *shape)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {proto.graph.input[0].name: x})
    net = from_onnx(path)
    np.testing.assert_allclose(net(x).data, expected, rtol=1e-5, atol=1e-5)
    return net


def test_a_graph_with_branches_and_a_merge(tmp_path):
    nodes = [
        helper.make_node("Conv", ["x", "c1.weight", "c1.bias"], ["a"], name="c1",
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["a_relu"], name="relu"),
        helper.make_node("Conv", ["x", "skip.weight"], ["b"], name="skip", strides=[1, 1]),
        helper.make_node("Add", ["a_relu", "b"], ["s"], name="merge"),
        helper.make_node("Mul", ["s", "half"], ["s2"], name="scale"),
        helper.make_node("GlobalAveragePool", ["s2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], name="fc", alpha=0.5,
                         beta=2.0),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=1),
    ]
    inits = [_init("c1.weight", 4, 3, 3, 3), _init("c1.bias", 4), _init("skip.weight", 4, 3, 1, 1),
             numpy_helper.from_array(np.array(0.5, np.float32), "half"),
             _init("fc.w", 4, 5), _init("fc.b", 5)]
    proto = _model(nodes, [("x", ["N", 3, 6, 6])], "y", inits, ["N", 5])
    net = check_import(proto, tmp_path, (3, 6, 6))
    kinds = [type(m).__name__ for m in net.children()]
    assert kinds == ["Conv2d", "ReLU", "Conv2d", "AdaptiveAvgPool2d", "Flatten", "Linear",
                     "Softmax"]
    assert list(net.state_dict()) == ["constant0", "c1.weight", "c1.bias", "skip.weight",
                                      "fc.weight", "fc.bias"]


def test_every_listed_op(tmp_path):
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode="reflect"),
        helper.make_node("Conv", ["p", "conv.weight"], ["c"], name="conv", group=2,
                         dilations=[1, 2], strides=[2, 1], auto_pad="VALID"),
        helper.make_node("BatchNormalization", ["c", "bn.s", "bn.b", "bn.m", "bn.v"], ["bn"],
                         name="bn", epsilon=1e-3),
        helper.make_node("LeakyRelu", ["bn"], ["lr"], name="lrelu", alpha=0.1),
        helper.make_node("MaxPool", ["lr"], ["mp"], name="pool", kernel_shape=[2, 2],
                         strides=[1, 1], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["mp"], ["ap"], name="avg", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1, ceil_mode=1),
        helper.make_node("ConvTranspose", ["ap", "up.weight", "up.bias"], ["u"], name="up",
                         strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
        helper.make_node("Sigmoid", ["u"], ["sg"], name="sig"),
        helper.make_node("Tanh", ["u"], ["th"], name="tanh"),
        helper.make_node("Sub", ["sg", "th"], ["d"], name="sub"),
        helper.make_node("Constant", [], ["two"], name="const",
                         value=numpy_helper.from_array(np.array(2.0, np.float32))),
        helper.make_node("Div", ["d", "two"], ["dd"], name="div"),
        helper.make_node("Dropout", ["dd"], ["do"], name="drop"),
        helper.make_node("Identity", ["do"], ["id"], name="ident"),
        helper.make_node("GlobalMaxPool", ["id"], ["gm"], name="gmp"),
        helper.make_node("Reshape", ["gm", "shape"], ["r"], name="reshape"),
        helper.make_node("MatMul", ["r", "mm.w"], ["mm"], name="mm"),
        helper.make_node("Add", ["mm", "mm.b"], ["z"], name="bias"),
        helper.make_node("LogSoftmax", ["z"], ["y"], name="logsoftmax"),
    ]
    inits = [numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64), "pads"),
             _init("conv.weight", 4, 1, 3, 3), _init("bn.s", 4), _init("bn.b", 4),
             _init("bn.m", 4), _init("bn.v", 4, positive=True), _init("up.weight", 4, 3, 3, 3),
             _init("up.bias", 3), numpy_helper.from_array(np.array([0, -1], np.int64), "shape"),
             _init("mm.w", 3, 6), _init("mm.b", 6)]
    proto = _model(nodes, [("x", ["N", 2, 9, 8])], "y", inits, ["N", 6])
    check_import(proto, tmp_path, (2, 9, 8), batch=3)


@pytest.mark.parametrize("name", models.available())
def test_round_trip_is_exact(name, tmp_path):
    shape = (3, 32, 32) if name == "lecture_convnet" else (1, 28, 28)
    model = models.get(name, in_channels=shape[0], input_size=shape[1]).eval()
    x = RNG.normal(size=(2, *shape)).astype(np.float32)
    to_onnx(model, x, tmp_path / "m.onnx")
    back = from_onnx(tmp_path / "m.onnx")
    assert np.array_equal(back(x).data, model(x).data)
    state, original = back.state_dict(), model.state_dict()
    assert list(state) == list(original)
    assert all(np.array_equal(state[k], original[k]) for k in state)


@pytest.mark.parametrize("layers, shape", [
    ([nn.Conv2d(2, 4, 3, stride=2, padding="same", dilation=2, padding_mode="circular")],
     (2, 9, 8)),
    ([nn.Conv1d(2, 4, 3, padding=((2, 1),), groups=2), nn.BatchNorm1d(4), nn.Tanh()], (2, 7)),
    ([nn.Conv3d(1, 2, 2), nn.MaxPool3d(2, ceil_mode=True), nn.Flatten(), nn.LeakyReLU()],
     (1, 5, 5, 5)),
    ([nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),
      nn.AvgPool2d(3, 2, 1, count_include_pad=False), nn.AdaptiveAvgPool2d(1)], (2, 5, 5)),
])
def test_round_trip_of_layer_stacks(layers, shape, tmp_path):
    model = nn.Sequential(*layers).eval()
    x = RNG.normal(size=(2, *shape)).astype(np.float32)
    to_onnx(model, x, tmp_path / "m.onnx")
    assert np.array_equal(from_onnx(tmp_path / "m.onnx")(x).data, model(x).data)


def _torch_models(torch):
    tnn = torch.nn

    class Residual(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(4)
            self.conv2 = tnn.Conv2d(4, 4, 3, padding=1)
            self.relu = tnn.ReLU()

        def forward(self, x):
            return self.relu(self.conv2(self.relu(self.bn1(self.conv1(x)))) + x)

    lenet = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                           tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                           tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
                           tnn.Linear(84, 10))
    vgg = tnn.Sequential(tnn.Conv2d(1, 8, 3, padding=1, bias=False), tnn.BatchNorm2d(8),
                         tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(8, 8, 3, padding=1),
                         tnn.BatchNorm2d(8), tnn.ReLU(), tnn.AdaptiveAvgPool2d(1), tnn.Flatten(),
                         tnn.Dropout(0.5), tnn.Linear(8, 10))
    same = tnn.Sequential(tnn.Conv2d(1, 4, 3, padding="same", dilation=2), tnn.ReLU(),
                          tnn.Conv2d(4, 4, 3, stride=2), tnn.AvgPool2d(2), tnn.Flatten(),
                          tnn.Linear(4 * 6 * 6, 3), tnn.Softmax(dim=1))
    return {"lenet5": (lenet, (1, 28, 28)), "vgg_bn": (vgg, (1, 16, 16)),
            "residual": (Residual(), (4, 8, 8)), "same_stride_dilation": (same, (1, 27, 27))}


@pytest.mark.parametrize("name", ["lenet5", "vgg_bn", "residual", "same_stride_dilation"])
def test_pytorch_exported_models(name, tmp_path):
    torch = pytest.importorskip("torch")
    model, shape = _torch_models(torch)[name]
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    model.eval()
    x = torch.randn(2, *shape)
    path = tmp_path / f"{name}.onnx"
    try:
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], dynamic_axes={"input": {0: "N"}})
    except Exception as error:  # noqa: BLE001 (the exporter's own optional dependencies)
        pytest.skip(f"torch.onnx.export does not work here: {type(error).__name__}: {error}")
    net = from_onnx(path)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(net(x.numpy()).data, expected, rtol=1e-5, atol=1e-5)


def test_unsupported_op_names_node_and_op(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Erf", ["r"], ["y"], name="mystery")]
    onnx.save(_model(nodes, [("x", [1, 3])], "y", [], [1, 3]), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"^node 'mystery' uses the ONNX op 'Erf', which "
                                         r"cnnlab cannot import \(it imports Conv, "):
        from_onnx(tmp_path / "m.onnx")


def test_weights_computed_at_run_time_are_refused(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    onnx.save(_model(nodes, [("x", [1, 1, 4, 4]), ("w", [1, 1, 3, 3])], "y", [], [1, 1, 2, 2]),
              tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"node 'conv' \(Conv\) cannot be imported: its weight "
                                         r"\('w'\) is computed while the graph runs"):
        from_onnx(tmp_path / "m.onnx")


def test_files_are_checked_before_parsing(tmp_path):
    path = tmp_path / "m.onnx"
    to_onnx(models.lenet5(), np.zeros((1, 1, 28, 28), np.float32), path)
    with pytest.raises(ValueError, match=r"has [\d,]+ bytes, more than the 1,000 bytes accepted"):
        from_onnx(path, max_bytes=1000)
    (tmp_path / "bad.onnx").write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=r"is not (a readable ONNX model|an ONNX model)"):
        from_onnx(tmp_path / "bad.onnx")
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        from_onnx(tmp_path / "missing.onnx")


def test_a_weight_whose_size_lies_is_refused(tmp_path):
    weight = _init("fc.weight", 3, 4)
    weight.dims[:] = [30, 4]                      # declares 480 bytes, holds 48
    nodes = [helper.make_node("Gemm", ["x", "fc.weight"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 4])],
                              [helper.make_tensor_value_info("y", 1, None)], [weight])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    (tmp_path / "m.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match=r"initializer 'fc.weight' declares shape \(30, 4\) "
                                         r"\(480 bytes\) but holds 48 bytes"):
        from_onnx(tmp_path / "m.onnx")


def test_external_data_is_refused(tmp_path):
    weight = _init("w", 2, 2)
    onnx.external_data_helper.set_external_data(weight, location="weights.bin")
    weight.ClearField("raw_data")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 2])],
                              [helper.make_tensor_value_info("y", 1, None)], [weight])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    (tmp_path / "m.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match=r"keeps its values in an external file"):
        from_onnx(tmp_path / "m.onnx")


def test_a_missing_package_is_one_sentence():
    with pytest.raises(ImportError, match=r'^this needs the \'no_such_package_xyz\' package, '
                                          r'which is not installed; install it with: pip '
                                          r'install "cnnlab\[interop\]"\.$'):
        require("no_such_package_xyz")


def test_cli_export_import_and_use(tmp_path, capsys):
    from cnnlab.train.checkpoint import save_checkpoint

    model = models.lenet5()
    ckpt = save_checkpoint(tmp_path / "trained", model, model_name="lenet5",
                           model_args={"in_channels": 1, "num_classes": 10, "input_size": 28},
                           epoch=1, config={"normalize": {"mean": [0.2], "std": [0.3]}})
    code, out, err = run_cli(capsys, "export", str(ckpt), "--format", "onnx", "--out",
                             str(tmp_path / "m.onnx"))
    assert code == 0 and "folded in" in out, err
    code, out, err = run_cli(capsys, "import", str(tmp_path / "m.onnx"), "--out",
                             str(tmp_path / "imported"))
    assert code == 0 and "12 cnnlab layers" in out, err
    path = out.split("wrote ")[1].split(":")[0]
    _, back, normalize = load_trained(path)
    x = RNG.uniform(size=(2, 1, 28, 28)).astype(np.float32)
    _, original, original_normalize = load_trained(ckpt)
    np.testing.assert_allclose(back(normalize(x)).data,
                               original(original_normalize(x)).data, rtol=1e-5, atol=1e-5)
    from PIL import Image

    Image.fromarray((x[0, 0] * 255).astype(np.uint8)).save(tmp_path / "digit.png")
    code, out, err = run_cli(capsys, "predict", path, str(tmp_path / "digit.png"))
    assert code == 0 and "%" in out, err
    code, out, err = run_cli(capsys, "explain", "model", path, str(tmp_path / "digit.png"),
                             "--layer", "0", "--at", "3,3")
    assert code == 0 and "Conv2d(1→6" in out, err

    code, out, err = run_cli(capsys, "import", str(tmp_path / "nothing.onnx"), "--out",
                             str(tmp_path / "x"))
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    to_onnx(nn.Sequential(nn.Conv1d(1, 2, 3)), np.zeros((1, 1, 9), np.float32),
            tmp_path / "1d.onnx")
    code, out, err = run_cli(capsys, "import", str(tmp_path / "1d.onnx"), "--out",
                             str(tmp_path / "x"))
    assert code == 2 and "takes input of shape (None, 1, 9); a checkpoint takes square" in err


def test_without_the_onnx_package_the_cli_says_how_to_install_it(tmp_path, capsys,
                                                                  monkeypatch):
    from cnnlab.train.checkpoint import save_checkpoint

    path = tmp_path / "m.onnx"
    to_onnx(models.lenet5(), np.zeros((1, 1, 28, 28), np.float32), path)
    ckpt = save_checkpoint(tmp_path / "trained", models.lenet5(), model_name="lenet5", epoch=0)
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)      # as if not installed
    for argv in (["import", str(path), "--out", str(tmp_path / "x")],
                 ["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "y.onnx")]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1, err
        assert err.endswith('install it with: pip install "cnnlab[interop]".\n'), err
