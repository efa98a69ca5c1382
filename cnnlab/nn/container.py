"""``Sequential``: layers applied in order, named ``"0"``, ``"1"``, ... as in PyTorch."""

from __future__ import annotations

from collections import OrderedDict

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
        for name, module in self._modules.items():
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
        return x
