"""ONNX import: an ONNX graph as a cnnlab model (:class:`cnnlab.models.GraphNet`).

Each ONNX node becomes a cnnlab layer where one exists (Conv → ``Conv2d``, BatchNormalization →
``BatchNorm2d``, Gemm with constant weights → ``Linear``, Relu → ``ReLU``...), so ``summary``,
``explain`` and ``viz`` see the layers they know, or a tensor operation of the graph (Add, MatMul,
Reshape, Pad...), so branches and merges run as in the file. Weights keep their ONNX names where
those look like PyTorch's (``features.0.weight`` gives the layer ``features.0``).

Reading is safe: the file's size is checked before it is parsed, it is parsed as a protocol
buffer (no code runs), weights stored in external files are refused, and every weight's size is
checked against the bytes it claims.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..models.graph import GraphNet
from ..ops.shapes import same_padding
from ._deps import require
from .onnx_file import MAX_BYTES, attributes, read_onnx, tensor_array

SUPPORTED = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool",
             "GlobalMaxPool", "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Tanh",
             "Softmax", "LogSoftmax", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Neg",
             "Flatten", "Reshape", "Pad", "Dropout", "Identity", "Constant")



def _same_pairs(sizes, kernel, strides, dilations, *, lower: bool) -> list[list[int]]:
    """ONNX's ``auto_pad`` SAME_UPPER (TensorFlow's 'same': the odd pixel at the end) or
    SAME_LOWER (the odd pixel at the start) as ``[before, after]`` per axis."""
    pairs = [list(same_padding(n, k, s, d)) for n, k, s, d in zip(sizes, kernel, strides,
                                                                  dilations)]
    return [pair[::-1] for pair in pairs] if lower else pairs

@dataclass
class ImportedGraph:
    """An ONNX graph translated: the :class:`GraphNet` description, its weights, and the
    static sizes of its input and output (None where the file leaves a size open)."""

    graph: dict[str, Any]
    state: dict[str, np.ndarray]
    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]
    opset: int = 0
    notes: list[str] = field(default_factory=list)

    def build(self) -> GraphNet:
        """The cnnlab model, weights loaded, in evaluation mode."""
        net = GraphNet(self.graph)
        net.load_state_dict(self.state)
        return net.eval()


def _safe(name: str, fallback: str) -> str:
    """A layer name from an ONNX node name: kept when it reads like one (``features.0``),
    otherwise its letters and digits (``/features/Conv`` -> ``features_Conv``)."""
    if re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", name):
        return name
    text = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")
    return text if text and not text[0].isdigit() else (fallback if not text else f"n_{text}")


class _Converter:
    def __init__(self, proto, feeds: dict[str, np.ndarray] | None) -> None:
        onnx = require("onnx")
        self.proto = proto
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                          0)
        try:
            inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
        except Exception:  # noqa: BLE001 (shape inference is a help, never required)
            inferred = proto
        self.shapes: dict[str, tuple[int | None, ...]] = {}
        graph = inferred.graph
        for info in [*graph.input, *graph.value_info, *graph.output]:
            if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
                self.shapes[info.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else None
                    for d in info.type.tensor_type.shape.dim)
        self.constants: dict[str, np.ndarray] = {}
        for tensor in proto.graph.initializer:
            self.constants[tensor.name] = tensor_array(tensor, "initializer")
        for name, value in (feeds or {}).items():
            self.constants[name] = np.asarray(value)
            self.shapes[name] = tuple(np.shape(value))
        self.nodes: list[dict[str, Any]] = []
        self.state: dict[str, np.ndarray] = {}
        self.emitted: set[str] = set()
        self.names: set[str] = set()

    # ------------------------------------------------------------------ helpers
    def unique(self, name: str) -> str:
        base, count = name, 1
        while name in self.names:
            count += 1
            name = f"{base}_{count}"
        self.names.add(name)
        return name

    def value(self, name: str) -> str:
        """A tensor input: constants become constant nodes the first time they are read."""
        if name in self.constants and name not in self.emitted:
            array = self.constants[name]
            key = self.unique(f"constant{len(self.emitted)}")
            self.nodes.append({"op": "constant", "name": key, "shape": list(array.shape),
                               "outputs": [name]})
            self.state[key] = np.asarray(array, dtype=np.float32)
            self.emitted.add(name)
        return name

    def const(self, node, index: int, what: str) -> np.ndarray | None:
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.constants:
            raise self.refuse(node, f"its {what} ({name!r}) is computed while the graph runs; "
                              f"cnnlab imports it only as a constant")
        return self.constants[name]

    def refuse(self, node, why: str) -> ValueError:
        return ValueError(f"node {node.name or '(unnamed)'!r} ({node.op_type}) cannot be "
                          f"imported: {why}.")

    def rank(self, node, name: str) -> int:
        shape = self.shapes.get(name)
        if shape is None:
            raise self.refuse(node, f"the rank of its input {name!r} is unknown (the file "
                              f"records no shape for it)")
        return len(shape)

    def spatial(self, node, name: str) -> tuple[int, ...]:
        shape = self.shapes.get(name)
        if shape is None or any(s is None for s in shape[2:]):
            raise self.refuse(node, f"its padding depends on the spatial size of {name!r}, "
                              f"which the file leaves open")
        return tuple(shape[2:])

    def layer(self, node, layer: str, args: dict, inputs: list[str], weights=None,
              name: str | None = None) -> None:
        weights = weights or {}
        key = name
        weight_name = node.input[1] if len(node.input) > 1 else ""
        if key is None and weight_name.endswith(".weight") and weights:
            key = weight_name[: -len(".weight")]
        if not key or key in self.names or not re.fullmatch(r"[^.]+(\.[^.]+)*", key):
            key = _safe(node.name, f"{node.op_type.lower()}{len(self.nodes)}")
        key = self.unique(key)
        self.nodes.append({"layer": layer, "name": key, "args": args, "inputs": inputs,
                           "outputs": [node.output[0]]})
        for attr, array in weights.items():
            self.state[f"{key}.{attr}"] = np.asarray(array, dtype=np.float32)

    def op(self, node, op: str, inputs: list[str], **args) -> None:
        self.nodes.append({"op": op, "inputs": inputs, "outputs": [node.output[0]],
                           "args": args})

    # ------------------------------------------------------------------ conversion
    def convert(self) -> ImportedGraph:
        graph = self.proto.graph
        for node in graph.node:
            if node.domain not in ("", "ai.onnx"):
                raise ValueError(f"node {node.name or '(unnamed)'!r} uses op {node.op_type!r} "
                                 f"of domain {node.domain!r}, which cnnlab cannot import.")
            handler = getattr(self, f"_{node.op_type}", None)
            if handler is None:
                raise ValueError(
                    f"node {node.name or '(unnamed)'!r} uses the ONNX op {node.op_type!r}, "
                    f"which cnnlab cannot import (it imports {', '.join(SUPPORTED)}).")
            if node.op_type not in ("Dropout", "Constant") and len(
                    [o for o in node.output if o]) > 1:
                raise self.refuse(node, "it has more than one output")
            handler(node, attributes(node))
        inputs = [i.name for i in graph.input if i.name not in self.constants]
        outputs = [self.value(o.name) for o in graph.output]
        if not outputs:
            raise ValueError("the ONNX graph has no output.")
        return ImportedGraph(
            graph={"inputs": inputs, "outputs": outputs, "nodes": self.nodes},
            state=self.state, input_shape=self.shapes.get(inputs[0], ()) if inputs else (),
            output_shape=self.shapes.get(outputs[0], ()), opset=self.opset)

    def _Constant(self, node, a) -> None:  # noqa: N802 (ONNX's op names)
        if "value" in a:
            array = tensor_array(a["value"], "Constant")
        elif "value_float" in a or "value_int" in a:
            array = np.array(a.get("value_float", a.get("value_int")))
        elif "value_floats" in a or "value_ints" in a:
            array = np.array(a.get("value_floats", a.get("value_ints")))
        else:
            raise self.refuse(node, f"its value is given as {', '.join(a) or 'nothing'}, of "
                              f"which cnnlab reads value, value_float(s) and value_int(s)")
        self.constants[node.output[0]] = array

    def _conv_common(self, node, a, w: np.ndarray):
        nd = w.ndim - 2
        if not 1 <= nd <= 3:
            raise self.refuse(node, f"its weight has {w.ndim} axes; cnnlab convolves 1-, 2- "
                              f"and 3-D inputs")
        kernel = tuple(a.get("kernel_shape", w.shape[2:]))
        if kernel != tuple(w.shape[2:]):
            raise self.refuse(node, f"kernel_shape {kernel} differs from its weight's "
                              f"{tuple(w.shape[2:])}")
        strides = list(a.get("strides", [1] * nd))
        dilations = list(a.get("dilations", [1] * nd))
        pads = list(a.get("pads", [0] * 2 * nd))
        return nd, kernel, strides, dilations, [[pads[i], pads[i + nd]] for i in range(nd)]

    def _Conv(self, node, a) -> None:  # noqa: N802
        w = self.const(node, 1, "weight")
        if w is None:
            raise self.refuse(node, "it has no weight input")
        b = self.const(node, 2, "bias")
        nd, kernel, strides, dilations, padding = self._conv_common(node, a, w)
        auto = a.get("auto_pad", "NOTSET")
        if auto == "VALID":
            padding = "valid"
        elif auto == "SAME_UPPER":
            padding = "same"
        elif auto == "SAME_LOWER":
            padding = _same_pairs(self.spatial(node, node.input[0]), kernel, strides, dilations,
                                  lower=True)
        group = int(a.get("group", 1))
        args = dict(in_channels=w.shape[1] * group, out_channels=w.shape[0],
                    kernel_size=list(kernel), stride=strides, padding=padding,
                    dilation=dilations, groups=group, bias=b is not None)
        weights = {"weight": w} if b is None else {"weight": w, "bias": b}
        self.layer(node, f"Conv{nd}d", args, [self.value(node.input[0])], weights)

    def _ConvTranspose(self, node, a) -> None:  # noqa: N802
        w = self.const(node, 1, "weight")
        if w is None:
            raise self.refuse(node, "it has no weight input")
        b = self.const(node, 2, "bias")
        nd, kernel, strides, dilations, padding = self._conv_common(node, a, w)
        output_padding = list(a.get("output_padding", [0] * nd))
        auto = a.get("auto_pad", "NOTSET")
        if "output_shape" in a or auto in ("SAME_UPPER", "SAME_LOWER"):
            sizes = self.spatial(node, node.input[0])
            wanted = list(a.get("output_shape", [n * s for n, s in zip(sizes, strides)]))[-nd:]
            padding = []
            for i, (n, k, s, d) in enumerate(zip(sizes, kernel, strides, dilations)):
                total = s * (n - 1) + output_padding[i] + (k - 1) * d + 1 - wanted[i]
                if total < 0:
                    output_padding[i] -= total
                    total = 0
                half = total // 2
                padding.append([half, total - half] if auto != "SAME_LOWER"
                               else [total - half, half])
        elif auto == "VALID":
            padding = [[0, 0]] * nd
        group = int(a.get("group", 1))
        args = dict(in_channels=w.shape[0], out_channels=w.shape[1] * group,
                    kernel_size=list(kernel), stride=strides, padding=padding,
                    output_padding=output_padding, groups=group, bias=b is not None,
                    dilation=dilations)
        weights = {"weight": w} if b is None else {"weight": w, "bias": b}
        self.layer(node, f"ConvTranspose{nd}d", args, [self.value(node.input[0])], weights)

    def _pool(self, node, a, kind: str) -> None:
        kernel = list(a["kernel_shape"])
        nd = len(kernel)
        strides = list(a.get("strides", [1] * nd))
        dilations = list(a.get("dilations", [1] * nd))
        pads = list(a.get("pads", [0] * 2 * nd))
        pairs = [[pads[i], pads[i + nd]] for i in range(nd)]
        auto = a.get("auto_pad", "NOTSET")
        if auto == "VALID":
            pairs = [[0, 0]] * nd
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            pairs = _same_pairs(self.spatial(node, node.input[0]), kernel, strides, dilations,
                                lower=auto == "SAME_LOWER")
        symmetric = all(pb == pe and pb <= k // 2 for (pb, pe), k in zip(pairs, kernel))
        padding: Any = [pb for pb, _ in pairs] if symmetric else pairs
        args: dict[str, Any] = dict(kernel_size=kernel, stride=strides, padding=padding,
                                    ceil_mode=bool(a.get("ceil_mode", 0)))
        if kind == "Max":
            args["dilation"] = dilations
        else:
            args["count_include_pad"] = bool(a.get("count_include_pad", 0))
            if any(d != 1 for d in dilations):
                args["dilation"] = dilations
        self.layer(node, f"{kind}Pool{nd}d", args, [self.value(node.input[0])],
                   name=_safe(node.name, f"{kind.lower()}pool{len(self.nodes)}"))

    def _MaxPool(self, node, a) -> None:  # noqa: N802
        self._pool(node, a, "Max")

    def _AveragePool(self, node, a) -> None:  # noqa: N802
        self._pool(node, a, "Avg")

    def _GlobalAveragePool(self, node, a) -> None:  # noqa: N802
        nd = self.rank(node, node.input[0]) - 2
        if not 1 <= nd <= 3:
            raise self.refuse(node, f"its input has {nd + 2} axes; cnnlab pools 1-, 2- and 3-D")
        self.layer(node, f"AdaptiveAvgPool{nd}d", {"output_size": 1},
                   [self.value(node.input[0])])

    def _GlobalMaxPool(self, node, a) -> None:  # noqa: N802
        self.op(node, "global_max_pool", [self.value(node.input[0])])

    def _BatchNormalization(self, node, a) -> None:  # noqa: N802
        if a.get("training_mode", 0):
            raise self.refuse(node, "it is in training mode; cnnlab imports the inference form")
        scale, bias, mean, var = (self.const(node, i, what) for i, what in
                                  ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
        rank = self.rank(node, node.input[0])
        nd = {2: 1, 3: 1, 4: 2, 5: 3}.get(rank)
        if nd is None:
            raise self.refuse(node, f"its input has {rank} axes; cnnlab normalises 2- to 5-D")
        args = dict(num_features=int(scale.shape[0]), eps=float(a.get("epsilon", 1e-5)),
                    momentum=round(1.0 - float(a.get("momentum", 0.9)), 7))
        weights = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var,
                   "num_batches_tracked": np.array(0, np.int64)}
        self.layer(node, f"BatchNorm{nd}d", args, [self.value(node.input[0])], weights)

    def _activation(self, node, layer: str, args: dict | None = None) -> None:
        self.layer(node, layer, args or {}, [self.value(node.input[0])],
                   name=_safe(node.name, f"{layer.lower()}{len(self.nodes)}"))

    def _Relu(self, node, a) -> None:  # noqa: N802
        self._activation(node, "ReLU")

    def _LeakyRelu(self, node, a) -> None:  # noqa: N802
        self._activation(node, "LeakyReLU", {"negative_slope": float(a.get("alpha", 0.01))})

    def _Sigmoid(self, node, a) -> None:  # noqa: N802
        self._activation(node, "Sigmoid")

    def _Tanh(self, node, a) -> None:  # noqa: N802
        self._activation(node, "Tanh")

    def _softmax(self, node, a, layer: str) -> None:
        axis = int(a.get("axis", -1 if self.opset >= 13 else 1))
        if self.opset < 13:
            rank = self.rank(node, node.input[0])
            if axis % rank != rank - 1:
                raise self.refuse(node, f"before opset 13 it normalises the axes {axis}.. "
                                  f"flattened together, which cnnlab's {layer} does not do")
        self._activation(node, layer, {"dim": axis})

    def _Softmax(self, node, a) -> None:  # noqa: N802
        self._softmax(node, a, "Softmax")

    def _LogSoftmax(self, node, a) -> None:  # noqa: N802
        self._softmax(node, a, "LogSoftmax")

    def _Gemm(self, node, a) -> None:  # noqa: N802
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        trans_a, trans_b = int(a.get("transA", 0)), int(a.get("transB", 0))
        b = self.constants.get(node.input[1])
        c = self.constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        has_c = len(node.input) > 2 and bool(node.input[2])
        if b is not None and b.ndim == 2 and not trans_a and (not has_c or c is not None):
            weight = alpha * (b if trans_b else b.T)                   # (out, in)
            out = weight.shape[0]
            if c is None or np.broadcast_shapes(np.shape(c), (out,)) == (out,):
                weights = {"weight": weight}
                if c is not None:
                    weights["bias"] = beta * np.broadcast_to(c, (out,))
                args = dict(in_features=int(weight.shape[1]), out_features=int(out),
                            bias=c is not None)
                self.layer(node, "Linear", args, [self.value(node.input[0])], weights)
                return
        inputs = [self.value(i) for i in node.input if i]
        self.op(node, "gemm", inputs, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)

    def _binary(self, node, op: str) -> None:
        self.op(node, op, [self.value(node.input[0]), self.value(node.input[1])])

    def _MatMul(self, node, a) -> None:  # noqa: N802
        self._binary(node, "matmul")

    def _Add(self, node, a) -> None:  # noqa: N802
        self._binary(node, "add")

    def _Sub(self, node, a) -> None:  # noqa: N802
        self._binary(node, "sub")

    def _Mul(self, node, a) -> None:  # noqa: N802
        self._binary(node, "mul")

    def _Div(self, node, a) -> None:  # noqa: N802
        self._binary(node, "div")

    def _Neg(self, node, a) -> None:  # noqa: N802
        self.op(node, "neg", [self.value(node.input[0])])

    def _Flatten(self, node, a) -> None:  # noqa: N802
        axis = int(a.get("axis", 1))
        if axis == 1:
            self._activation(node, "Flatten")
        else:
            self.op(node, "flatten", [self.value(node.input[0])], axis=axis)

    def _Reshape(self, node, a) -> None:  # noqa: N802
        shape = self.const(node, 1, "target shape")
        if shape is None:
            shape = np.array(a.get("shape", []))
        self.op(node, "reshape", [self.value(node.input[0])],
                shape=[int(s) for s in shape.ravel()], allowzero=int(a.get("allowzero", 0)))

    def _Pad(self, node, a) -> None:  # noqa: N802
        if self.opset >= 11:
            pads = self.const(node, 1, "pads")
            value = self.const(node, 2, "constant value")
            axes = self.const(node, 3, "axes")
            value = 0.0 if value is None or value.size == 0 else float(value.ravel()[0])
        else:
            pads, value, axes = np.array(a.get("pads", [])), float(a.get("value", 0.0)), None
        pads = [int(p) for p in np.ravel(pads)]
        if axes is not None:
            rank = self.rank(node, node.input[0])
            full = [0] * 2 * rank
            for i, axis in enumerate(int(x) % rank for x in np.ravel(axes)):
                full[axis], full[axis + rank] = pads[i], pads[i + len(pads) // 2]
            pads = full
        self.op(node, "pad", [self.value(node.input[0])], pads=pads,
                mode=a.get("mode", "constant"), value=value)

    def _Dropout(self, node, a) -> None:  # noqa: N802
        if len(node.output) > 1 and node.output[1]:
            raise self.refuse(node, "its mask output is used; cnnlab imports dropout as the "
                              "identity of inference")
        training = self.const(node, 2, "training_mode")
        if training is not None and bool(training):
            raise self.refuse(node, "it is in training mode; cnnlab imports dropout as the "
                              "identity of inference")
        self.op(node, "identity", [self.value(node.input[0])])

    def _Identity(self, node, a) -> None:  # noqa: N802
        self.op(node, "identity", [self.value(node.input[0])])


def onnx_to_graph(proto, feeds: dict[str, np.ndarray] | None = None) -> ImportedGraph:
    """Translate a parsed ONNX model; ``feeds`` turns graph inputs into constants (as
    :mod:`cnnlab.interop.backend` does for inputs that carry weights)."""
    return _Converter(proto, feeds).convert()


def from_onnx(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> GraphNet:
    """Read an ``.onnx`` file as a cnnlab model in evaluation mode.

    Args:
        path: the ONNX file.
        max_bytes: refuse larger files before reading them.

    Returns:
        A :class:`cnnlab.models.GraphNet` whose layers are cnnlab's, weights loaded.

    Raises:
        ImportError: the ``onnx`` package is missing.
        FileNotFoundError: no such file.
        ValueError: not an ONNX model, too large, or a node cnnlab cannot run (named).

    Example:
        >>> import numpy as np, tempfile, os
        >>> from cnnlab import models
        >>> from cnnlab.interop import from_onnx, to_onnx
        >>> path = os.path.join(tempfile.mkdtemp(), "lenet.onnx")
        >>> net = models.lenet5().eval()
        >>> x = np.ones((1, 1, 28, 28), np.float32)
        >>> _ = to_onnx(net, x, path)
        >>> bool(np.array_equal(from_onnx(path)(x).data, net(x).data))
        True
    """
    return onnx_to_graph(read_onnx(path, max_bytes)).build()
