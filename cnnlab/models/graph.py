"""A model given as a graph: layers and tensor operations wired by name, branches and merges
included — the form an imported ONNX network takes (``cnnlab.interop.from_onnx``).

The graph is plain JSON data, so a checkpoint can rebuild the model by name
(``models.get("onnx_graph", graph=...)``) and then load its weights like any other model:

``{"inputs": ["input"], "outputs": ["logits"], "nodes": [node, ...]}`` where a node is

- a layer: ``{"layer": "Conv2d", "name": "conv1", "args": {...}, "inputs": ["input"],
  "outputs": ["t0"]}`` — a ``cnnlab.nn`` class built with ``args``, a sub-module named ``name``
  (so its weights are ``conv1.weight`` in the ``state_dict``), run on its one input;
- a constant: ``{"op": "constant", "name": "constant0", "shape": [...], "outputs": ["c0"]}`` —
  a float32 buffer of that shape, filled when the weights are loaded;
- an operation: ``{"op": "add", "inputs": ["a", "b"], "outputs": ["c"], "args": {...}}``, one
  of :data:`OPERATIONS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import nn
from .._validate import _is_int
from ..autograd.tensor import Tensor, as_tensor
from ..functional.pad import pad as _pad
from ._common import check_model_args

_MAX_CONSTANT = 2 ** 28        # values in one constant of a graph read from a checkpoint


def _reshape(x: Tensor, shape: Sequence[int], allowzero: int = 0) -> Tensor:
    """ONNX's Reshape: 0 copies the input's size on that axis (unless ``allowzero``), -1 is
    inferred."""
    target = [x.shape[i] if s == 0 and not allowzero else s for i, s in enumerate(shape)]
    if -1 in target:
        known = math.prod(s for s in target if s != -1)
        target[target.index(-1)] = x.size // known if known else 0
    if math.prod(target) != x.size:
        raise ValueError(f"reshape: cannot reshape an input of shape {x.shape} "
                         f"({x.size} values) to {tuple(shape)}.")
    return x.reshape(tuple(target))


def _flatten(x: Tensor, axis: int) -> Tensor:
    """ONNX's Flatten: ``(d_0 · … · d_{axis-1}, d_axis · … · d_n)``."""
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape((math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def _pad_onnx(x: Tensor, pads: Sequence[int], mode: str = "constant", value: float = 0.0
              ) -> Tensor:
    """ONNX's Pad: ``pads = [b_0, …, b_{n-1}, e_0, …, e_{n-1}]`` over all axes; modes
    constant, reflect, edge, wrap."""
    n = len(pads) // 2
    pairs = [(pads[i], pads[i + n]) for i in range(n)]
    while pairs and pairs[0] == (0, 0):
        pairs.pop(0)                              # leading unpadded axes (N, C) stay untouched
    flat = [v for pair in reversed(pairs) for v in pair]
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
                  "wrap": "circular"}[mode]
    if not flat:
        return x
    return _pad(x, flat, mode=torch_mode, value=value if mode == "constant" else None)


def _gemm(a: Tensor, b: Tensor, c: Tensor | None = None, alpha: float = 1.0, beta: float = 1.0,
          trans_a: int = 0, trans_b: int = 0) -> Tensor:
    """ONNX's Gemm: ``alpha · A' B' + beta · C``."""
    y = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return y


def _global_max_pool(x: Tensor) -> Tensor:
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


#: the operations a graph node may name, with the tensor function each runs.
OPERATIONS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "matmul": lambda a, b: a @ b,
    "neg": lambda a: -a,
    "identity": lambda a: a,
    "reshape": _reshape,
    "flatten": _flatten,
    "pad": _pad_onnx,
    "gemm": _gemm,
    "global_max_pool": _global_max_pool,
}


