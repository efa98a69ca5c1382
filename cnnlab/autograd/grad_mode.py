"""Switch gradient recording off inside ``with no_grad():`` (evaluation, optimiser updates)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def _set_grad_enabled(enabled: bool) -> Iterator[None]:
    previous = is_grad_enabled()
    _state.enabled = enabled
    try:
        yield
    finally:
        _state.enabled = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager (or decorator) in which no operation records a backward step.

    >>> import cnnlab
    >>> w = cnnlab.tensor([1.0, 2.0], requires_grad=True)
    >>> with cnnlab.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """
    return _set_grad_enabled(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    return _set_grad_enabled(True)
