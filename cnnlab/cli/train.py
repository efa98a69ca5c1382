"""``cnnlab train``: train a classifier and save a checkpoint (the work: ``cnnlab.train.job``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..train.job import AUGMENTATIONS, TrainConfig, default_lr, resume_config, run_training
from ..train.loop import Terminated
from ._common import EXIT_INTERRUPTED, positive_float, positive_int

EXIT_TERMINATED = 143           # 128 + SIGTERM, as a shell reports a process ended by it


def add_parser(commands) -> None:
    train = commands.add_parser(
        "train", help="train a classifier and save a checkpoint",
        description="Train a classifier; writes DIR/model.safetensors (the last epoch, with "
                    "everything --resume needs), DIR/best.safetensors, DIR/history.json and "
                    "DIR/metrics.json. With --resume, every setting not given is taken from "
                    "the checkpoint.")
    defaults = TrainConfig()
    # Defaults are None here so that --resume can tell what the user asked to change.
    train.add_argument("--model", help=f"model name (default {defaults.model})")
    train.add_argument("--data",
                       help="digits (embedded, default), mnist, fashion-mnist, or a folder of "
                            "images in class subfolders")
    train.add_argument("--epochs", type=positive_int,
                       help=f"epochs in all, those before a resume included "
                            f"(default {defaults.epochs})")
    train.add_argument("--batch-size", type=positive_int,
                       help=f"images per step (default {defaults.batch_size})")
    train.add_argument("--lr", type=positive_float,
                       help="learning rate (default 2e-3 for adam, 0.05 for sgd)")
    train.add_argument("--optimizer", choices=("adam", "sgd"),
                       help=f"default {defaults.optimizer}")
    train.add_argument("--seed", type=int,
                       help=f"seed of the initial weights and the shuffling (default "
                            f"{defaults.seed}; the same seed repeats a run on this machine)")
    train.add_argument("--schedule", choices=("constant", "cosine"),
                       help="learning rate: cosine annealing to 0 over --epochs (default; "
                            "stepped per epoch, so a cosine run resumes only with its "
                            "--epochs), or constant")
    train.add_argument("--augment", choices=("auto", *AUGMENTATIONS),
                       help="augmentation of the training images: "
                            + "; ".join(f"{k}: {v}".replace("%", "%%")
                                        for k, v in AUGMENTATIONS.items())
                            + "; auto (default): affine for digits and mnist, flip for "
                              "fashion-mnist, none for an image folder")
    train.add_argument("--out", help="output directory (default runs/MODEL-DATA, or the "
                                     "checkpoint's folder with --resume)")
    train.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")


def run(args: argparse.Namespace) -> int:
    given = {name: getattr(args, name)
             for name in ("model", "data", "epochs", "batch_size", "lr", "optimizer", "seed",
                          "schedule", "augment", "out")}
    if args.resume:
        config = resume_config(args.resume, given)
    else:
        chosen = {name: value for name, value in given.items() if value is not None}
        if "lr" not in chosen:
            chosen["lr"] = default_lr(chosen.get("optimizer", TrainConfig.optimizer))
        config = TrainConfig(**chosen)
    out = Path(config.out)
    on_terminal = sys.stdout.isatty()
    try:
        metrics = run_training(config, resume=args.resume,
                               progress=not args.quiet and on_terminal,
                               epoch_lines=not args.quiet and not on_terminal,
                               log=lambda line: print(line, flush=True))
    except KeyboardInterrupt as stop:
        print(f"cnnlab train: {'terminated' if isinstance(stop, Terminated) else 'interrupted'}"
              f"; {out / 'model.safetensors'} holds the last complete epoch (resume with "
              f"--resume), {out / 'interrupted.safetensors'} the moment of the stop",
              file=sys.stderr)
        return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    print(f"cnnlab train: test accuracy {metrics['test_accuracy']:.4f}, test loss "
          f"{metrics['test_loss']:.4f}, {metrics['train_seconds']:.1f} s of training; "
          f"checkpoint {out / 'model.safetensors'}")
    return 0
