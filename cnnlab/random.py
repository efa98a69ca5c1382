"""The random source behind weight initialisation and dropout; ``manual_seed`` makes runs repeat.

>>> import cnnlab
>>> cnnlab.manual_seed(0)
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reseed the generator used by ``nn.init`` and ``F.dropout``."""
    global _generator
    _generator = np.random.default_rng(seed)


def default_generator() -> np.random.Generator:
    return _generator


def get_state() -> dict:
    """The generator's state as plain JSON-friendly data (for checkpoints)."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    _generator.bit_generator.state = state