class GraphNet(nn.Module):
    """A network run node by node from a graph description (see the module docstring).

    Args:
        graph: the JSON description: ``inputs``, ``outputs`` and ``nodes``.

    Shape:
        the graph's: its inputs (usually one image batch; none for a constant graph); one
        output, or a tuple of them.

    Example:
        >>> import numpy as np
        >>> graph = {"inputs": ["x"], "outputs": ["y"], "nodes": [
        ...     {"layer": "Linear", "name": "fc", "args": {"in_features": 3, "out_features": 2},
        ...      "inputs": ["x"], "outputs": ["h"]},
        ...     {"layer": "ReLU", "name": "relu", "args": {}, "inputs": ["h"], "outputs": ["r"]},
        ...     {"op": "add", "inputs": ["h", "r"], "outputs": ["y"]}]}
        >>> net = GraphNet(graph)
        >>> list(net.state_dict())
        ['fc.weight', 'fc.bias']
        >>> net(np.zeros((4, 3), np.float32)).shape
        (4, 2)
    """

    def __init__(self, graph: dict[str, Any]) -> None:
        super().__init__()
        if (not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list)
                or not isinstance(graph.get("inputs"), list) or not graph.get("outputs")):
            raise ValueError("GraphNet: graph must be a dict with 'inputs', 'outputs' and "
                             "'nodes' lists.")
        self.graph = graph
        self.inputs = list(graph["inputs"])
        self.outputs = list(graph["outputs"])
        self._steps: list[tuple[str, Any, list[str], list[str], dict]] = []
        known = set(self.inputs)
        for index, node in enumerate(graph["nodes"]):
            inputs = [i for i in node.get("inputs", [])]
            missing = [i for i in inputs if i and i not in known]
            if missing:
                raise ValueError(f"GraphNet: node {index} ({node.get('name') or node.get('op')}) "
                                 f"reads {missing[0]!r} before any node makes it.")
            outputs = list(node["outputs"])
            known.update(outputs)
            if "layer" in node:
                layer = getattr(nn, node["layer"], None)
                if not (isinstance(layer, type) and issubclass(layer, nn.Module)):
                    raise ValueError(f"GraphNet: node {index} names an unknown layer "
                                     f"{node['layer']!r}.")
                self._modules[node["name"]] = layer(**_tuples(node.get("args", {})))
                self._steps.append(("layer", node["name"], inputs, outputs, {}))
            elif node.get("op") == "constant":
                shape = node.get("shape")
                if (not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape)
                        or math.prod(shape) > _MAX_CONSTANT):
                    raise ValueError(f"GraphNet: constant {node.get('name')!r} must have a shape "
                                     f"of at most {_MAX_CONSTANT:,} values, received {shape!r}.")
                self.register_buffer(node["name"], np.zeros(shape, np.float32))
                self._steps.append(("constant", node["name"], inputs, outputs, {}))
            elif node.get("op") in OPERATIONS:
                self._steps.append(("op", node["op"], inputs, outputs,
                                    _tuples(node.get("args", {}))))
            else:
                raise ValueError(f"GraphNet: node {index} has an unknown operation "
                                 f"{node.get('op')!r}; known: {', '.join(OPERATIONS)}.")
        missing = [o for o in self.outputs if o not in known]
        if missing:
            raise ValueError(f"GraphNet: the graph output {missing[0]!r} is made by no node.")

    def forward(self, *inputs):
        if len(inputs) != len(self.inputs):
            raise ValueError(f"GraphNet expected {len(self.inputs)} input(s) "
                             f"({', '.join(self.inputs)}), received {len(inputs)}.")
        values: dict[str, Any] = {"": None}
        values.update(zip(self.inputs, (as_tensor(x) for x in inputs)))
        for kind, what, names, outputs, args in self._steps:
            if kind == "layer":
                result = self._modules[what](values[names[0]])
            elif kind == "constant":
                result = Tensor(self._buffers[what])
            else:
                result = OPERATIONS[what](*(values[n] for n in names), **args)
            values[outputs[0]] = result
        results = tuple(values[o] for o in self.outputs)
        return results[0] if len(results) == 1 else results

    def extra_repr(self) -> str:
        return f"{len(self._steps)} nodes"


def _tuples(value):
    """JSON lists back to the tuples the layers take (``padding=((1, 0), (2, 2))``)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def onnx_graph(in_channels: int = 1, num_classes: int = 10, input_size: int = 28, *,
               graph: dict[str, Any]) -> GraphNet:
    """The builder that checkpoints of imported networks name: ``in_channels``,
    ``num_classes`` and ``input_size`` describe the graph's input and output (for the tools
    that read them), ``graph`` is the network."""
    check_model_args("onnx_graph", in_channels, num_classes, input_size)
    return GraphNet(graph)
