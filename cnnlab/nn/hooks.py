"""Module hooks as in torch: handles that remove them, and the wiring of full backward hooks.

A full backward hook ``hook(module, grad_input, grad_output)`` runs when the gradient with
respect to the module's inputs has been computed. cnnlab places two identity steps in the graph
around the module's ``forward``: one on its output records ``grad_output``, one on its input
calls the hooks with ``grad_input`` (one entry per positional argument, ``None`` for arguments
that are not tensors requiring a gradient) and passes on what they return.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor, record

_ids = itertools.count()


class RemovableHandle:
    """Returned by ``register_*_hook``: ``handle.remove()`` unregisters the hook (also usable
    as a context manager: the hook is removed when the ``with`` block ends)."""

    def __init__(self, registry: dict[int, Callable]) -> None:
        self.id = next(_ids)
        self._registry = registry

    def remove(self) -> None:
        self._registry.pop(self.id, None)          # a second remove() does nothing

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def add_hook(registry: dict[int, Callable], hook: Callable, kind: str) -> RemovableHandle:
    if not callable(hook):
        raise TypeError(f"register_{kind}_hook expects a callable, received "
                        f"{type(hook).__name__}.")
    handle = RemovableHandle(registry)
    registry[handle.id] = hook
    return handle


def call_with_backward_hooks(module, hooks: dict[int, Callable], args: tuple, kwargs: dict):
    """``module.forward(*args, **kwargs)`` with the full backward ``hooks`` wired around it."""
    if not is_grad_enabled():
        return module.forward(*args, **kwargs)
    needing = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
    if len(needing) > 1:
        raise NotImplementedError(
            f"register_full_backward_hook supports modules called with at most one input that "
            f"requires a gradient; {type(module).__name__} received {len(needing)}."
        )
    grad_output: list = []

    def run_hooks(grad_input: tuple) -> tuple:
        for hook in tuple(hooks.values()):
            result = hook(module, grad_input, tuple(grad_output))
            if result is not None:
                result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
                if len(result) != len(grad_input):
                    raise RuntimeError(
                        f"a backward hook of {type(module).__name__} returned {len(result)} "
                        f"gradients for {len(grad_input)} inputs."
                    )
                grad_input = result
        return grad_input

    args = list(args)
    for i in needing:
        x = args[i]

        def input_step(dy, i=i):
            grad_input = run_hooks(tuple(dy if j == i else None for j in range(len(args))))
            g = grad_input[i]
            return (None if g is None else getattr(g, "data", g),)

        args[i] = record(x.data, (x,), input_step)
    output = module.forward(*args, **kwargs)
    if not isinstance(output, Tensor):
        raise NotImplementedError(
            f"register_full_backward_hook supports modules that return one Tensor; "
            f"{type(module).__name__} returned {type(output).__name__}."
        )

    def output_step(dy):
        grad_output[:] = [dy]
        if not needing:                      # no input gradient will come: fire now, as torch
            run_hooks((None,) * len(args))
        return (dy,)

    return record(output.data, (output,), output_step)
