"""models.GraphNet, the form of an imported network: wiring by name, branches, its checkpoint
(rebuilt by name from JSON, no ONNX package needed), and its errors in one sentence."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import models
from cnnlab.models import GraphNet
from cnnlab.train.checkpoint import save_checkpoint
from cnnlab.train.inference import load_trained

GRAPH = {"inputs": ["x"], "outputs": ["y"], "nodes": [
    {"layer": "Conv2d", "name": "stem.conv", "inputs": ["x"], "outputs": ["a"],
     "args": {"in_channels": 1, "out_channels": 2, "kernel_size": [3, 3],
              "padding": [[1, 0], [0, 1]]}},
    {"layer": "ReLU", "name": "relu", "args": {}, "inputs": ["a"], "outputs": ["b"]},
    {"op": "constant", "name": "constant0", "shape": [1, 2, 1, 1], "outputs": ["k"]},
    {"op": "mul", "inputs": ["b", "k"], "outputs": ["c"]},
    {"op": "add", "inputs": ["c", "a"], "outputs": ["d"]},                 # merge
    {"op": "pad", "inputs": ["d"], "outputs": ["e"],
     "args": {"pads": [0, 0, 1, 0, 0, 0, 0, 1], "mode": "edge"}},
    {"op": "global_max_pool", "inputs": ["e"], "outputs": ["f"]},
    {"op": "reshape", "inputs": ["f"], "outputs": ["g"], "args": {"shape": [0, -1]}},
    {"layer": "Linear", "name": "fc", "inputs": ["g"], "outputs": ["y"],
     "args": {"in_features": 2, "out_features": 3}},
]}


def _by_hand(net, x):
    conv, fc = net._modules["stem.conv"], net._modules["fc"]
    a = conv(x).data
    d = np.maximum(a, 0) * net._buffers["constant0"] + a
    e = np.pad(d, ((0, 0), (0, 0), (1, 0), (0, 1)), mode="edge")
    f = e.max(axis=(2, 3))
    return f @ fc.weight.data.T + fc.bias.data


def test_a_graph_runs_its_branches_and_keeps_layer_names():
    net = GraphNet(GRAPH)
    net.load_state_dict({**net.state_dict(), "constant0": np.array([2.0, -1.0],
                                                                   np.float32).reshape(1, 2, 1, 1)})
    x = np.random.default_rng(0).normal(size=(4, 1, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(net(x).data, _by_hand(net, x), rtol=1e-6, atol=1e-6)
    assert list(net.state_dict()) == ["constant0", "stem.conv.weight", "stem.conv.bias",
                                      "fc.weight", "fc.bias"]


def test_its_checkpoint_is_rebuilt_by_name(tmp_path):
    net = GraphNet(GRAPH).eval()
    path = save_checkpoint(tmp_path / "model", net, model_name="onnx_graph", epoch=0,
                           model_args={"in_channels": 1, "num_classes": 3, "input_size": 5,
                                       "graph": GRAPH})
    _, back, _ = load_trained(path)
    x = np.random.default_rng(1).normal(size=(2, 1, 5, 5)).astype(np.float32)
    assert np.array_equal(back(x).data, net(x).data)
    assert "onnx_graph" not in models.available()


@pytest.mark.parametrize("change, message", [
    ({"nodes": [{"layer": "Conv9d", "name": "c", "inputs": ["x"], "outputs": ["y"]}]},
     r"GraphNet: node 0 names an unknown layer 'Conv9d'\."),
    ({"nodes": [{"op": "einsum", "inputs": ["x"], "outputs": ["y"]}]},
     r"GraphNet: node 0 has an unknown operation 'einsum'; known: add, "),
    ({"nodes": [{"op": "add", "inputs": ["x", "z"], "outputs": ["y"]}]},
     r"GraphNet: node 0 \(add\) reads 'z' before any node makes it\."),
    ({"nodes": [{"op": "identity", "inputs": ["x"], "outputs": ["w"]}]},
     r"GraphNet: the graph output 'y' is made by no node\."),
    ({"nodes": [{"op": "constant", "name": "c", "shape": [2 ** 20, 2 ** 20],
                 "outputs": ["y"]}]},
     r"GraphNet: constant 'c' must have a shape of at most 268,435,456 values"),
])
def test_mistakes_are_one_sentence(change, message):
    with pytest.raises(ValueError, match=message):
        GraphNet({"inputs": ["x"], "outputs": ["y"], **change})
    with pytest.raises(ValueError, match=r"GraphNet expected 1 input\(s\) \(x\), received 2"):
        GraphNet({"inputs": ["x"], "outputs": ["x"], "nodes": []})(1.0, 2.0)
