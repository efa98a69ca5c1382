"""ONNX nodes of each cnnlab layer, for :mod:`cnnlab.interop.onnx_export`.

Per layer: convolutions become ``Conv``/``ConvTranspose`` with explicit per-side ``pads`` ('same'
resolved for the example's spatial size, reflect/replicate/circular padding as a ``Pad`` node
before an unpadded ``Conv``); pooling ``MaxPool``/``AveragePool`` (``ceil_mode``,
``count_include_pad``, per-side pads, dilations); adaptive average pooling
``GlobalAveragePool`` or an ``AveragePool`` when the bins are equal; ``BatchNorm`` its evaluation
form ``BatchNormalization``; ``Linear`` ``Gemm``; ``Flatten`` ``Flatten``/``Reshape``;
``Dropout`` and ``Identity`` an ``Identity``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..nn import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    Module,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    Unflatten,
)
from ..ops.shapes import resolve_padding

#: the opset written by default: 19 has ``Pad`` mode "wrap" (circular padding) and dilated
#: AveragePool; 17 and 18 serve every other layer.
OPSET = 19
MIN_OPSET = 17

#: ONNX ``Pad`` modes of cnnlab's padding modes.
PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
class NodeGraph:
    """ONNX nodes and initializers being collected, with unique names."""

    def __init__(self, helper, numpy_helper, opset: int) -> None:
        self.helper, self.numpy_helper, self.opset = helper, numpy_helper, opset
        self.nodes: list = []
        self.initializers: list = []
        self.names: set[str] = set()

    def unique(self, name: str) -> str:
        base, count = name or "node", 1
        while name in self.names or not name:
            count += 1
            name = f"{base}_{count}"
        self.names.add(name)
        return name

    def needs(self, opset: int, name: str, module: Module, why: str) -> None:
        if self.opset < opset:
            raise refuse(name, module, f"{why}, the export asked for opset {self.opset}")

    def constant(self, name: str, array: np.ndarray) -> str:
        name = self.unique(name)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: Sequence[str], name: str, **attributes) -> str:
        name = self.unique(name)
        output = self.unique(f"{name}:out" if op != "Identity" else name)
        self.nodes.append(self.helper.make_node(op, list(inputs), [output], name=name,
                                                **attributes))
        return output


def as_float32(array) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


def _describe(module: Module) -> str:
    text = repr(module).splitlines()[0]
    return text if len(text) <= 80 else text[:77] + "..."


def refuse(name: str, module: Module, why: str) -> ValueError:
    where = f"layer {name} ({_describe(module)})" if name else f"layer {_describe(module)}"
    return ValueError(f"{where} cannot be exported to ONNX: {why}.")


def _conv(g: NodeGraph, name: str, m, x: str, in_shape: tuple[int, ...]) -> str:
    nd = m.nd
    kernel = tuple(m.weight.shape[2:])
    weight = g.constant(f"{name}.weight", as_float32(m.weight.data))
    inputs = [x, weight]
    if m.bias is not None:
        inputs.append(g.constant(f"{name}.bias", as_float32(m.bias.data)))
    attributes = dict(kernel_shape=list(kernel), strides=list(m.stride),
                      dilations=list(m.dilation), group=m.groups)
    if m.transposed:
        pads = tuple(m.padding) if isinstance(m.padding[0], tuple) else \
            tuple((p, p) for p in m.padding)
        attributes["output_padding"] = list(m.output_padding)
    else:
        pads = resolve_padding(m.padding, in_shape[2:], kernel, m.stride, m.dilation)
        if m.padding_mode != "zeros" and any(pb or pe for pb, pe in pads):
            amounts = [0, 0] + [pb for pb, _ in pads] + [0, 0] + [pe for _, pe in pads]
            if m.padding_mode == "circular":
                g.needs(19, name, m, "circular padding (Pad mode 'wrap') needs opset 19")
            x = g.node("Pad", [x, g.constant(f"{name}.pads", np.array(amounts, np.int64))],
                       f"{name}/pad", mode=PAD_MODES[m.padding_mode])
            inputs[0] = x
            pads = ((0, 0),) * nd
    attributes["pads"] = [pb for pb, _ in pads] + [pe for _, pe in pads]
    return g.node("ConvTranspose" if m.transposed else "Conv", inputs, name, **attributes)


def _pool(g: NodeGraph, name: str, m, x: str, in_shape) -> str:
    is_max = isinstance(m, (MaxPool1d, MaxPool2d, MaxPool3d))
    kernel, stride, pads, dilation = m.window(in_shape[2:])
    attributes = dict(kernel_shape=list(kernel), strides=list(stride),
                      pads=[pb for pb, _ in pads] + [pe for _, pe in pads],
                      ceil_mode=int(bool(m.ceil_mode)))
    if is_max or any(d != 1 for d in dilation):
        attributes["dilations"] = list(dilation)
        if not is_max:
            g.needs(19, name, m, "a dilated average pooling needs opset 19")
    if is_max:
        return g.node("MaxPool", [x], name, **attributes)
    if m.divisor_override is not None:
        raise refuse(name, m, "ONNX's AveragePool has no divisor_override")
    attributes["count_include_pad"] = int(bool(m.count_include_pad))
    return g.node("AveragePool", [x], name, **attributes)


def _adaptive(g: NodeGraph, name: str, m, x: str, in_shape, out_shape) -> str:
    sizes, outs = in_shape[2:], out_shape[2:]
    if all(o == 1 for o in outs):
        return g.node("GlobalAveragePool", [x], name)
    if all(n % o == 0 for n, o in zip(sizes, outs)):
        kernel = [n // o for n, o in zip(sizes, outs)]
        return g.node("AveragePool", [x], name, kernel_shape=kernel, strides=kernel)
    raise refuse(name, m, f"its bins over an input of size {'×'.join(map(str, sizes))} are not "
                  f"all the same size, which ONNX's pooling cannot express")


def _batch_norm(g: NodeGraph, name: str, m, x: str) -> str:
    if m.running_mean is None or m.running_var is None:
        raise refuse(name, m, "it tracks no running statistics, and ONNX's "
                      "BatchNormalization needs them for inference")
    c = m.num_features
    scale = m.weight.data if m.weight is not None else np.ones(c)
    bias = m.bias.data if m.bias is not None else np.zeros(c)
    inputs = [x] + [g.constant(f"{name}.{key}", as_float32(value)) for key, value in
                    (("weight", scale), ("bias", bias), ("running_mean", m.running_mean),
                     ("running_var", m.running_var))]
    return g.node("BatchNormalization", inputs, name, epsilon=float(m.eps))


def _linear(g: NodeGraph, name: str, m, x: str, in_shape) -> str:
    weight = g.constant(f"{name}.weight", as_float32(m.weight.data))
    if len(in_shape) == 2:
        inputs = [x, weight]
        if m.bias is not None:
            inputs.append(g.constant(f"{name}.bias", as_float32(m.bias.data)))
        return g.node("Gemm", inputs, name, transB=1)
    transposed = g.node("Transpose", [weight], f"{name}/weight_t")
    y = g.node("MatMul", [x, transposed], f"{name}/matmul")
    if m.bias is None:
        return y
    return g.node("Add", [y, g.constant(f"{name}.bias", as_float32(m.bias.data))], name)


def reshape_node(g: NodeGraph, name: str, x: str, in_shape, out_shape) -> str:
    if len(in_shape) and len(out_shape) and in_shape[0] == out_shape[0]:
        target = [0, *out_shape[1:]]          # 0: keep the (dynamic) batch size
    else:
        target = list(out_shape)
    return g.node("Reshape", [x, g.constant(f"{name}.shape", np.array(target, np.int64))], name)


def layer_nodes(g: NodeGraph, name: str, m: Module, x: str, in_shape, out_shape) -> str:
    """The ONNX nodes of one layer applied to tensor ``x``; returns the output's name."""
    if isinstance(m, (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,
                      ConvTranspose3d)):
        return _conv(g, name, m, x, in_shape)
    if isinstance(m, (MaxPool1d, MaxPool2d, MaxPool3d, AvgPool1d, AvgPool2d, AvgPool3d)):
        return _pool(g, name, m, x, in_shape)
    if isinstance(m, (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d)):
        return _adaptive(g, name, m, x, in_shape, out_shape)
    if isinstance(m, (BatchNorm1d, BatchNorm2d, BatchNorm3d)):
        return _batch_norm(g, name, m, x)
    if isinstance(m, Linear):
        return _linear(g, name, m, x, in_shape)
    if isinstance(m, ReLU):
        return g.node("Relu", [x], name)
    if isinstance(m, LeakyReLU):
        return g.node("LeakyRelu", [x], name, alpha=float(m.negative_slope))
    if isinstance(m, Sigmoid):
        return g.node("Sigmoid", [x], name)
    if isinstance(m, Tanh):
        return g.node("Tanh", [x], name)
    if isinstance(m, (Softmax, LogSoftmax)):
        dim = m.dim if m.dim is not None else (0 if len(in_shape) in (0, 1, 3) else 1)
        if dim % max(len(in_shape), 1) == 0:
            raise refuse(name, m, "it normalises along the batch axis, which is dynamic in "
                          "the exported graph")
        return g.node("Softmax" if isinstance(m, Softmax) else "LogSoftmax", [x], name,
                      axis=int(dim))
    if isinstance(m, Flatten) and m.start_dim == 1 and m.end_dim in (-1, len(in_shape) - 1):
        return g.node("Flatten", [x], name, axis=1)
    if isinstance(m, (Flatten, Unflatten)):
        return reshape_node(g, name, x, in_shape, out_shape)
    if isinstance(m, (Dropout, Identity)):
        return g.node("Identity", [x], name)
    raise refuse(name, m, f"cnnlab has no ONNX translation for {type(m).__name__} layers")
