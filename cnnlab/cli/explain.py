"""``cnnlab explain``: the worked arithmetic of a convolution, pooling, ReLU, softmax, padding,
or one value of a trained model (the work: ``cnnlab.tools.explain``)."""

from __future__ import annotations

import argparse

from ..train.inference import load_trained, model_inputs
from ._common import (
    Parser,
    add_image_options,
    int_or_pair,
    int_or_pair_nonneg,
    padding_arg,
    positive_int,
)


def add_parser(commands) -> None:
    explain = commands.add_parser(
        "explain", help="worked arithmetic of a convolution, pooling, ReLU, softmax or padding",
        description="Every number of an operation worked out as the lecture notes write it. "
        "Matrices are typed as rows split by ';' and values by spaces or commas ('1 0 -1; 2 0 "
        "-2'); channels are split by '|'.")
    what = explain.add_subparsers(dest="what", required=True, parser_class=Parser)
    conv = what.add_parser("conv2d", help="a 2-D convolution, entry by entry")
    conv.add_argument("--input", required=True, metavar="MATRIX")
    conv.add_argument("--kernel", required=True, action="append", metavar="MATRIX",
                      help="one filter (channels split by '|'); repeat for several filters")
    conv.add_argument("--bias", metavar="VALUES", help="one value per filter, e.g. '1 0'")
    conv.add_argument("--stride", type=int_or_pair, default=1, metavar="S|R,C")
    conv.add_argument("--padding", type=padding_arg, default=0, metavar="P|R,C|valid|same")
    conv.add_argument("--dilation", type=int_or_pair, default=1, metavar="D|R,C")
    conv.add_argument("--flip", action="store_true",
                      help="rotate the kernel 180° (true convolution instead of correlation)")
    conv.add_argument("--at", metavar="R,C", help="the entry to work out when there are many "
                      "(F,R,C with several filters)")
    conv.add_argument("--check", metavar="ANSWER",
                      help="your answer (a matrix; filters split by '|'): lists wrong entries; "
                           "exit status 1 when any is wrong")
    conv.add_argument("--grad", metavar="MATRIX",
                      help="dL/dZ: also work out dL/dK, dL/dB and dL/dX")
    pool = what.add_parser("pool", help="max or average pooling, window by window")
    pool.add_argument("--input", required=True, metavar="MATRIX")
    pool.add_argument("--size", type=int_or_pair, default=2, metavar="K|R,C")
    pool.add_argument("--stride", type=int_or_pair, default=None, metavar="S|R,C",
                      help="default: the window size")
    pool.add_argument("--padding", type=int_or_pair_nonneg, default=0, metavar="P|R,C")
    pool.add_argument("--mode", choices=("max", "avg"), default="max")
    pool.add_argument("--at", metavar="R,C")
    pool.add_argument("--check", metavar="ANSWER", help="your answer: exit status 1 if wrong")
    relu = what.add_parser("relu", help="ReLU, entry by entry")
    relu.add_argument("--input", required=True, metavar="MATRIX")
    relu.add_argument("--check", metavar="ANSWER", help="your answer: exit status 1 if wrong")
    soft = what.add_parser("softmax", help="softmax of a score vector (and cross-entropy)")
    soft.add_argument("--input", required=True, metavar="SCORES")
    soft.add_argument("--target", type=int, default=None, help="class index: also the loss")
    pad = what.add_parser("padding", help="'same' padding in TensorFlow, JAX and PyTorch")
    pad.add_argument("--size", type=positive_int, required=True, metavar="N")
    pad.add_argument("--kernel-size", type=positive_int, required=True, metavar="K")
    pad.add_argument("--stride", type=positive_int, default=1)
    pad.add_argument("--dilation", type=positive_int, default=1)
    pad.add_argument("--pad", type=int, default=None, metavar="P",
                     help="also an explicit symmetric padding")
    mine = what.add_parser("model", help="one output value of a trained model's conv layer")
    mine.add_argument("checkpoint", metavar="CKPT")
    mine.add_argument("image", metavar="IMAGE")
    mine.add_argument("--layer", required=True, help="the convolution's name (see summary)")
    mine.add_argument("--at", required=True, metavar="C,R,C",
                      help="output channel, row and column")
    add_image_options(mine)
    for sub in (conv, pool, relu, soft, pad, mine):
        sub.add_argument("--markdown", action="store_true", help="print Markdown")


def run(args: argparse.Namespace) -> int:
    from ..tools import explain

    if args.what == "conv2d":
        kernel = args.kernel if len(args.kernel) > 1 else args.kernel[0]
        result = explain.conv2d(args.input, kernel, args.bias, stride=args.stride,
                                padding=args.padding, dilation=args.dilation, flip=args.flip,
                                at=args.at, check=args.check, grad=args.grad)
    elif args.what == "pool":
        result = explain.pool(args.input, args.size, stride=args.stride, padding=args.padding,
                              mode=args.mode, at=args.at, check=args.check)
    elif args.what == "relu":
        result = explain.relu(args.input, check=args.check)
    elif args.what == "softmax":
        result = explain.softmax(args.input, target=args.target)
    elif args.what == "model":
        checkpoint, model, normalize = load_trained(args.checkpoint)
        image = model_inputs(checkpoint, normalize, [args.image], invert=args.invert,
                             max_pixels=args.max_pixels)[0]
        result = explain.model(model, image, args.layer, args.at)
    else:
        result = explain.padding(args.size, args.kernel_size, args.stride, args.dilation,
                                 args.pad)
    print(result.markdown if args.markdown else result.text, end="\n" * (not args.markdown))
    return 1 if getattr(args, "check", None) and result.wrong else 0    # a wrong answer: 1
