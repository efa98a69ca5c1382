"""Models by name: ``get("small_vgg", in_channels=3)``, so the CLI and checkpoints can name them.

Every registered builder takes ``in_channels``, ``num_classes`` and ``input_size`` keyword
arguments, so any model can be built for any dataset. Names are matched case-insensitively, with
``-`` and ``_`` equivalent (``small-vgg`` is ``small_vgg``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ..nn import Module
from .graph import onnx_graph
from .lecture import lecture_convnet
from .lenet import lenet5
from .resnet import small_resnet
from .vgg import small_vgg

Builder = Callable[..., Module]

_REQUIRED = ("in_channels", "num_classes", "input_size")
_BUILDERS: dict[str, Builder] = {
    "lenet5": lenet5,
    "small_vgg": small_vgg,
    "small_resnet": small_resnet,
    "lecture_convnet": lecture_convnet,
}
# Builders that checkpoints may name but that are not offered for training by name: an imported
# network's graph travels in the checkpoint's model arguments.
_GRAPH_BUILDERS: dict[str, Builder] = {"onnx_graph": onnx_graph}


def _key(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a model name must be a str, received {type(name).__name__} {name!r}.")
    return name.strip().lower().replace("-", "_")


def available() -> list[str]:
    """The registered model names, in registration order.

    Example:
        >>> from cnnlab import models
        >>> models.available()
        ['lenet5', 'small_vgg', 'small_resnet', 'lecture_convnet']
    """
    return list(_BUILDERS)


def get_builder(name: str) -> Builder:
    """The function that builds model ``name`` (to read its signature and defaults).

    Raises:
        ValueError: ``name`` is not registered; the message lists the known names.

    Example:
        >>> from cnnlab import models
        >>> models.get_builder("LeNet5") is models.lenet5
        True
    """
    key = _key(name)
    if key in _GRAPH_BUILDERS:
        return _GRAPH_BUILDERS[key]
    if key not in _BUILDERS:
        raise ValueError(
            f"unknown model {name!r}; available models: {', '.join(_BUILDERS)}."
        )
    return _BUILDERS[key]


def get(name: str, **kwargs) -> Module:
    """Build model ``name`` with keyword arguments ``kwargs`` (see each builder).

    Raises:
        ValueError: an unknown name (the message lists the known ones), or a bad value.
        TypeError: an argument the builder does not take (the message lists those it takes).

    Example:
        >>> from cnnlab import models
        >>> net = models.get("lenet5", in_channels=3, input_size=32, channels=(8, 16))
        >>> net.num_parameters()
        62958
        >>> models.get("small-vgg", num_classes=5)[1][4].out_features
        5
    """
    builder = get_builder(name)
    key = _key(name)
    parameters = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = [arg for arg in kwargs if arg not in parameters]
    if unknown and not takes_any:
        accepted = ", ".join(n for n, p in parameters.items()
                             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        raise TypeError(
            f"model {key!r} has no argument {unknown[0]!r}; it accepts {accepted}."
        )
    return builder(**kwargs)


def register(name: str, builder: Builder, *, overwrite: bool = False) -> None:
    """Add a model builder under ``name`` so :func:`get` (and the CLI) can build it.

    Args:
        name: the model's name (lower case; ``-`` is read as ``_``).
        builder: a callable returning a :class:`~cnnlab.nn.Module`; it must accept the keyword
            arguments ``in_channels``, ``num_classes`` and ``input_size``.
        overwrite: replace a builder already registered under ``name``.

    Example:
        >>> from cnnlab import models, nn
        >>> def tiny(in_channels=1, num_classes=10, input_size=28):
        ...     return nn.Sequential(nn.Flatten(),
        ...                          nn.Linear(in_channels * input_size**2, num_classes))
        >>> models.register("tiny_mlp", tiny)
        >>> models.get("tiny_mlp", num_classes=3).num_parameters()
        2355
        >>> models.unregister("tiny_mlp")
    """
    key = _key(name)
    if not key.isidentifier():
        raise ValueError(
            f"a model name must be letters, digits, '_' or '-', received {name!r}."
        )
    if not callable(builder):
        raise TypeError(f"builder for {key!r} must be callable, received {builder!r}.")
    parameters = inspect.signature(builder).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        missing = [arg for arg in _REQUIRED if arg not in parameters]
        if missing:
            raise TypeError(
                f"builder for {key!r} must accept the keyword arguments "
                f"{', '.join(_REQUIRED)}; it lacks {', '.join(missing)}."
            )
    if key in _BUILDERS and not overwrite:
        raise ValueError(f"a model named {key!r} is already registered; pass overwrite=True.")
    _BUILDERS[key] = builder


def unregister(name: str) -> None:
    """Remove a model added with :func:`register` (an unknown name raises ``ValueError``)."""
    get_builder(name)
    del _BUILDERS[_key(name)]
