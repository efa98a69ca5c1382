"""``cnnlab export``: a trained checkpoint as an ONNX model or safetensors weights."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._common import UsageError, check_writable


def add_parser(commands) -> None:
    export = commands.add_parser("export", help="write a checkpoint's model as ONNX (for any "
                                 "runtime) or its weights as safetensors (for PyTorch)")
    export.add_argument("checkpoint", metavar="CKPT")
    export.add_argument("--format", choices=("onnx", "safetensors"), required=True)
    export.add_argument("--out", type=Path, required=True, metavar="FILE")


def run(args: argparse.Namespace) -> int:
    from ..data.transforms import Normalize
    from ..train.inference import load_trained

    check_writable(args.out)
    checkpoint, model, normalize = load_trained(args.checkpoint)
    try:
        if args.format == "safetensors":
            from ..interop import save_safetensors

            save_safetensors(model, args.out)
            print(f"wrote {args.out}: {len(model.state_dict())} tensors, "
                  f"{model.num_parameters():,} parameters, PyTorch state_dict key names")
            return 0
        from ..interop import to_onnx

        channels = _argument(checkpoint, "in_channels")
        size = _argument(checkpoint, "input_size")
        stats = (normalize.mean, normalize.std) if isinstance(normalize, Normalize) else None
        proto = to_onnx(model, np.zeros((1, channels, size, size), np.float32), args.out,
                        normalize=stats)
    except ImportError as error:
        raise UsageError(str(error)) from None
    folded = " (input standardisation folded in: it takes raw images in [0, 1])" if stats \
        else ""
    print(f"wrote {args.out}: ONNX opset {proto.opset_import[0].version}, "
          f"{len(proto.graph.node)} nodes, input (N, {channels}, {size}, {size}){folded}")
    return 0


def _argument(checkpoint, name: str) -> int:
    """A model argument of the checkpoint, or its builder's default."""
    import inspect

    from .. import models

    if name in checkpoint.model_args:
        return int(checkpoint.model_args[name])
    return int(inspect.signature(models.get_builder(checkpoint.model_name))
               .parameters[name].default)
