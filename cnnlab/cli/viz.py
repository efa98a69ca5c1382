"""``cnnlab viz``: pictures of a trained model (the work: ``cnnlab.tools.viz``; matplotlib)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..train.inference import evaluate_checkpoint, load_trained, model_inputs
from ._common import Parser, UsageError, add_image_options, check_writable, positive_int


def add_parser(commands) -> None:
    viz = commands.add_parser(
        "viz", help="pictures: filters, feature maps, training curves, confusion matrix",
        description="Save a picture (PNG) of a trained model; needs matplotlib "
        "(pip install 'cnnlab[viz]').")
    pictures = viz.add_subparsers(dest="what", required=True, parser_class=Parser)
    bank = pictures.add_parser("filters", help="the kernels of a convolution layer")
    bank.add_argument("checkpoint", metavar="CKPT")
    bank.add_argument("--layer", help="the convolution's name (default: the first)")
    maps = pictures.add_parser("features", help="every layer's feature maps for one image")
    maps.add_argument("checkpoint", metavar="CKPT")
    maps.add_argument("image", metavar="IMAGE")
    maps.add_argument("--channels", type=positive_int, default=8,
                      help="channels shown per layer (default 8)")
    add_image_options(maps)
    curves = pictures.add_parser("curves", help="loss and accuracy per epoch")
    curves.add_argument("run", metavar="RUN", help="a training directory or its history.json")
    confusion = pictures.add_parser("confusion", help="confusion matrix on the test set")
    confusion.add_argument("checkpoint", metavar="CKPT")
    confusion.add_argument("--data", help="dataset (default: the training one)")
    for sub in (bank, maps, curves, confusion):
        sub.add_argument("--out", required=True, metavar="OUT.png")


def run(args: argparse.Namespace) -> int:
    try:
        from ..tools import viz
        viz._pyplot()
    except ImportError as error:
        raise UsageError(str(error)) from None
    check_writable(Path(args.out))
    if args.what == "curves":
        viz.training_curves(args.run, args.out)
    elif args.what == "filters":
        _, model, _ = load_trained(args.checkpoint)
        viz.filter_bank(model, args.layer, args.out)
    elif args.what == "features":
        checkpoint, model, normalize = load_trained(args.checkpoint)
        image = model_inputs(checkpoint, normalize, [args.image], invert=args.invert,
                             max_pixels=args.max_pixels)[0]
        viz.feature_maps(model, image, args.out, channels=args.channels,
                         title=f"{checkpoint.model_name} on {Path(args.image).name}")
    else:
        checkpoint, model, normalize = load_trained(args.checkpoint)
        data, test_set, results = evaluate_checkpoint(checkpoint, model, normalize, args.data)
        viz.confusion_matrix(results["confusion_matrix"], test_set.classes, args.out,
                             title=f"{checkpoint.model_name} on the {data} test set: "
                                   f"accuracy {results['accuracy']:.4f}")
    print(f"cnnlab viz: wrote {args.out}")
    return 0
