"""``cnnlab serve``: the explorer, a local web app on your own checkpoints (the work:
``cnnlab.explorer``)."""

from __future__ import annotations

import argparse

from ._common import UsageError


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, received {text!r}")
    return value


def add_parser(commands) -> None:
    serve = commands.add_parser(
        "serve", help="the explorer: your model, the playground and training in the browser",
        description="Start a local web app: see a checkpoint's feature maps and worked sums for "
        "an image you draw, step a convolution over a matrix, filter a photo, train and watch "
        "the curves. Needs the extra: pip install \"cnnlab[web]\".")
    serve.add_argument("checkpoints", metavar="CKPT", nargs="*",
                       help="checkpoints to show (a model trained on the page is added)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_port, default=8765, help="default 8765 (0: any free)")
    serve.add_argument("--open", action="store_true", help="open the page in a web browser")
    serve.add_argument("--runs", default="runs", metavar="DIR",
                       help="where trainings started on the page save (default runs/)")


def run(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise UsageError(f"the explorer needs Starlette and uvicorn ({error.name} is missing): "
                         f"pip install \"cnnlab[web]\".") from None
    from ..explorer.server import serve

    serve(args.checkpoints, host=args.host, port=args.port, open_browser=args.open,
          runs_dir=args.runs)
    return 0
