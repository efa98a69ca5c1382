"""``Module``: the base of every layer and model, with PyTorch's bookkeeping.

Attributes that are :class:`Parameter`s, sub-``Module``s or registered buffers are found by
``named_parameters``/``state_dict`` in registration order, so the keys (``"0.weight"``,
``"features.3.bias"``, ``"bn.running_mean"``...) are those the same ``torch.nn`` model produces.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..autograd.tensor import Tensor
from . import hooks
from .parameter import Parameter


class Module:
    """Base class: subclass it, assign layers and Parameters in ``__init__``, write ``forward``.

    Example:
        >>> from cnnlab import nn
        >>> class Tiny(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc = nn.Linear(4, 2)
        ...     def forward(self, x):
        ...         return self.fc(x)
        >>> list(Tiny().state_dict())
        ['fc.weight', 'fc.bias']
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", {})
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "_backward_hooks", {})

    # ------------------------------------------------------------ attribute registry
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}.__init__ must call super().__init__() before assigning "
                f"attributes (while setting {name!r})."
            )
        if isinstance(value, Parameter):
            target = self._parameters
        elif isinstance(value, Module):
            target = self._modules
        elif name in self.__dict__.get("_buffer_names", ()):
            target = self._buffers
        else:
            for registry in (self._parameters, self._buffers, self._modules):
                registry.pop(name, None)
            object.__setattr__(self, name, value)
            return
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not target:
                registry.pop(name, None)
        target[name] = value            # an existing key keeps its place (state_dict order)
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str):
        for registry in ("_parameters", "_buffers", "_modules"):
            table = self.__dict__.get(registry)
            if table is not None and name in table:
                return table[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """A state array that is saved in ``state_dict`` but not trained (e.g. running means)."""
        names = self.__dict__.setdefault("_buffer_names", set())
        names.add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = value

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the child ``name`` (as ``setattr``; torch's spelling)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"module names must be non-empty strings without '.', received "
                           f"{name!r}.")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module expects a Module or None, received "
                            f"{type(module).__name__}.")
        self.__dict__.pop(name, None)
        self._modules[name] = module

    def register_parameter(self, name: str, value: Parameter | None) -> None:
        if value is None:
            self._parameters[name] = None
            self.__dict__.pop(name, None)
        else:
            setattr(self, name, value)

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward().")

    def __call__(self, *args, **kwargs):
        pre, post, backward = (self._forward_pre_hooks, self._forward_hooks,
                               self._backward_hooks)
        if not (pre or post or backward):
            return self.forward(*args, **kwargs)
        for hook in tuple(pre.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        if backward:
            output = hooks.call_with_backward_hooks(self, backward, args, kwargs)
        else:
            output = self.forward(*args, **kwargs)
        for hook in tuple(post.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    # ------------------------------------------------------------ hooks (as in torch)
    def register_forward_pre_hook(self, hook) -> hooks.RemovableHandle:
        """``hook(module, args)`` runs before ``forward``; returning a value replaces ``args``
        (a non-tuple becomes the single argument). Hooks run in registration order."""
        return hooks.add_hook(self._forward_pre_hooks, hook, "forward_pre")

    def register_forward_hook(self, hook) -> hooks.RemovableHandle:
        """``hook(module, args, output)`` runs after ``forward``; returning a value replaces
        ``output``. ``handle.remove()`` unregisters it.

        Example:
            >>> import numpy as np
            >>> from cnnlab import nn
            >>> net, shapes = nn.Sequential(nn.Linear(3, 2), nn.ReLU()), []
            >>> handle = net[0].register_forward_hook(lambda m, a, out: shapes.append(out.shape))
            >>> _ = net(np.ones((4, 3), np.float32)); handle.remove()
            >>> _ = net(np.ones((4, 3), np.float32)); shapes
            [(4, 2)]
        """
        return hooks.add_hook(self._forward_hooks, hook, "forward")

    def register_full_backward_hook(self, hook) -> hooks.RemovableHandle:
        """``hook(module, grad_input, grad_output)`` runs once the gradient with respect to the
        module's inputs is known (tuples of ndarrays, ``None`` where there is none); returning
        a tuple replaces ``grad_input``. For modules with at most one input that requires a
        gradient and one Tensor output (torch also supports several)."""
        return hooks.add_hook(self._backward_hooks, hook, "full_backward")

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        for path, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{path}.{name}" if path else name), p

    def parameters(self) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters())

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for path, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{path}.{name}" if path else name), b

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed like ``torch.nn``'s ``state_dict``."""
        state: dict[str, np.ndarray] = {}
        for path, module in self.named_modules():
            dot = f"{path}." if path else ""
            for name, p in module._parameters.items():
                if p is not None:
                    state[dot + name] = p.data.copy()
            for name, b in module._buffers.items():
                if b is not None:
                    state[dot + name] = np.array(b, copy=True)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers; shapes must match exactly.

        With ``strict`` (the default) the key sets must be equal; the error lists the missing
        and unexpected keys.
        """
        targets: dict[str, tuple[Module, str, str]] = {}
        for path, module in self.named_modules():
            dot = f"{path}." if path else ""
            for name, p in module._parameters.items():
                if p is not None:
                    targets[dot + name] = (module, name, "parameter")
            for name, b in module._buffers.items():
                if b is not None:
                    targets[dot + name] = (module, name, "buffer")
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise ValueError(
                f"load_state_dict: state does not fit {type(self).__name__}: missing keys "
                f"{missing or 'none'}, unexpected keys {unexpected or 'none'}."
            )
        for key, (module, name, kind) in targets.items():
            if key not in state:
                continue
            value = np.asarray(state[key].data if isinstance(state[key], Tensor) else state[key])
            current = module._parameters[name] if kind == "parameter" else module._buffers[name]
            current_shape = np.shape(current.data if kind == "parameter" else current)
            if value.shape != current_shape:
                raise ValueError(
                    f"load_state_dict: {key!r} expected shape {current_shape}, received "
                    f"{value.shape}."
                )
            target = current.data if kind == "parameter" else current
            np.copyto(target, value, casting="unsafe")         # in place, like torch

    # ------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def to(self, dtype) -> Module:
        """Cast floating-point parameters and buffers (e.g. ``np.float64`` for gradient checks).

        ``model.to("cpu")`` returns the model unchanged: everything lives in host memory.
        """
        if isinstance(dtype, str) and dtype == "cpu":
            return self
        for module in self.modules():
            for p in module._parameters.values():
                if p is not None:
                    p.data, p.grad = p.data.astype(dtype), None
            for name, b in module._buffers.items():
                if b is not None and np.issubdtype(np.asarray(b).dtype, np.floating):
                    module._buffers[name] = np.asarray(b).astype(dtype)
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    def apply(self, fn) -> Module:
        """Call ``fn(module)`` on every submodule, children before their parent (as torch)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------ display
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): {_indent(repr(child))}" for name, child in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")
