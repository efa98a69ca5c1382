"""The ``cnnlab`` command: argument parsing only; the work is done by the importable layers.

``cnnlab train | evaluate | predict | summary | bench``, each with ``--help``. User mistakes (a
missing file, an unknown model, numbers out of range, an input too small for the network) end
with one line on stderr and exit status 2; Ctrl-C keeps the last checkpoint and exits with
status 130.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the checkpoint and printed first)."""

    model: str = "lenet5"         # a name from cnnlab.models.available()
    data: str = "digits"          # digits (embedded), mnist, fashion-mnist, or an image folder
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3              # Adam (beats 1e-3 on fashion-mnist); SGD: 0.05, momentum 0.9
    optimizer: str = "adam"       # adam | sgd
    seed: int = 0
    schedule: str = "constant"    # constant | cosine (annealed to 0 over the epochs)
    out: str = ""                 # default: runs/<model>-<data>


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, received {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number, received {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text}")
    return value


def _channels(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated channel counts such as 6,16, received {text!r}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"channel counts must be positive, received {text!r}")
    return values


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes in one line (exit 2), without the usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnlab", description="Convolutional neural networks from first "
                     "principles: train, evaluate and use image classifiers.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train a classifier and save a checkpoint",
                                description="Train a classifier; writes DIR/model.npz (+ .json),"
                                " DIR/history.json and DIR/metrics.json.")
    defaults = TrainConfig()
    train.add_argument("--model", default=defaults.model, help="model name (default lenet5)")
    train.add_argument("--data", default=defaults.data,
                       help="digits (embedded, default), mnist, fashion-mnist, or a folder of "
                            "images in class subfolders")
    train.add_argument("--epochs", type=_positive_int, default=defaults.epochs)
    train.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size)
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="learning rate (default 2e-3 for adam, 0.05 for sgd)")
    train.add_argument("--optimizer", choices=("adam", "sgd"), default=defaults.optimizer)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--schedule", choices=("constant", "cosine"), default=defaults.schedule,
                       help="learning rate: constant, or cosine annealing to 0 over --epochs "
                            "(stepped per epoch; a cosine run resumes only with its --epochs)")
    train.add_argument("--out", default="", help="output directory (default runs/MODEL-DATA)")
    train.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = commands.add_parser("evaluate", help="accuracy, loss and confusion matrix")
    evaluate.add_argument("checkpoint", metavar="CKPT")
    evaluate.add_argument("--data", help="dataset to evaluate on (default: the training one)")

    predict = commands.add_parser("predict", help="classify image files")
    predict.add_argument("checkpoint", metavar="CKPT")
    predict.add_argument("images", metavar="IMAGE", nargs="+")
    predict.add_argument("--top", type=_positive_int, default=3, help="classes shown per image")

    summary = commands.add_parser("summary", help="layer table: shapes, sizes, parameters, MACs, "
                                  "padding and receptive fields")
    summary.add_argument("model", metavar="MODEL")
    summary.add_argument("--in-channels", type=_positive_int, default=None)
    summary.add_argument("--input-size", type=_positive_int, default=None)
    summary.add_argument("--num-classes", type=_positive_int, default=None)
    summary.add_argument("--channels", type=_channels, default=None,
                         help="channel counts of the convolutions, e.g. 8,16")

    bench = commands.add_parser("bench", help="time cnnlab against PyTorch on the same work",
                                description="Conv2d forward+backward suite, LeNet-5 training "
                                "and inference throughput, peak memory and a scaling table; "
                                "with PyTorch installed, each against the identical torch work "
                                "(ratio = torch time / cnnlab time).")
    bench.add_argument("--only", type=_parts, default=None, metavar="PART[,PART...]",
                       help="conv, train, infer, memory, scaling (default: all)")
    bench.add_argument("--rounds", type=_positive_int, default=5,
                       help="alternating rounds per measurement; the median is reported")
    bench.add_argument("--batch-size", type=_positive_int, default=64,
                       help="LeNet-5 batch for train, infer and memory (default 64)")
    bench.add_argument("--no-torch", action="store_true", help="time cnnlab alone")
    bench.add_argument("--quick", action="store_true",
                       help="one short round and a small scaling table (a smoke test)")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")

    explain = commands.add_parser(
        "explain", help="worked arithmetic of a convolution, pooling, ReLU, softmax or padding",
        description="Every number of an operation worked out as the lecture notes write it. "
        "Matrices are typed as rows split by ';' and values by spaces or commas ('1 0 -1; 2 0 "
        "-2'); channels are split by '|'.")
    what = explain.add_subparsers(dest="what", required=True, parser_class=_Parser)
    conv = what.add_parser("conv2d", help="a 2-D convolution, entry by entry")
    conv.add_argument("--input", required=True, metavar="MATRIX")
    conv.add_argument("--kernel", required=True, action="append", metavar="MATRIX",
                      help="one filter (channels split by '|'); repeat for several filters")
    conv.add_argument("--bias", metavar="VALUES", help="one value per filter, e.g. '1 0'")
    conv.add_argument("--stride", type=_int_or_pair, default=1, metavar="S|R,C")
    conv.add_argument("--padding", type=_padding_arg, default=0, metavar="P|R,C|valid|same")
    conv.add_argument("--dilation", type=_int_or_pair, default=1, metavar="D|R,C")
    conv.add_argument("--flip", action="store_true",
                      help="rotate the kernel 180° (true convolution instead of correlation)")
    conv.add_argument("--at", metavar="R,C", help="the entry to work out when there are many "
                      "(F,R,C with several filters)")
    conv.add_argument("--check", metavar="ANSWER",
                      help="your answer (a matrix; filters split by '|'): lists wrong entries")
    conv.add_argument("--grad", metavar="MATRIX",
                      help="dL/dZ: also work out dL/dK, dL/dB and dL/dX")
    pool = what.add_parser("pool", help="max or average pooling, window by window")
    pool.add_argument("--input", required=True, metavar="MATRIX")
    pool.add_argument("--size", type=_int_or_pair, default=2, metavar="K|R,C")
    pool.add_argument("--stride", type=_int_or_pair, default=None, metavar="S|R,C",
                      help="default: the window size")
    pool.add_argument("--padding", type=_int_or_pair_nonneg, default=0, metavar="P|R,C")
    pool.add_argument("--mode", choices=("max", "avg"), default="max")
    pool.add_argument("--at", metavar="R,C")
    pool.add_argument("--check", metavar="ANSWER")
    relu = what.add_parser("relu", help="ReLU, entry by entry")
    relu.add_argument("--input", required=True, metavar="MATRIX")
    relu.add_argument("--check", metavar="ANSWER")
    soft = what.add_parser("softmax", help="softmax of a score vector (and cross-entropy)")
    soft.add_argument("--input", required=True, metavar="SCORES")
    soft.add_argument("--target", type=int, default=None, help="class index: also the loss")
    pad = what.add_parser("padding", help="'same' padding in TensorFlow, JAX and PyTorch")
    pad.add_argument("--size", type=_positive_int, required=True, metavar="N")
    pad.add_argument("--kernel-size", type=_positive_int, required=True, metavar="K")
    pad.add_argument("--stride", type=_positive_int, default=1)
    pad.add_argument("--dilation", type=_positive_int, default=1)
    pad.add_argument("--pad", type=int, default=None, metavar="P",
                     help="also an explicit symmetric padding")
    mine = what.add_parser("model", help="one output value of a trained model's conv layer")
    mine.add_argument("checkpoint", metavar="CKPT")
    mine.add_argument("image", metavar="IMAGE")
    mine.add_argument("--layer", required=True, help="the convolution's name (see summary)")
    mine.add_argument("--at", required=True, metavar="C,R,C",
                      help="output channel, row and column")
    for sub in (conv, pool, relu, soft, pad, mine):
        sub.add_argument("--markdown", action="store_true", help="print Markdown")

    viz = commands.add_parser(
        "viz", help="pictures: filters, feature maps, training curves, confusion matrix",
        description="Save a picture (PNG) of a trained model; needs matplotlib "
        "(pip install 'cnnlab[viz]').")
    pictures = viz.add_subparsers(dest="what", required=True, parser_class=_Parser)
    bank = pictures.add_parser("filters", help="the kernels of a convolution layer")
    bank.add_argument("checkpoint", metavar="CKPT")
    bank.add_argument("--layer", help="the convolution's name (default: the first)")
    maps = pictures.add_parser("features", help="every layer's feature maps for one image")
    maps.add_argument("checkpoint", metavar="CKPT")
    maps.add_argument("image", metavar="IMAGE")
    maps.add_argument("--channels", type=_positive_int, default=8,
                      help="channels shown per layer (default 8)")
    curves = pictures.add_parser("curves", help="loss and accuracy per epoch")
    curves.add_argument("run", metavar="RUN", help="a training directory or its history.json")
    confusion = pictures.add_parser("confusion", help="confusion matrix on the test set")
    confusion.add_argument("checkpoint", metavar="CKPT")
    confusion.add_argument("--data", help="dataset (default: the training one)")
    for sub in (bank, maps, curves, confusion):
        sub.add_argument("--out", required=True, metavar="OUT.png")

    filt = commands.add_parser(
        "filter", help="filter an image with named kernels (blur, Sobel, sharpen, edges...)",
        description="Cross-correlate each channel of an image with a kernel, using the same "
        "convolution the networks train with. --kernel may repeat: --out applies the kernels "
        "one after the other (e.g. gaussian, then sobel); --grid shows the original beside "
        "each kernel's result.")
    filt.add_argument("image", metavar="IMAGE", nargs="?")
    filt.add_argument("--kernel", "-k", action="append", default=[], metavar="SPEC",
                      help="a name with optional parameters (gaussian:sigma=2,size=9) or a "
                           "matrix ('0 -1 0; -1 5 -1; 0 -1 0'); see --list")
    filt.add_argument("--border", choices=("zeros", "reflect", "replicate", "circular",
                                           "valid"), default="reflect",
                      help="how the image is extended past its edges (default reflect; valid: "
                           "no padding, a smaller output)")
    filt.add_argument("--stride", type=_positive_int, default=1)
    filt.add_argument("--dilation", type=_positive_int, default=1)
    filt.add_argument("--map", choices=("auto", "clip", "abs", "normalize"), default="auto",
                      help="signed responses to pixels: clip to 0..255, abs (edges of both "
                           "signs light up), normalize (min..max to 0..255); auto: abs when "
                           "the (last) kernel sums to 0, as edge detectors do, clip otherwise")
    filt.add_argument("--equalize", action="store_true",
                      help="equalise the histogram of each result (more contrast)")
    filt.add_argument("--gray", action="store_true", help="convert a colour image to grey first")
    filt.add_argument("--out", metavar="OUT.png", help="write the filtered image")
    filt.add_argument("--grid", metavar="OUT.png",
                      help="write the original and each kernel's result side by side, titled")
    filt.add_argument("--list", action="store_true", help="list the named kernels and exit")
    filt.add_argument("--show-kernel", action="store_true",
                      help="print the --kernel matrices (no image needed)")
    return parser


