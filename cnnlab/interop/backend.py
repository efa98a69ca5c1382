"""An ONNX backend over cnnlab (``onnx.backend.base.Backend``), so ONNX's own conformance
tests (``onnx.backend.test``) can run ONNX graphs on cnnlab's layers.

``prepare`` checks that the graph can be translated; ``run`` translates it with every graph
input but the first taken as a constant of that run (ONNX's node tests feed weights as inputs),
runs the first input through the :class:`~cnnlab.models.GraphNet` and returns the outputs as
arrays. A graph cnnlab cannot express raises ``unittest.SkipTest`` naming the node and why, so
a test runner reports it as skipped as unsupported, with the reason.

Example:
    >>> import numpy as np
    >>> from onnx import helper, TensorProto
    >>> from cnnlab.interop.backend import CnnlabBackend
    >>> node = helper.make_node("Relu", ["x"], ["y"])
    >>> graph = helper.make_graph([node], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    >>> CnnlabBackend.run_model(helper.make_model(graph), [np.array([-1.0, 2.0], np.float32)])
    (array([0., 2.], dtype=float32),)
"""

from __future__ import annotations

import unittest
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autograd.grad_mode import no_grad
from ._deps import require
from .onnx_import import onnx_to_graph

_base = require("onnx.backend.base")


class CnnlabRep(_base.BackendRep):
    """A prepared ONNX model: run it on a list (or dict) of input arrays."""

    def __init__(self, proto) -> None:
        self.proto = proto
        initializers = {t.name for t in proto.graph.initializer}
        self.input_names = [i.name for i in proto.graph.input if i.name not in initializers]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            values = [inputs[name] for name in self.input_names]
        elif isinstance(inputs, (list, tuple)):
            values = list(inputs)
        else:
            values = [inputs]
        if len(values) != len(self.input_names):
            raise ValueError(f"the model takes {len(self.input_names)} inputs "
                             f"({', '.join(self.input_names)}), received {len(values)}.")
        feeds = dict(zip(self.input_names[1:], (np.asarray(v) for v in values[1:])))
        try:
            imported = onnx_to_graph(self.proto, feeds)
            net = imported.build()
        except (ValueError, TypeError) as error:
            raise unittest.SkipTest(f"unsupported by cnnlab: {error}") from None
        first = [np.asarray(values[0])] if values else []
        with no_grad():
            try:
                result = net(*first)
            except (ValueError, TypeError) as error:
                raise unittest.SkipTest(f"unsupported by cnnlab: {error}") from None
        results = result if isinstance(result, tuple) else (result,)
        expected = [o.type.tensor_type.elem_type for o in self.proto.graph.output]
        return tuple(_as_output(r, t) for r, t in zip(results, expected))


def _as_output(value, elem_type: int) -> np.ndarray:
    """An output array in the element type the graph declares (float32 for float32 inputs)."""
    from onnx import helper

    array = np.asarray(getattr(value, "data", value))
    try:
        dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    except (KeyError, TypeError):
        return array
    return array.astype(dtype, copy=False)


class CnnlabBackend(_base.Backend):
    """ONNX's backend interface over cnnlab (CPU, float32/float64)."""

    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs: Any) -> bool:
        return device == "CPU"

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs: Any) -> CnnlabRep:
        super().prepare(model, device, **kwargs)
        return CnnlabRep(model)

    @classmethod
    def run_model(cls, model, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[tuple] | None = None, **kwargs: Any):
        raise _base.BackendIsNotSupposedToImplementIt(
            "cnnlab runs whole graphs; use run_model.")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


prepare = CnnlabBackend.prepare
run_model = CnnlabBackend.run_model
supports_device = CnnlabBackend.supports_device
