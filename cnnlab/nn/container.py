"""Containers as in PyTorch: ``Sequential`` (layers applied in order, named ``"0"``, ``"1"``, ...),
``ModuleList`` and ``ModuleDict`` (registered, indexed, no forward of their own)."""

from __future__ import annotations

from collections import OrderedDict

from .. import functional as F
from .._validate import _is_int
from .module import Module


class Sequential(Module):
    """Chain of modules; ``Sequential(a, b)(x) == b(a(x))``.

    Accepts modules positionally or one ``OrderedDict`` of named modules. When a layer rejects
    its input, the error names the layer's position and the shape that reached it.

    Example:
        >>> from cnnlab import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(),
        ...                     nn.Linear(4 * 4 * 4, 10))
        >>> list(net.state_dict())
        ['0.weight', '0.bias', '3.weight', '3.bias']
    """

    def __init__(self, *modules: Module | OrderedDict) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, module in items:
            if not isinstance(module, Module):
                raise TypeError(
                    f"Sequential expects Modules, received {type(module).__name__} at "
                    f"position {name}."
                )
            self._modules[name] = module

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice):
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        items = list(self._modules.values())
        if not -len(items) <= index < len(items):
            raise IndexError(f"Sequential has {len(items)} layers, received index {index}.")
        return items[index]

    def append(self, module: Module) -> Sequential:
        self._modules[str(len(self._modules))] = module
        return self

    def forward(self, x):
        items = list(self._modules.items())
        i = 0
        while i < len(items):
            run = _fused_run(items, i)
            if run:
                try:
                    conv = items[i][1]
                    x = F.conv2d_relu(x, *_conv_arguments(conv), pool2=run == 3,
                                      where=conv._where)       # (its errors are the layer's)
                    i += run
                    continue
                except ValueError:
                    pass                       # the layers one by one say what is wrong
            name, module = items[i]
            try:
                x = module(x)
            except ValueError as error:
                shape = getattr(x, "shape", None)
                message = str(error)
                if message.startswith("layer "):
                    raise                      # already located by a nested Sequential
                raise ValueError(
                    f"layer {name} ({type(module).__name__}) received input of shape {shape}: "
                    f"{message}"
                ) from None
            i += 1
        return x


# A Conv2d followed by a ReLU (and a MaxPool2d of kernel and stride 2) runs as one fused step,
# F.conv2d_relu: the same values and gradients, one or two passes over the activations fewer.
# Only layers exactly of these classes, with no hooks and no forward replaced on the instance
# (as the tools that watch every layer do), so that every observer sees every layer.

def _plain(module: Module, kind: type) -> bool:
    return (type(module) is kind and "forward" not in module.__dict__
            and not (module._forward_pre_hooks or module._forward_hooks
                     or module._backward_hooks))


def _fused_run(items: list, i: int) -> int:
    """How many layers from ``items[i]`` run fused: 3 (Conv2d, ReLU, 2×2 MaxPool2d), 2
    (Conv2d, ReLU) or 0."""
    if not (i + 1 < len(items) and _plain(items[i][1], _Conv2d) and _plain(items[i + 1][1], _ReLU)):
        return 0
    pool = items[i + 2][1] if i + 2 < len(items) else None
    if (pool is not None and _plain(pool, _MaxPool2d) and not pool.ceil_mode
            and not pool.return_indices and _pair_is(pool.kernel_size, 2)
            and _pair_is(pool.stride, 2) and _pair_is(pool.padding, 0)
            and _pair_is(pool.dilation, 1)):
        return 3
    return 2


def _pair_is(value, want: int) -> bool:
    """Whether a pooling argument (an int, a pair, or another form) is ``(want, want)``."""
    return value == want or (isinstance(value, (tuple, list)) and list(value) == [want] * 2)


def _conv_arguments(conv) -> tuple:
    """A Conv2d's arguments for ``F.conv2d_relu`` after the input."""
    return (conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups,
            conv.padding_mode)


def _check_module(module, container: str, where) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{container} holds Modules, received {type(module).__name__} at "
                        f"{where!r}.")
    return module


class ModuleList(Module):
    """A list of modules whose parameters the parent registers, keyed ``"0"``, ``"1"``, ...

    As in torch, it has no ``forward``: the parent's ``forward`` loops over it, and a model
    holding ``self.layers = nn.ModuleList(...)`` has state_dict keys ``"layers.0.weight"``...

    Example:
        >>> from cnnlab import nn
        >>> class Stack(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
        ...     def forward(self, x):
        ...         for layer in self.layers:
        ...             x = layer(x).relu()
        ...         return x
        >>> list(Stack().state_dict())
        ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']
    """

    def __init__(self, modules=None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, index: int) -> int:
        if not _is_int(index):
            raise TypeError(f"ModuleList indices must be ints or slices, received {index!r}.")
        if not -len(self) <= index < len(self):
            raise IndexError(f"ModuleList has {len(self)} modules, received index {index}.")
        return index % len(self)

    def __getitem__(self, index: int | slice):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return self._modules[str(self._index(index))]

    def __setitem__(self, index: int, module: Module) -> None:
        self._modules[str(self._index(index))] = _check_module(module, "ModuleList", index)

    def __delitem__(self, index: int | slice) -> None:
        modules = list(self._modules.values())
        del modules[index if isinstance(index, slice) else self._index(index)]
        self._modules.clear()
        self.extend(modules)                             # renumbered "0", "1", ... as in torch

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules) -> ModuleList:
        return self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        self._modules[str(len(self))] = _check_module(module, "ModuleList", len(self))
        return self

    def extend(self, modules) -> ModuleList:
        if isinstance(modules, Module) and not isinstance(modules, (ModuleList, Sequential)):
            raise TypeError("ModuleList.extend expects an iterable of Modules, received one "
                            f"{type(modules).__name__}; use append.")
        for module in list(modules):
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules.insert(index, _check_module(module, "ModuleList", index))
        self._modules.clear()
        self.extend(modules)


class ModuleDict(Module):
    """A dict of named modules, registered in insertion order (keys ``"<name>.weight"``...).

    Example:
        >>> from cnnlab import nn
        >>> heads = nn.ModuleDict({"digit": nn.Linear(8, 10), "parity": nn.Linear(8, 2)})
        >>> list(heads), list(heads.state_dict())[:2]
        (['digit', 'parity'], ['digit.weight', 'digit.bias'])
    """

    def __init__(self, modules=None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no module {key!r}; it holds {list(self._modules)}.")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict keys must be non-empty strings without '.', received "
                           f"{key!r}.")
        self._modules[key] = _check_module(module, "ModuleDict", key)

    def __delitem__(self, key: str) -> None:
        self[key]                                              # the error for a missing key
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self._modules[key]
        return module

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules) -> None:
        """Add ``(name, module)`` pairs from a mapping (or ModuleDict) or an iterable of pairs."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for pair in pairs:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(f"ModuleDict.update expects a mapping or (name, module) pairs, "
                                f"received {pair!r:.60}.")
            self[pair[0]] = pair[1]


from .activation import ReLU as _ReLU  # noqa: E402  (these modules import this one's package)
from .conv import Conv2d as _Conv2d  # noqa: E402
from .pool import MaxPool2d as _MaxPool2d  # noqa: E402
