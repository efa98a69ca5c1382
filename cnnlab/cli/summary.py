"""``cnnlab summary``: the lecture's layer table of a model from the registry."""

from __future__ import annotations

import argparse
import inspect

from ._common import UsageError, channels, positive_int


def add_parser(commands) -> None:
    summary = commands.add_parser("summary", help="layer table: shapes, sizes, parameters, MACs, "
                                  "padding and receptive fields")
    from .. import models

    summary.add_argument("model", metavar="MODEL", nargs="?",
                         help=f"one of {', '.join(models.available())}")
    summary.add_argument("--in-channels", type=positive_int, default=None)
    summary.add_argument("--input-size", type=positive_int, default=None)
    summary.add_argument("--num-classes", type=positive_int, default=None)
    summary.add_argument("--channels", type=channels, default=None,
                         help="channel counts of the convolutions, e.g. 8,16")


def run(args: argparse.Namespace) -> int:
    from .. import models
    from ..tools import summary

    if args.model is None:
        raise UsageError(f"expected a MODEL, one of {', '.join(models.available())}.")
    kwargs = {"in_channels": args.in_channels, "input_size": args.input_size,
              "num_classes": args.num_classes, "channels": args.channels}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    model = models.get(args.model, **kwargs)
    in_channels = kwargs.get("in_channels", _default(models, args.model, "in_channels"))
    input_size = kwargs.get("input_size", _default(models, args.model, "input_size"))
    print(summary(model, (in_channels, input_size, input_size)))
    return 0


def _default(models, name: str, argument: str):
    return inspect.signature(models.get_builder(name)).parameters[argument].default
