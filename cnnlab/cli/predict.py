"""``cnnlab predict``: classify image files with a trained checkpoint."""

from __future__ import annotations

import argparse

import numpy as np

from ..train import predict
from ..train.inference import load_trained, model_inputs
from ._common import positive_int


def add_parser(commands) -> None:
    predict = commands.add_parser("predict", help="classify image files")
    predict.add_argument("checkpoint", metavar="CKPT")
    predict.add_argument("images", metavar="IMAGE", nargs="+")
    predict.add_argument("--top", type=positive_int, default=3, help="classes shown per image")


def run(args: argparse.Namespace) -> int:
    checkpoint, model, normalize = load_trained(args.checkpoint)
    classes = checkpoint.config.get("classes") or [str(i) for i in
                                                   range(checkpoint.model_args["num_classes"])]
    probabilities = predict(model, model_inputs(checkpoint, normalize, args.images))
    top = min(args.top, probabilities.shape[1])
    for path, p in zip(args.images, probabilities):
        order = np.argsort(p)[::-1][:top]
        shown = ", ".join(f"{classes[i]} {p[i]:.1%}" for i in order)
        print(f"{path}: {shown}")
    return 0
