"""``cnnlab train``: train a classifier and save a checkpoint (the work: ``cnnlab.train.job``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..train.job import TrainConfig, default_lr, run_training
from ._common import EXIT_INTERRUPTED, positive_float, positive_int


def add_parser(commands) -> None:
    train = commands.add_parser("train", help="train a classifier and save a checkpoint",
                                description="Train a classifier; writes DIR/model.npz (+ .json),"
                                " DIR/history.json and DIR/metrics.json.")
    defaults = TrainConfig()
    train.add_argument("--model", default=defaults.model, help="model name (default lenet5)")
    train.add_argument("--data", default=defaults.data,
                       help="digits (embedded, default), mnist, fashion-mnist, or a folder of "
                            "images in class subfolders")
    train.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                       help=f"passes over the training set (default {defaults.epochs})")
    train.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                       help=f"images per step (default {defaults.batch_size})")
    train.add_argument("--lr", type=positive_float, default=None,
                       help="learning rate (default 2e-3 for adam, 0.05 for sgd)")
    train.add_argument("--optimizer", choices=("adam", "sgd"), default=defaults.optimizer)
    train.add_argument("--seed", type=int, default=defaults.seed,
                       help=f"seed of the initial weights and the shuffling (default "
                            f"{defaults.seed}; the same seed repeats a run on this machine)")
    train.add_argument("--schedule", choices=("constant", "cosine"), default=defaults.schedule,
                       help="learning rate: constant, or cosine annealing to 0 over --epochs "
                            "(stepped per epoch; a cosine run resumes only with its --epochs)")
    train.add_argument("--out", default="", help="output directory (default runs/MODEL-DATA)")
    train.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    lr = args.lr if args.lr is not None else default_lr(args.optimizer)
    config = TrainConfig(args.model, args.data, args.epochs, args.batch_size, lr,
                         args.optimizer, args.seed, args.schedule, args.out)
    out = Path(config.out)
    try:
        metrics = run_training(config, resume=args.resume, progress=not args.quiet,
                               log=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print(f"cnnlab train: interrupted; {out / 'model.npz'} holds the last complete epoch "
              f"(resume with --resume), {out / 'interrupted.npz'} the moment of the interrupt",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"cnnlab train: test accuracy {metrics['test_accuracy']:.4f}, test loss "
          f"{metrics['test_loss']:.4f}, {metrics['train_seconds']:.1f} s of training; "
          f"checkpoint {out / 'model.npz'}")
    return 0
