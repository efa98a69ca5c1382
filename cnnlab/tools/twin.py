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
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import nn
from ..nn.conv import _ConvNd
from ..nn.norm import _BatchNorm
from ..nn.pool import _AdaptiveAvgPoolNd, _AvgPoolNd, _MaxPoolNd


def _conv(layer: _ConvNd, cls: Any) -> Any:
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


def _avg_pool(layer: _AvgPoolNd, cls: Any) -> Any:
    override = () if layer.divisor_override is None else (layer.divisor_override,)
    return cls(layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
               layer.count_include_pad, *override)          # AvgPool1d has no override


# How to build each layer family's torch twin, given the torch class of the same name.
_BUILDERS: tuple[tuple[type, Callable[[Any, Any], Any]], ...] = (
    (_ConvNd, _conv),
    (_MaxPoolNd, lambda m, cls: cls(m.kernel_size, m.stride, m.padding, m.dilation,
                                    ceil_mode=m.ceil_mode)),
    (_AvgPoolNd, _avg_pool),
    (_AdaptiveAvgPoolNd, lambda m, cls: cls(m.output_size)),
    (_BatchNorm, lambda m, cls: cls(m.num_features, eps=m.eps, momentum=m.momentum,
                                    affine=m.affine,
                                    track_running_stats=m.track_running_stats)),
    (nn.Linear, lambda m, cls: cls(m.in_features, m.out_features, bias=m.bias is not None)),
    (nn.Flatten, lambda m, cls: cls(m.start_dim, m.end_dim)),
    (nn.Dropout, lambda m, cls: cls(m.p)),
    (nn.LeakyReLU, lambda m, cls: cls(m.negative_slope)),
    ((nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Identity), lambda m, cls: cls()),
)


def _layer(layer: nn.Module, torch: Any) -> Any:
    tnn = torch.nn
    if isinstance(layer, nn.Sequential):
        return tnn.Sequential(OrderedDict((name, _layer(child, torch))
                                          for name, child in layer.named_children()))
    # Every cnnlab layer has the name of its torch.nn counterpart (Conv2d, MaxPool3d, ...).
    cls = getattr(tnn, type(layer).__name__, None)
    for family, build in _BUILDERS:
        if cls is not None and isinstance(layer, family):
            return build(layer, cls)
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
