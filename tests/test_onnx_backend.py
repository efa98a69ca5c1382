"""ONNX's own conformance suite (``onnx.backend.test`` node tests) on cnnlab, for every op that
``cnnlab import`` supports. A test whose graph cnnlab cannot express is skipped with the reason
(``pytest -rs`` lists them); every other test must give ONNX's expected outputs.

Only the node-test modules of these ops are generated (importing one runs its exports), not all
of ONNX's ~1,500 cases, so the suite takes seconds."""

from __future__ import annotations

import importlib
from unittest import mock

import pytest

pytest.importorskip("onnx")
runner = pytest.importorskip("onnx.backend.test.runner")

from cnnlab.interop.backend import CnnlabBackend  # noqa: E402

#: ONNX's node-test modules of the ops ``cnnlab.interop.onnx_import.SUPPORTED`` lists.
MODULES = ["conv", "convtranspose", "maxpool", "averagepool", "globalaveragepool",
           "globalmaxpool", "batch_normalization", "relu", "leakyrelu", "sigmoid", "tanh",
           "softmax", "logsoftmax", "gemm", "matmul", "add", "sub", "mul", "div", "neg",
           "flatten", "reshape", "pad", "dropout", "identity", "constant"]
OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
       "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
       "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Neg", "Flatten", "Reshape", "Pad",
       "Dropout", "Identity", "Constant"}


def _node_cases():
    from onnx.backend.test.case import node

    for name in MODULES:
        importlib.import_module(f"onnx.backend.test.case.node.{name}")
    # one node of one of our ops on float32 or float64 data (integer, low-precision and
    # sequence variants, and function bodies expanded into other ops, are not these ops)
    def fits(model) -> bool:
        inputs = model.graph.input
        return (len(model.graph.node) == 1 and model.graph.node[0].op_type in OPS
                and all(i.type.HasField("tensor_type") for i in inputs)
                and (not inputs or inputs[0].type.tensor_type.elem_type in (1, 11)))

    return [case for case in node._NodeTestCases if fits(case.model)]


def _loader(kind=None, **kwargs):
    return _node_cases() if kind == "node" else []


with mock.patch.object(runner, "load_model_tests", _loader):
    backend_test = runner.Runner(CnnlabBackend, __name__) if hasattr(runner, "Runner") \
        else runner.BackendTest(CnnlabBackend, __name__)
_classes = backend_test.test_cases                     # (new classes at every access)
for _class in _classes.values():                       # cnnlab runs on the CPU only
    for _name in [n for n in vars(_class) if n.startswith("test_") and not n.endswith("_cpu")]:
        delattr(_class, _name)
del _class, _name
globals().update(_classes)
