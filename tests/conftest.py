"""Shared test helpers: seeded inputs and the torch switch."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def randn(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


@pytest.fixture(autouse=True, scope="session")
def _torch_single_thread():
    """Tiny conformance ops run faster, and less noisily, on one torch thread on 2 cores."""
    try:
        import torch
    except ImportError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def numpy_kernels():
    """The NumPy reference path only (the rule as it is without the compiled kernels)."""
    from cnnlab.ops.kernels import forced_kernels
    with forced_kernels("numpy"):
        yield
