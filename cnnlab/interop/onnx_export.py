"""ONNX export: one traced forward pass of a cnnlab model written as an ONNX graph.

How the graph is found: every leaf layer (a module without sub-modules) runs once on an example
batch with gradients recorded, and each layer notes the tensor it received and the tensor it
made. Walking back from the model's output through the autograd graph then gives the network
as it really runs, branches included: a tensor a layer made becomes that layer's ONNX nodes, and
a tensor made between layers (the ``out + identity`` of a residual block) is read from the
autograd record of the ``Tensor`` operator that made it (``+ - * / @``, unary ``-``,
``reshape``). Anything else (a ``functional`` call in a custom ``forward``) cannot be named and
is refused with one sentence.

Per layer: convolutions become ``Conv``/``ConvTranspose`` with explicit per-side ``pads`` ('same'
resolved for the example's spatial size, reflect/replicate/circular padding as a ``Pad`` node
before an unpadded ``Conv``); pooling ``MaxPool``/``AveragePool`` (``ceil_mode``,
``count_include_pad``); adaptive average pooling ``GlobalAveragePool`` or an ``AveragePool``
when the bins are equal; ``BatchNorm`` its evaluation form ``BatchNormalization``; ``Linear``
``Gemm``; ``Flatten`` ``Flatten``/``Reshape``; ``Dropout`` and ``Identity`` nothing at all.
The batch axis is dynamic (``N``); the spatial sizes are the example's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor
from ..functional.pool import _pool_geometry, pool_pads
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
from ._deps import require

#: the opset written by default: 19 has ``Pad`` mode "wrap" (circular padding) and dilated
#: AveragePool; 17 and 18 serve every other layer.
OPSET = 19
MIN_OPSET = 17

#: ONNX ``Pad`` modes of cnnlab's padding modes.
PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}

#: the ``Tensor`` operators that may join layers (residual sums...), by their autograd record.
_TENSOR_OPS = {"__add__": "Add", "__sub__": "Sub", "__mul__": "Mul", "__truediv__": "Div",
               "__matmul__": "MatMul", "__neg__": "Neg", "reshape": "Reshape"}


class _Graph:
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
            raise _refuse(name, module, f"{why}, the export asked for opset {self.opset}")

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


def _float32(array) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


def _describe(module: Module) -> str:
    text = repr(module).splitlines()[0]
    return text if len(text) <= 80 else text[:77] + "..."


def _refuse(name: str, module: Module, why: str) -> ValueError:
    where = f"layer {name} ({_describe(module)})" if name else f"layer {_describe(module)}"
    return ValueError(f"{where} cannot be exported to ONNX: {why}.")


def _conv(g: _Graph, name: str, m, x: str, in_shape: tuple[int, ...]) -> str:
    nd = m.nd
    kernel = tuple(m.weight.shape[2:])
    weight = g.constant(f"{name}.weight", _float32(m.weight.data))
    inputs = [x, weight]
    if m.bias is not None:
        inputs.append(g.constant(f"{name}.bias", _float32(m.bias.data)))
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


def _pool(g: _Graph, name: str, m, x: str, in_shape) -> str:
    is_max = isinstance(m, (MaxPool1d, MaxPool2d, MaxPool3d))
    kernel, stride, padding, dilation = _pool_geometry(
        m.nd, m.kernel_size, m.stride, m.padding, m.dilation, name)
    pads = pool_pads(padding, in_shape[2:], kernel, stride, dilation)
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
        raise _refuse(name, m, "ONNX's AveragePool has no divisor_override")
    attributes["count_include_pad"] = int(bool(m.count_include_pad))
    return g.node("AveragePool", [x], name, **attributes)


def _adaptive(g: _Graph, name: str, m, x: str, in_shape, out_shape) -> str:
    sizes, outs = in_shape[2:], out_shape[2:]
    if all(o == 1 for o in outs):
        return g.node("GlobalAveragePool", [x], name)
    if all(n % o == 0 for n, o in zip(sizes, outs)):
        kernel = [n // o for n, o in zip(sizes, outs)]
        return g.node("AveragePool", [x], name, kernel_shape=kernel, strides=kernel)
    raise _refuse(name, m, f"its bins over an input of size {'×'.join(map(str, sizes))} are not "
                  f"all the same size, which ONNX's pooling cannot express")


def _batch_norm(g: _Graph, name: str, m, x: str) -> str:
    if m.running_mean is None or m.running_var is None:
        raise _refuse(name, m, "it tracks no running statistics, and ONNX's "
                      "BatchNormalization needs them for inference")
    c = m.num_features
    scale = m.weight.data if m.weight is not None else np.ones(c)
    bias = m.bias.data if m.bias is not None else np.zeros(c)
    inputs = [x] + [g.constant(f"{name}.{key}", _float32(value)) for key, value in
                    (("weight", scale), ("bias", bias), ("running_mean", m.running_mean),
                     ("running_var", m.running_var))]
    return g.node("BatchNormalization", inputs, name, epsilon=float(m.eps))


def _linear(g: _Graph, name: str, m, x: str, in_shape) -> str:
    weight = g.constant(f"{name}.weight", _float32(m.weight.data))
    if len(in_shape) == 2:
        inputs = [x, weight]
        if m.bias is not None:
            inputs.append(g.constant(f"{name}.bias", _float32(m.bias.data)))
        return g.node("Gemm", inputs, name, transB=1)
    transposed = g.node("Transpose", [weight], f"{name}/weight_t")
    y = g.node("MatMul", [x, transposed], f"{name}/matmul")
    if m.bias is None:
        return y
    return g.node("Add", [y, g.constant(f"{name}.bias", _float32(m.bias.data))], name)


def _reshape(g: _Graph, name: str, x: str, in_shape, out_shape) -> str:
    if len(in_shape) and len(out_shape) and in_shape[0] == out_shape[0]:
        target = [0, *out_shape[1:]]          # 0: keep the (dynamic) batch size
    else:
        target = list(out_shape)
    return g.node("Reshape", [x, g.constant(f"{name}.shape", np.array(target, np.int64))], name)


def _layer(g: _Graph, name: str, m: Module, x: str, in_shape, out_shape) -> str:
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
            raise _refuse(name, m, "it normalises along the batch axis, which is dynamic in "
                          "the exported graph")
        return g.node("Softmax" if isinstance(m, Softmax) else "LogSoftmax", [x], name,
                      axis=int(dim))
    if isinstance(m, Flatten) and m.start_dim == 1 and m.end_dim in (-1, len(in_shape) - 1):
        return g.node("Flatten", [x], name, axis=1)
    if isinstance(m, (Flatten, Unflatten)):
        return _reshape(g, name, x, in_shape, out_shape)
    if isinstance(m, (Dropout, Identity)):
        return g.node("Identity", [x], name)
    raise _refuse(name, m, f"cnnlab has no ONNX translation for {type(m).__name__} layers")


class _Trace:
    """One forward pass in which every leaf layer notes its input and output tensors."""

    def __init__(self, model: Module) -> None:
        self.model = model
        self.made: dict[int, tuple[str, Module, Tensor]] = {}     # id(output) -> layer, input
        self.keep: list[object] = []                              # ids stay unique

    def run(self, x: Tensor):
        leaves = [(name, m) for name, m in self.model.named_modules()
                  if next(m.children(), None) is None]
        modes = [(m, m.training) for m in self.model.modules()]
        patched = []
        try:
            self.model.eval()
            for name, module in leaves:
                if "forward" in module.__dict__:
                    continue                      # already patched (a layer shared twice)
                patched.append(module)
                object.__setattr__(module, "forward", self._wrap(name, module, module.forward))
            with enable_grad():
                return self.model(x)
        finally:
            for module in patched:
                object.__delattr__(module, "forward")
            for module, mode in modes:
                object.__setattr__(module, "training", mode)

    def _wrap(self, name: str, module: Module, forward):
        def run(*args, **kwargs):
            out = forward(*args, **kwargs)
            if len(args) != 1 or kwargs:
                raise _refuse(name, module, "it was called with more than one input")
            if isinstance(out, Tensor) and out is not args[0]:
                self.made[id(out)] = (name, module, args[0])
                self.keep += [out, args[0]]
            elif not isinstance(out, Tensor):
                raise _refuse(name, module, f"it returned a {type(out).__name__}, not one tensor")
            return out
        return run


class _Writer:
    """Walks the traced graph back from the output, writing each tensor's ONNX nodes once."""

    def __init__(self, g: _Graph, trace: _Trace, x: Tensor, input_name: str) -> None:
        self.g, self.trace, self.x = g, trace, x
        self.names: dict[int, str] = {id(x): input_name}
        self.depends: dict[int, bool] = {id(x): True}
        self.layer_uses: dict[str, int] = {}

    def _depends(self, t: Tensor) -> bool:
        """Does ``t`` depend on the input? (otherwise it is a constant of the graph)"""
        stack, order = [t], []
        while stack:
            u = stack.pop()
            if id(u) in self.depends:
                continue
            order.append(u)
            stack.extend(p for p in u._parents if id(p) not in self.depends)
        for u in reversed(order):
            if id(u) not in self.depends:
                self.depends[id(u)] = any(self.depends.get(id(p), False) for p in u._parents)
        return self.depends[id(t)]

    def name_of(self, t: Tensor) -> str:
        if id(t) in self.names:
            return self.names[id(t)]
        if id(t) in self.trace.made:
            name, module, source = self.trace.made[id(t)]
            uses = self.layer_uses[name] = self.layer_uses.get(name, 0) + 1
            label = name if uses == 1 else f"{name}#{uses}"
            x = self.name_of(source)
            out = _layer(self.g, label, module, x, tuple(source.shape), tuple(t.shape))
        elif not self._depends(t):
            out = self.g.constant(f"constant{len(self.g.initializers)}", _float32(t.data))
        else:
            out = self._tensor_op(t)
        self.names[id(t)] = out
        return out

    def _tensor_op(self, t: Tensor) -> str:
        backward = t._backward
        qualname = getattr(backward, "__qualname__", "")
        parts = qualname.split(".")
        method = parts[1] if len(parts) > 2 and parts[0] == "Tensor" else None
        if method not in _TENSOR_OPS:
            raise ValueError(
                f"a tensor of shape {t.shape} cannot be exported to ONNX: it was made outside "
                f"any layer by {qualname.split('.<locals>')[0] or 'an unknown operation'}; "
                f"only layers and the operators + - * / @ and reshape between them can be "
                f"exported."
            )
        op = _TENSOR_OPS[method]
        inputs = [self.name_of(p) for p in t._parents]
        label = f"{op.lower()}{len(self.g.nodes)}"
        if op == "Reshape":
            return _reshape(self.g, label, inputs[0], tuple(t._parents[0].shape), t.shape)
        return self.g.node(op, inputs, label)


