"""LeNet-5 training throughput: cnnlab against the identical PyTorch model, same process.

Both train LeNet-5 (28×28 inputs, SGD with momentum, cross-entropy) on the same random float32
batches, taking turns in rounds with a pause between turns (so that one library's idle worker
threads do not slow the other); the median round gives images/s. This is the ``train`` part of
``cnnlab bench``, kept as a script for the numbers recorded in RESULTS.md.

    python benchmarks/lenet_train.py [--rounds 7] [--batch-size 64] [--json FILE]
"""

from __future__ import annotations

import argparse
import json

import cnnlab
from cnnlab.tools import bench


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (median)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    cnnlab.memory.keep_freed_memory()              # as `cnnlab train` does
    report = bench.run(("train",), rounds=args.rounds, batch_size=args.batch_size)
    print(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.train, f, indent=2)
    return report.train


if __name__ == "__main__":
    main()
