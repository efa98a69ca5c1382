"""``cnnlab predict``: classify image files with a trained checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..train import predict
from ..train.inference import load_trained, model_inputs
from ._common import UsageError, add_image_options, positive_int


def add_parser(commands) -> None:
    predict = commands.add_parser("predict", help="classify image files")
    predict.add_argument("checkpoint", metavar="CKPT")
    predict.add_argument("images", metavar="IMAGE", nargs="+",
                         help="image files, or folders (every image in them, sorted by name)")
    predict.add_argument("--top", type=positive_int, default=3, help="classes shown per image")
    add_image_options(predict)


def run(args: argparse.Namespace) -> int:
    checkpoint, model, normalize = load_trained(args.checkpoint)
    classes = checkpoint.config.get("classes") or [str(i) for i in
                                                   range(checkpoint.model_args["num_classes"])]
    paths = _image_paths(args.images)
    probabilities = predict(model, model_inputs(checkpoint, normalize, paths, invert=args.invert,
                                                max_pixels=args.max_pixels))
    top = min(args.top, probabilities.shape[1])
    for path, p in zip(paths, probabilities):
        order = np.argsort(p)[::-1][:top]
        shown = ", ".join(f"{classes[i]} {p[i]:.1%}" for i in order)
        print(f"{path}: {shown}")
    return 0


def _image_paths(arguments: list[str]) -> list[str]:
    """Each IMAGE argument, a folder replaced by the image files in it (sorted by name)."""
    from ..data.images import IMAGE_EXTENSIONS, image_files

    paths = []
    for argument in arguments:
        if Path(argument).expanduser().is_dir():
            found = image_files(Path(argument).expanduser())
            if not found:
                raise UsageError(f"the folder {argument} holds no image files (expected files "
                                 f"ending in {', '.join(sorted(IMAGE_EXTENSIONS))}).")
            paths += [str(f) for f in found]
        else:
            paths.append(argument)
    return paths