def to_onnx(model: Module, example_input, path: str | os.PathLike | None = None, *,
            normalize: tuple[Sequence[float], Sequence[float]] | None = None,
            opset: int = OPSET, input_name: str = "input", output_name: str = "output"):
    """Export ``model`` as an ONNX graph, checked by ``onnx.checker``; write it to ``path``.

    The model runs once (in evaluation mode) on ``example_input``; the graph records what that
    pass computed, with a dynamic batch axis ``N`` and the example's other sizes.

    Args:
        model: a cnnlab model made of cnnlab layers (see the module docstring).
        example_input: an array ``(N, C, *S)`` of the size the model takes.
        path: where to write the ``.onnx`` file (None: only return the model).
        normalize: ``(mean, std)`` per channel, folded into the graph as ``(x - mean) / std``
            at the input, so the exported graph takes raw images.
        opset: the ONNX opset, 17 or later (circular padding and dilated average pooling
            need 19, the default).
        input_name, output_name: names of the graph's input and output.

    Returns:
        The ``onnx.ModelProto``.

    Raises:
        ImportError: the ``onnx`` package is missing.
        ValueError: a layer or operation that ONNX cannot express, named in one sentence.

    Example:
        >>> import numpy as np
        >>> from cnnlab import models
        >>> from cnnlab.interop import to_onnx
        >>> proto = to_onnx(models.lenet5(), np.zeros((1, 1, 28, 28), np.float32))
        >>> [n.op_type for n in proto.graph.node][:3]
        ['Conv', 'Relu', 'MaxPool']
    """
    onnx = require("onnx")
    from onnx import helper, numpy_helper

    if not isinstance(model, Module):
        raise TypeError(f"to_onnx: model must be a cnnlab.nn.Module, received "
                        f"{type(model).__name__}.")
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"to_onnx: opset must be an int from {MIN_OPSET} to "
                         f"{onnx.defs.onnx_opset_version()}, received {opset!r}.")
    example = np.asarray(getattr(example_input, "data", example_input), dtype=np.float32)
    if example.ndim < 2:
        raise ValueError(f"to_onnx: example_input must be a batch (N, C, ...), received shape "
                         f"{example.shape}.")
    x = Tensor(example, requires_grad=True)
    trace = _Trace(model)
    out = trace.run(x)
    if not isinstance(out, Tensor):
        raise ValueError(f"to_onnx: the model must return one tensor, it returned "
                         f"{type(out).__name__}.")

    g = _Graph(helper, numpy_helper, opset)
    g.names.add(input_name)
    source = input_name
    if normalize is not None:
        mean, std = (np.atleast_1d(np.asarray(v, np.float32)) for v in normalize)
        stats_shape = (1, -1) + (1,) * (example.ndim - 2)
        source = g.node("Sub", [source, g.constant("normalize.mean", mean.reshape(stats_shape))],
                        "normalize/sub")
        source = g.node("Div", [source, g.constant("normalize.std", std.reshape(stats_shape))],
                        "normalize/div")
    writer = _Writer(g, trace, x, source)
    result = writer.name_of(out)
    g.nodes.append(helper.make_node("Identity", [result], [output_name], name="output"))

    elem = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, type(model).__name__,
        [helper.make_tensor_value_info(input_name, elem, ["N", *example.shape[1:]])],
        [helper.make_tensor_value_info(output_name, elem,
                                       ["N" if out.shape[0] == example.shape[0] else
                                        out.shape[0], *out.shape[1:]])],
        g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="cnnlab")
    proto.ir_version = min(proto.ir_version, 9)      # readable by every current runtime
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        onnx.save(proto, os.fspath(path))
    return proto