def _int_or_pair(text: str, minimum: int = 1):
    """``"2"`` -> 2, ``"2,3"`` -> (2, 3) (each at least ``minimum``)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or min(values) < minimum:
        raise argparse.ArgumentTypeError(
            f"expected an integer ≥ {minimum} or two (R,C), received {text!r}")
    return values[0] if len(values) == 1 else values


def _int_or_pair_nonneg(text: str):
    return _int_or_pair(text, minimum=0)


def _padding_arg(text: str):
    return text if text in ("valid", "same") else _int_or_pair(text, minimum=0)


def _parts(text: str) -> tuple[str, ...]:
    from .tools.bench import PARTS

    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if not parts or unknown:
        raise argparse.ArgumentTypeError(
            f"expected parts among {','.join(PARTS)}, received {text!r}")
    return parts


# --------------------------------------------------------------------------- commands
def _model_kwargs(in_channels=None, input_size=None, num_classes=None, channels=None) -> dict:
    kwargs = {"in_channels": in_channels, "input_size": input_size, "num_classes": num_classes,
              "channels": channels}
    return {k: v for k, v in kwargs.items() if v is not None}


def cmd_summary(args: argparse.Namespace) -> int:
    from . import models
    from .tools import summary

    kwargs = _model_kwargs(args.in_channels, args.input_size, args.num_classes, args.channels)
    model = models.get(args.model, **kwargs)
    in_channels = kwargs.get("in_channels", _default(models, args.model, "in_channels"))
    input_size = kwargs.get("input_size", _default(models, args.model, "input_size"))
    print(summary(model, (in_channels, input_size, input_size)))
    return 0


def _default(models, name: str, argument: str):
    import inspect

    return inspect.signature(models.get_builder(name)).parameters[argument].default


def cmd_train(args: argparse.Namespace) -> int:
    from . import models, optim, random
    from .data import load_dataset
    from .data.transforms import Normalize
    from .train import ModelCheckpoint, fit, load_checkpoint, restore_training
    from .train import evaluate as evaluate_model

    default_lr = TrainConfig.lr if args.optimizer == "adam" else 0.05
    lr = args.lr if args.lr is not None else default_lr
    config = TrainConfig(args.model, args.data, args.epochs, args.batch_size, lr,
                         args.optimizer, args.seed, args.schedule,
                         args.out or f"runs/{args.model}-{Path(args.data).name}")
    out = Path(config.out)
    train_set, test_set = load_dataset(config.data)
    # Standardise with the training set's per-channel statistics; the checkpoint keeps them,
    # so evaluate and predict feed the network what it was trained on.
    normalize = Normalize.from_data(train_set.images)
    train_set.images, test_set.images = normalize(train_set.images), normalize(test_set.images)
    in_channels, input_size = train_set.images.shape[1], train_set.images.shape[2]
    model_args = {"in_channels": int(in_channels), "input_size": int(input_size),
                  "num_classes": len(train_set.classes)}
    random.manual_seed(config.seed)
    model = models.get(config.model, **model_args)
    if config.optimizer == "adam":
        optimizer = optim.Adam(model.parameters(), lr=config.lr)
    else:
        optimizer = optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    scheduler = (optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
                 if config.schedule == "cosine" else None)
    start_epoch = 0
    if args.resume:
        checkpoint = load_checkpoint(args.resume)
        _check_resumable_schedule(args.resume, checkpoint.config, config)
        start_epoch = restore_training(checkpoint, model, optimizer, scheduler)
        if start_epoch >= config.epochs:
            raise UsageError(f"the checkpoint {args.resume} has already trained {start_epoch} "
                             f"epochs; ask for more with --epochs (received {config.epochs}).")

    print("cnnlab train: " + ", ".join(f"{k}={v}" for k, v in asdict(config).items())
          + f"; {len(train_set):,} training and {len(test_set):,} test images "
          f"{input_size}×{input_size}×{in_channels}; {model.num_parameters():,} parameters"
          + (f"; resuming after epoch {start_epoch}" if start_epoch else ""), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    # model.npz: the latest epoch (resume from it); best.npz: the best validation accuracy.
    saver = ModelCheckpoint(out, monitor="val_accuracy", model_name=config.model,
                            model_args=model_args,
                            config={**asdict(config), "classes": list(train_set.classes),
                                    "normalize": {"mean": normalize.mean.tolist(),
                                                  "std": normalize.std.tolist()}},
                            last="model", best="best")
    start = time.perf_counter()
    try:
        history = fit(model, train_set, epochs=config.epochs, optimizer=optimizer,
                      batch_size=config.batch_size, lr_schedule=scheduler, callbacks=[saver],
                      val_data=test_set,
                      seed=config.seed, start_epoch=start_epoch, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"cnnlab train: interrupted; {out / 'model.npz'} holds the last complete epoch "
              f"(resume with --resume), {out / 'interrupted.npz'} the moment of the interrupt",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    train_seconds = time.perf_counter() - start
    results = evaluate_model(model, test_set, batch_size=256)
    metrics = {"test_accuracy": float(results["accuracy"]), "test_loss": float(results["loss"]),
               "train_seconds": round(train_seconds, 2), "epochs": config.epochs,
               "images_per_s": round(len(train_set) * (config.epochs - start_epoch)
                                     / train_seconds, 1)}
    _write_json(out / "history.json", history.to_json() if hasattr(history, "to_json")
                else history)
    _write_json(out / "metrics.json", metrics)
    print(f"cnnlab train: test accuracy {metrics['test_accuracy']:.4f}, test loss "
          f"{metrics['test_loss']:.4f}, {train_seconds:.1f} s of training; checkpoint "
          f"{out / 'model.npz'}")
    return 0


def _check_resumable_schedule(path: str, saved: dict, config: TrainConfig) -> None:
    """A resumed run keeps its schedule; a cosine one also its length (the curve depends on it)."""
    schedule = saved.get("schedule", "constant")
    if schedule != config.schedule:
        raise UsageError(f"the checkpoint {path} was trained with --schedule {schedule}; resume "
                         f"it with the same schedule (received --schedule {config.schedule}).")
    if schedule == "cosine" and saved.get("epochs") != config.epochs:
        raise UsageError(f"the checkpoint {path} follows a cosine schedule over "
                         f"{saved.get('epochs')} epochs; resume it with --epochs "
                         f"{saved.get('epochs')} (received {config.epochs}).")


def _write_json(path: Path, data) -> None:
    """Atomically: a half-written file never replaces a good one."""
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + ("\n" if not text.endswith("\n") else ""))
    tmp.replace(path)


def _load_model(path: str):
    """The checkpoint, its model in eval mode, and the input standardisation it was trained with."""
    from . import models
    from .data.transforms import Normalize
    from .train import load_checkpoint, restore_model

    checkpoint = load_checkpoint(path)
    model = models.get(checkpoint.model_name, **checkpoint.model_args)
    restore_model(checkpoint, model)
    model.eval()
    stats = checkpoint.config.get("normalize")
    try:
        normalize = Normalize(stats["mean"], stats["std"]) if stats else (lambda x: x)
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"the checkpoint {path} has an unreadable 'normalize' entry in its "
                         f"JSON, expected {{\"mean\": [...], \"std\": [...]}}, received "
                         f"{stats!r}.") from None
    return checkpoint, model, normalize


def _model_inputs(checkpoint, normalize, paths: Sequence[str]) -> np.ndarray:
    """Image files as the checkpoint's model takes them: its channels and size, a light
    background inverted, standardised as in training -> ``(N, C, H, W)``."""
    from .data import read_image

    in_channels = checkpoint.model_args.get("in_channels", 1)
    size = checkpoint.model_args.get("input_size", 28)
    return normalize(np.stack([read_image(path, channels=in_channels, size=size, invert="auto")
                               for path in paths]))


def _evaluate_checkpoint(checkpoint, model, normalize, data: str | None):
    """``(data name, test set, results)``: the model on a dataset's test split (default: the
    one it was trained on), standardised as in training."""
    from .data import load_dataset
    from .train import evaluate as evaluate_model

    data_name = data or checkpoint.config.get("data", "digits")
    _, test_set = load_dataset(data_name)
    test_set.images = normalize(test_set.images)
    return data_name, test_set, evaluate_model(model, test_set, batch_size=256)


def cmd_evaluate(args: argparse.Namespace) -> int:
    data_name, test_set, results = _evaluate_checkpoint(*_load_model(args.checkpoint),
                                                        args.data)
    print(f"{data_name} test set, {results['count']:,} images: accuracy "
          f"{results['accuracy']:.4f}, loss {results['loss']:.4f}")
    classes = test_set.classes
    width = max(len(c) for c in classes)
    print("per-class accuracy:")
    for name, value in zip(classes, results["per_class_accuracy"]):
        print(f"  {name:>{width}}  {value:.4f}")
    print("confusion matrix (rows: true class, columns: predicted):")
    matrix = np.asarray(results["confusion_matrix"])
    cell = max(len(str(int(matrix.max()))), 3)
    print(" " * (width + 2) + " ".join(f"{i:>{cell}}" for i in range(len(classes))))
    for i, (name, row) in enumerate(zip(classes, matrix)):
        print(f"  {name:>{width}} " + " ".join(f"{int(v):>{cell}}" for v in row) + f"  ({i})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .train import predict

    checkpoint, model, normalize = _load_model(args.checkpoint)
    classes = checkpoint.config.get("classes") or [str(i) for i in
                                                   range(checkpoint.model_args["num_classes"])]
    probabilities = predict(model, _model_inputs(checkpoint, normalize, args.images))
    top = min(args.top, probabilities.shape[1])
    for path, p in zip(args.images, probabilities):
        order = np.argsort(p)[::-1][:top]
        shown = ", ".join(f"{classes[i]} {p[i]:.1%}" for i in order)
        print(f"{path}: {shown}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .tools import bench

    if args.json:
        _check_writable(Path(args.json))
    report = bench.run(args.only or bench.PARTS, rounds=args.rounds, quick=args.quick,
                       use_torch=not args.no_torch, batch_size=args.batch_size)
    print(report)
    if args.json:
        _write_json(Path(args.json), report.to_json())
    return 0


def _check_writable(path: Path) -> None:
    """Fail before a long run, not after it, when the result file cannot be written."""
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: the directory {path.parent} does not exist.")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory, expected a file name.")


def cmd_explain(args: argparse.Namespace) -> int:
    from .tools import explain

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
        checkpoint, model, normalize = _load_model(args.checkpoint)
        image = _model_inputs(checkpoint, normalize, [args.image])[0]
        result = explain.model(model, image, args.layer, args.at)
    else:
        result = explain.padding(args.size, args.kernel_size, args.stride, args.dilation,
                                 args.pad)
    print(result.markdown if args.markdown else result.text, end="\n" * (not args.markdown))
    return 0


def cmd_viz(args: argparse.Namespace) -> int:
    try:
        from .tools import viz
        viz._pyplot()
    except ImportError as error:
        raise UsageError(str(error)) from None
    _check_writable(Path(args.out))
    if args.what == "curves":
        viz.training_curves(args.run, args.out)
    elif args.what == "filters":
        _, model, _ = _load_model(args.checkpoint)
        viz.filter_bank(model, args.layer, args.out)
    elif args.what == "features":
        checkpoint, model, normalize = _load_model(args.checkpoint)
        image = _model_inputs(checkpoint, normalize, [args.image])[0]
        viz.feature_maps(model, image, args.out, channels=args.channels,
                         title=f"{checkpoint.model_name} on {Path(args.image).name}")
    else:
        checkpoint, model, normalize = _load_model(args.checkpoint)
        data, test_set, results = _evaluate_checkpoint(checkpoint, model, normalize, args.data)
        viz.confusion_matrix(results["confusion_matrix"], test_set.classes, args.out,
                             title=f"{checkpoint.model_name} on the {data} test set: "
                                   f"accuracy {results['accuracy']:.4f}")
    print(f"cnnlab viz: wrote {args.out}")
    return 0


def cmd_filter(args: argparse.Namespace) -> int:
    from .data import read_pixels
    from .tools import filters

    if args.list:
        print(filters.describe())
        return 0
    if args.show_kernel:
        if not args.kernel:
            raise UsageError("--show-kernel needs at least one --kernel SPEC.")
        print("\n\n".join(f"{spec}:\n{filters.format_kernel(spec)}" for spec in args.kernel))
        return 0
    if not args.image:
        raise UsageError("expected an IMAGE to filter (or --list, or --show-kernel).")
    if not args.kernel:
        raise UsageError("expected at least one --kernel SPEC (see cnnlab filter --list).")
    if not (args.out or args.grid):
        raise UsageError("expected --out OUT.png, --grid OUT.png or both.")
    for target in filter(None, (args.out, args.grid)):
        _check_writable(Path(target))
    for spec in args.kernel:
        filters.kernels(spec)                       # a bad spec fails before any work
    original = read_pixels(args.image, channels=1 if args.gray else None)
    options = {"border": args.border, "stride": args.stride, "dilation": args.dilation}

    def pixels(response, specs):
        mapping = args.map
        if mapping == "auto":
            zero_sum = all(abs(k.sum()) < 1e-9 for k in filters.kernels(specs[-1]))
            mapping = "abs" if zero_sum else "clip"     # the last kernel decides the sign
        result = filters.to_pixels(response, mapping)
        return (filters.equalize(result) if args.equalize else result), mapping

    if args.out:
        response = original.astype(np.float64)
        for spec in args.kernel:
            response = filters.apply(response, spec, **options)
        result, mapping = pixels(response, args.kernel)
        _save_image(result, Path(args.out))
        print(f"cnnlab filter: wrote {args.out} ({'×'.join(map(str, result.shape))}, "
              f"{' then '.join(args.kernel)}, border {args.border}, mapping {mapping})")
    if args.grid:
        panels = [("original", original)]
        for spec in args.kernel:
            result, mapping = pixels(filters.apply(original, spec, **options), [spec])
            panels.append((f"{spec} ({mapping})", result))
        sheet = filters.grid(panels)
        _save_image(np.asarray(sheet), Path(args.grid))
        print(f"cnnlab filter: wrote {args.grid} (original and {len(args.kernel)} "
              f"result{'s' if len(args.kernel) > 1 else ''})")
    return 0


def _save_image(pixels: np.ndarray, path: Path) -> None:
    """Atomically, in the format the file name asks for (PNG, JPEG, BMP...)."""
    from PIL import Image

    tmp = path.with_name(path.name + ".tmp")
    try:
        Image.fromarray(pixels).save(tmp, format=Image.registered_extensions().get(
            path.suffix.lower()) or "PNG")
    except (KeyError, ValueError, OSError) as error:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {error}.") from None
    tmp.replace(path)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "summary": cmd_summary, "bench": cmd_bench, "filter": cmd_filter,
            "explain": cmd_explain, "viz": cmd_viz}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnnlab`` console script and ``python -m cnnlab``."""
    args = build_parser().parse_args(argv)
    if args.command in ("train", "evaluate", "bench"):
        from .memory import keep_freed_memory

        keep_freed_memory()      # this process is ours: reuse freed memory (see cnnlab.memory)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, ValueError, TypeError, FileNotFoundError, IsADirectoryError,
            PermissionError) as error:
        message = str(error) or type(error).__name__
        print(f"cnnlab {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"cnnlab {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
