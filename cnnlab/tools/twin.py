"""The identical PyTorch model of a cnnlab model: same layers, same weights (for comparisons).

PyTorch is never a dependency of cnnlab; the caller passes the imported ``torch`` module. The
twin is built layer by layer from the cnnlab modules' own settings, and the weights move through
``state_dict`` (whose keys and shapes match by design), so both compute the same function.

Example:
    >>> import cnnlab
    >>> torch = __import__("pytest").importorskip("torch")
    >>> twin = torch_twin(cnnlab.models.lenet5(), torch)
    >>> type(twin).__name__, len(twin)
    ('Sequential', 12)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from .. import nn


def _conv(layer: nn.Module, tnn: Any) -> Any:
    cls = {(False, 1): tnn.Conv1d, (False, 2): tnn.Conv2d, (False, 3): tnn.Conv3d,
           (True, 1): tnn.ConvTranspose1d, (True, 2): tnn.ConvTranspose2d,
           (True, 3): tnn.ConvTranspose3d}[(layer.transposed, layer.nd)]
    padding = layer.padding
    if not isinstance(padding, str) and any(isinstance(p, tuple) for p in padding):
        raise TypeError(f"torch_twin: {layer._where} has asymmetric padding {padding}, which "
                        f"torch's conv layers cannot express.")
    kwargs = dict(stride=layer.stride, padding=padding, dilation=layer.dilation,
                  groups=layer.groups, bias=layer.bias is not None)
    if layer.transposed:
        kwargs["output_padding"] = layer.output_padding
    else:
        kwargs["padding_mode"] = layer.padding_mode
    return cls(layer.in_channels, layer.out_channels, layer.kernel_size, **kwargs)


def _layer(layer: nn.Module, torch: Any) -> Any:
    tnn = torch.nn
    if isinstance(layer, nn.Sequential):
        return tnn.Sequential(OrderedDict((name, _layer(child, torch))
                                          for name, child in layer.named_children()))
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)):
        return _conv(layer, tnn)
    if isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        return getattr(tnn, type(layer).__name__)(layer.kernel_size, layer.stride,
                                                  layer.padding, layer.dilation,
                                                  ceil_mode=layer.ceil_mode)
    if isinstance(layer, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return getattr(tnn, type(layer).__name__)(layer.kernel_size, layer.stride,
                                                  layer.padding, layer.ceil_mode,
                                                  layer.count_include_pad)
    if isinstance(layer, nn.AdaptiveAvgPool2d):
        return tnn.AdaptiveAvgPool2d(layer.output_size)
    if isinstance(layer, nn.Linear):
        return tnn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return getattr(tnn, type(layer).__name__)(layer.num_features, eps=layer.eps,
                                                  momentum=layer.momentum)
    if isinstance(layer, nn.Flatten):
        return tnn.Flatten(layer.start_dim, layer.end_dim)
    if isinstance(layer, nn.Dropout):
        return tnn.Dropout(layer.p)
    if isinstance(layer, nn.LeakyReLU):
        return tnn.LeakyReLU(layer.negative_slope)
    simple = {nn.ReLU: "ReLU", nn.Sigmoid: "Sigmoid", nn.Tanh: "Tanh", nn.Identity: "Identity"}
    for cls, name in simple.items():
        if type(layer) is cls:
            return getattr(tnn, name)()
    raise TypeError(f"torch_twin: no PyTorch counterpart is known for {type(layer).__name__}.")


def torch_twin(model: nn.Module, torch: Any) -> Any:
    """A ``torch.nn`` model computing what ``model`` computes, with a copy of its weights.

    Args:
        model: a cnnlab model made of ``nn.Sequential`` and the standard layers (residual
            models with their own ``forward`` have no generic twin).
        torch: the imported ``torch`` module.

    Returns:
        The float32 ``torch.nn`` model, in the same train/eval mode as ``model``.
    """
    twin = _layer(model, torch)
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32 if np.asarray(v).dtype.kind == "f"
                                          else None))
             for k, v in model.state_dict().items()}
    twin.load_state_dict(state)
    twin.train(model.training)
    return twin
