"""ONNX export: one traced forward pass of a cnnlab model written as an ONNX graph.

How the graph is found: every leaf layer (a module without sub-modules) runs once on an example
batch with gradients recorded, and each layer notes the tensor it received and the tensor it
made. Walking back from the model's output through the autograd graph then gives the network
as it really runs, branches included: a tensor a layer made becomes that layer's ONNX nodes, and
a tensor made between layers (the ``out + identity`` of a residual block) is read from the
autograd record of the ``Tensor`` operator that made it (``+ - * / @``, unary ``-``,
``reshape``). Anything else (a ``functional`` call in a custom ``forward``) cannot be named and
is refused with one sentence.

Each layer's nodes are written by :mod:`cnnlab.interop.onnx_layers`. The batch axis is
dynamic (``N``); the spatial sizes are the example's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor
from ..nn import Module
from ._deps import require
from .onnx_layers import MIN_OPSET, OPSET, NodeGraph, as_float32, layer_nodes, refuse, reshape_node

#: the ``Tensor`` operators that may join layers (residual sums...), by their autograd record.
_TENSOR_OPS = {"__add__": "Add", "__sub__": "Sub", "__mul__": "Mul", "__truediv__": "Div",
               "__matmul__": "MatMul", "__neg__": "Neg", "reshape": "Reshape"}

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
                raise refuse(name, module, "it was called with more than one input")
            if isinstance(out, Tensor) and out is not args[0]:
                self.made[id(out)] = (name, module, args[0])
                self.keep += [out, args[0]]
            elif not isinstance(out, Tensor):
                raise refuse(name, module, f"it returned a {type(out).__name__}, not one tensor")
            return out
        return run


class _Writer:
    """Walks the traced graph back from the output, writing each tensor's ONNX nodes once."""

    def __init__(self, g: NodeGraph, trace: _Trace, x: Tensor, input_name: str) -> None:
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
            out = layer_nodes(self.g, label, module, x, tuple(source.shape), tuple(t.shape))
        elif not self._depends(t):
            out = self.g.constant(f"constant{len(self.g.initializers)}", as_float32(t.data))
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
            return reshape_node(self.g, label, inputs[0], tuple(t._parents[0].shape), t.shape)
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

    g = NodeGraph(helper, numpy_helper, opset)
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

