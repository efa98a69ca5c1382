"""``cnnlab evaluate``: accuracy, loss, per-class accuracy and the confusion matrix."""

from __future__ import annotations

import argparse

import numpy as np

from ..train.inference import evaluate_checkpoint, load_trained


def add_parser(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="accuracy, loss and confusion matrix")
    evaluate.add_argument("checkpoint", metavar="CKPT")
    evaluate.add_argument("--data", help="dataset to evaluate on (default: the training one)")


def run(args: argparse.Namespace) -> int:
    data_name, test_set, results = evaluate_checkpoint(*load_trained(args.checkpoint),
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
