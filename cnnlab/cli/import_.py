"""``cnnlab import``: an ONNX model as a cnnlab checkpoint that every command accepts."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import UsageError


def add_parser(commands) -> None:
    imp = commands.add_parser("import", help="read an ONNX model and write a cnnlab checkpoint "
                              "(for summary, explain, viz, predict, evaluate)")
    imp.add_argument("onnx", metavar="MODEL.onnx", type=Path)
    imp.add_argument("--out", type=Path, required=True, metavar="DIR",
                     help="directory of the checkpoint (created if missing)")
    imp.add_argument("--name", default="model", help="checkpoint name inside DIR")


def run(args: argparse.Namespace) -> int:
    from ..train.checkpoint import save_checkpoint

    try:
        from ..interop.onnx_import import onnx_to_graph, read_onnx

        imported = onnx_to_graph(read_onnx(args.onnx))
    except ImportError as error:
        raise UsageError(str(error)) from None
    shape, out = imported.input_shape, imported.output_shape
    if len(shape) != 4 or any(not isinstance(s, int) for s in shape[1:]) or shape[2] != shape[3]:
        raise UsageError(f"{args.onnx} takes input of shape {shape}; a checkpoint takes square "
                         f"images (N, C, H, H) with fixed C and H (use "
                         f"cnnlab.interop.from_onnx for other inputs).")
    net = imported.build()
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, expected a directory.")
    args.out.mkdir(parents=True, exist_ok=True)
    model_args = {"in_channels": int(shape[1]), "input_size": int(shape[2]),
                  "num_classes": int(out[-1]) if out and isinstance(out[-1], int) else 1,
                  "graph": imported.graph}
    path = save_checkpoint(args.out / args.name, net, model_name="onnx_graph",
                           model_args=model_args, epoch=0,
                           extra={"imported_from": str(args.onnx), "opset": imported.opset})
    layers = sum(1 for node in imported.graph["nodes"] if "layer" in node)
    print(f"wrote {path}: {len(imported.graph['nodes'])} nodes ({layers} cnnlab layers), "
          f"{net.num_parameters():,} parameters, input {tuple(shape)}")
    return 0
