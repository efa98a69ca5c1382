"""The ``cnnlab`` command: argument parsing only; the work is done by the importable layers.

One module per command (``cnnlab train | evaluate | predict | summary | explain | filter | viz |
bench``), each with ``add_parser(commands)`` and ``run(args) -> exit status``. User mistakes (a
missing file, an unknown model, numbers out of range, an input too small for the network) end
with one line on stderr and exit status 2, and so do the system's errors (out of memory, disk
full, a read-only folder; see ``_common.describe_error``); ``explain --check`` exits 1 for a wrong
answer; Ctrl-C keeps the last checkpoint and exits with status 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import bench, evaluate, explain, export, filter, import_, predict, serve, summary, train, viz
from ._common import EXIT_INTERRUPTED, EXIT_USAGE, Parser, UsageError, describe_error

#: command name -> its module; the order is the order of ``cnnlab --help``.
COMMANDS = {"train": train, "evaluate": evaluate, "predict": predict, "summary": summary,
            "explain": explain, "filter": filter, "viz": viz, "bench": bench,
            "export": export, "import": import_, "serve": serve}

__all__ = ["COMMANDS", "EXIT_INTERRUPTED", "EXIT_USAGE", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(prog="cnnlab", description="Convolutional neural networks from first "
                    "principles: train, evaluate and use image classifiers.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnnlab`` console script and ``python -m cnnlab``."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else list(argv)):
        parser.print_usage(sys.stderr)               # no arguments: what to type, exit 2
        print("cnnlab: error: expected a command (cnnlab --help lists them)", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    try:
        if args.command in ("train", "evaluate", "bench"):
            from ..memory import keep_freed_memory
            from ..ops import kernels
            from ..threads import steady

            keep_freed_memory()  # this process is ours: reuse freed memory (see cnnlab.memory)
            steady()             # and share the cores gracefully (see cnnlab.threads)
            kernels.active()     # a wrong CNNLAB_KERNELS is one sentence before any work
        return COMMANDS[args.command].run(args)
    except (UsageError, ValueError, TypeError, FileNotFoundError, IsADirectoryError,
            PermissionError) as error:
        message = str(error) or type(error).__name__
        print(f"cnnlab {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"cnnlab {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (MemoryError, OSError, RecursionError, IndexError, *_pillow_errors()) as error:
        print(f"cnnlab {args.command}: error: {describe_error(error)}", file=sys.stderr)
        return EXIT_USAGE


def _pillow_errors() -> tuple[type[BaseException], ...]:
    """Pillow's errors that are not OSError or ValueError (when Pillow has been imported)."""
    image = sys.modules.get("PIL.Image")
    return (image.DecompressionBombError,) if image is not None else ()
