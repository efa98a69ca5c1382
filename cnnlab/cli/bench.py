"""``cnnlab bench``: time cnnlab against PyTorch on the same work."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..train.job import write_json
from ._common import check_writable, positive_int


def add_parser(commands) -> None:
    bench = commands.add_parser("bench", help="time cnnlab against PyTorch on the same work",
                                description="Conv2d forward+backward suite, LeNet-5 training "
                                "and inference throughput, peak memory, a scaling table, the "
                                "compiled kernels' first-run compile time and training with "
                                "one core busy; with PyTorch installed, each against the "
                                "identical torch work (ratio = torch time / cnnlab time).")
    bench.add_argument("--only", type=_parts, default=None, metavar="PART[,PART...]",
                       help="conv, train, infer, memory, scaling, compile, load (default: all)")
    bench.add_argument("--rounds", type=positive_int, default=5,
                       help="alternating rounds per measurement; the median is reported")
    bench.add_argument("--batch-size", type=positive_int, default=64,
                       help="LeNet-5 batch for train, infer and memory (default 64)")
    bench.add_argument("--no-torch", action="store_true", help="time cnnlab alone")
    bench.add_argument("--quick", action="store_true",
                       help="one short round and a small scaling table (a smoke test)")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def _parts(text: str) -> tuple[str, ...]:
    from ..tools.bench import PARTS

    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if not parts or unknown:
        raise argparse.ArgumentTypeError(
            f"expected parts among {','.join(PARTS)}, received {text!r}")
    return parts


def run(args: argparse.Namespace) -> int:
    from ..tools import bench

    if args.json:
        check_writable(Path(args.json))
    report = bench.run(args.only or bench.PARTS, rounds=args.rounds, quick=args.quick,
                       use_torch=not args.no_torch, batch_size=args.batch_size)
    print(report)
    if args.json:
        write_json(Path(args.json), report.to_json())
    return 0
