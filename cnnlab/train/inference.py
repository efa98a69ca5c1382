"""A trained checkpoint put to use: its model in eval mode with the input standardisation it was
trained with, images prepared as it takes them, and its accuracy on a test split — shared by
``predict``, ``evaluate``, ``explain model``, ``viz`` and the explorer."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from ..nn import Module
from .checkpoint import Checkpoint, load_checkpoint, restore


def load_trained(path: str | os.PathLike) -> tuple[Checkpoint, Module, Callable]:
    """The checkpoint, its model in eval mode, and the input standardisation it was trained with
    (the identity when the checkpoint records none)."""
    from .. import models
    from ..data.transforms import Normalize

    checkpoint = load_checkpoint(path)
    model = restore(checkpoint, models.get)
    model.eval()
    stats = checkpoint.config.get("normalize")
    try:
        normalize = Normalize(stats["mean"], stats["std"]) if stats else (lambda x: x)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"the checkpoint {path} has an unreadable 'normalize' entry in its "
                         f"description, expected {{\"mean\": [...], \"std\": [...]}}, received "
                         f"{stats!r}.") from None
    return checkpoint, model, normalize


def model_inputs(checkpoint: Checkpoint, normalize: Callable,
                 paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Image files as the checkpoint's model takes them: its channels and size, a light
    background inverted, standardised as in training -> ``(N, C, H, W)``."""
    from ..data import read_image

    in_channels = checkpoint.model_args.get("in_channels", 1)
    size = checkpoint.model_args.get("input_size", 28)
    return normalize(np.stack([read_image(path, channels=in_channels, size=size, invert="auto")
                               for path in paths]))


def evaluate_checkpoint(checkpoint: Checkpoint, model: Module, normalize: Callable,
                        data: str | None = None):
    """``(data name, test set, results)``: the model on a dataset's test split (default: the
    one it was trained on), standardised as in training."""
    from ..data import load_dataset
    from .loop import evaluate

    data_name = data or checkpoint.config.get("data", "digits")
    _, test_set = load_dataset(data_name)
    test_set.images = normalize(test_set.images)
    return data_name, test_set, evaluate(model, test_set, batch_size=256)
