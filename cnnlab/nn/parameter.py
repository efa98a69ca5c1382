"""``Parameter``: a Tensor that a Module owns and an optimiser updates."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from ..autograd.tensor import Tensor

# [elements allowed, elements created so far, what is being built] inside parameter_limit.
_limit: contextvars.ContextVar[list | None] = contextvars.ContextVar("parameter_limit",
                                                                    default=None)


@contextlib.contextmanager
def parameter_limit(max_elements: int, what: str) -> Iterator[None]:
    """Refuse to create more than ``max_elements`` parameter elements inside the block.

    Building a model from untrusted arguments (a checkpoint's ``input_size: 1000000``) then
    stops with a ``ValueError`` at the first parameter over the limit, before its memory is
    filled, instead of allocating gigabytes. ``what`` names the build in the message.

    Example:
        >>> import numpy as np
        >>> with parameter_limit(10, "the test model"):
        ...     Parameter(np.zeros(20))
        Traceback (most recent call last):
        ...
        ValueError: the test model would create more than 10 parameters (20 so far).
    """
    token = _limit.set([max_elements, 0, what])
    try:
        yield
    finally:
        _limit.reset(token)


class Parameter(Tensor):
    """A leaf Tensor with ``requires_grad=True`` that :class:`Module` registers automatically."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        limit = _limit.get()
        if limit is not None:
            limit[1] += int(getattr(data, "size", 1))
            if limit[1] > limit[0]:
                raise ValueError(f"{limit[2]} would create more than {limit[0]:,} parameters "
                                 f"({limit[1]:,} so far).")
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
