"""Helpers shared by several test files."""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab.cli import main

# The lecture's 56 worked examples, every value recomputed (see the README beside the file).
LECTURE_EXAMPLES = json.loads((Path(__file__).parent / "data" / "lecture_examples.json")
                              .read_text())


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``cnnlab ARGV``: exit status (argparse errors and --help too), stdout, stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@contextlib.contextmanager
def strict_numerics():
    """Overflow, 0/0, x/0 and every warning are errors (underflow to 0 is the right answer)."""
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        yield


def close(actual, expected, tol: float = 1e-9):
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def check_torch(ours, theirs, arrays, seed: int = 0):
    """Forward and every input gradient of ``ours`` vs ``theirs`` in float64, to 1e-9."""
    torch = pytest.importorskip("torch")
    xs = [cnnlab.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, yt = ours(*xs), theirs(*ts)
    assert y.shape == tuple(yt.shape)
    close(y.data, yt.detach().numpy())
    g = np.random.default_rng(seed).standard_normal(y.shape)
    y.backward(g)
    yt.backward(torch.tensor(g))
    for x, t in zip(xs, ts):
        close(x.grad, t.grad.numpy())
