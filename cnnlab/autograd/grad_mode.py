"""Switch gradient recording off inside ``with no_grad():`` (evaluation, optimiser updates).

The switch is per thread. ``no_grad`` and ``enable_grad`` work as context managers and as
decorators (``@no_grad()`` or ``@no_grad``), nest, and restore the previous state on exit,
also when the block raises.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_state = threading.local()
F = TypeVar("F", bound=Callable[..., Any])


def is_grad_enabled() -> bool:
    """Whether operations on tensors that require grad record their backward step now."""
    return getattr(_state, "enabled", True)


class _GradMode:
    """Set the recording switch to ``enabled`` for a ``with`` block or a decorated function."""

    enabled: bool

    def __new__(cls, func: Callable | None = None):
        if func is not None:                    # bare decorator: @no_grad
            return cls()(func)
        return super().__new__(cls)

    def __init__(self, func: Callable | None = None):
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(is_grad_enabled())
        _state.enabled = self.enabled

    def __exit__(self, *exc_info: object) -> None:
        _state.enabled = self._previous.pop()

    def __call__(self, func: F) -> F:
        mode = type(self)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with mode():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):  # noqa: N801 (PyTorch's name)
    """Context manager (or decorator) in which no operation records a backward step.

    >>> import cnnlab
    >>> w = cnnlab.tensor([1.0, 2.0], requires_grad=True)
    >>> with cnnlab.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    enabled = False


class enable_grad(_GradMode):  # noqa: N801 (PyTorch's name)
    """Turn recording back on inside a ``no_grad`` block (context manager or decorator).

    >>> import cnnlab
    >>> w = cnnlab.tensor([1.0], requires_grad=True)
    >>> with cnnlab.no_grad(), cnnlab.enable_grad():
    ...     (w * 2).requires_grad
    True
    """

    enabled = True
