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


INVERT_CHOICES = ("auto", "never", "always")


def model_inputs(checkpoint: Checkpoint, normalize: Callable,
                 paths: Sequence[str | os.PathLike], *, invert: str = "auto",
                 max_pixels: int | None = None) -> np.ndarray:
    """Image files as the checkpoint's model takes them: its channels and size, inverted when
    their background is the opposite of the training images', standardised as in training ->
    ``(N, C, H, W)``.

    ``invert``: ``"auto"`` inverts an image whose border is light (mean above 0.5) when the
    training images' border was dark, and a dark one when it was light (the checkpoint's
    ``border_mean``; a checkpoint without it was trained on dark backgrounds, as MNIST);
    ``"never"`` and ``"always"`` override that.
    """
    from ..data.images import border_mean, read_image

    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {', '.join(INVERT_CHOICES)}, received "
                         f"{invert!r}.")
    in_channels = checkpoint.model_args.get("in_channels", 1)
    size = checkpoint.model_args.get("input_size", 28)
    trained_light = float(checkpoint.config.get("border_mean", 0.0)) > 0.5
    images = []
    for path in paths:
        x = read_image(path, channels=in_channels, size=size, max_pixels=max_pixels)
        light = border_mean(x) > 0.5
        if invert == "always" or (invert == "auto" and light != trained_light):
            x = 1 - x
        images.append(x)
    return normalize(np.stack(images))


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
