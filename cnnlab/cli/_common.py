"""What every command shares: exit codes, the one-line usage error, argument types, and writing
result files safely."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse that reports mistakes in one line (exit 2), without the usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, received {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number, received {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text}")
    return value


def channels(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated channel counts such as 6,16, received {text!r}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"channel counts must be positive, received {text!r}")
    return values


def int_or_pair(text: str, minimum: int = 1):
    """``"2"`` -> 2, ``"2,3"`` -> (2, 3) (each at least ``minimum``)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or min(values) < minimum:
        raise argparse.ArgumentTypeError(
            f"expected an integer ≥ {minimum} or two (R,C), received {text!r}")
    return values[0] if len(values) == 1 else values


def int_or_pair_nonneg(text: str):
    return int_or_pair(text, minimum=0)


def padding_arg(text: str):
    return text if text in ("valid", "same") else int_or_pair(text, minimum=0)


def check_writable(path: Path) -> None:
    """Fail before a long run, not after it, when the result file cannot be written."""
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: the directory {path.parent} does not exist.")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory, expected a file name.")


def save_image(pixels: np.ndarray, path: Path) -> None:
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


def add_image_options(parser, invert: bool = True) -> None:
    """``--max-pixels`` (every command that reads images) and ``--invert`` (those that feed a
    trained model)."""
    parser.add_argument("--max-pixels", type=positive_int, default=None, metavar="N",
                        help="refuse images of more pixels (width × height) before decoding "
                             "them (default 25,000,000, or $CNNLAB_MAX_PIXELS)")
    if invert:
        parser.add_argument("--invert", choices=("auto", "never", "always"), default="auto",
                            help="auto (default): invert an image whose background is the "
                                 "opposite of the training images' (light vs dark, recorded in "
                                 "the checkpoint); never; always")


def describe_error(error: BaseException) -> str:
    """One sentence for an error the system raised (memory, disk, recursion...) on a command."""
    import errno

    if isinstance(error, MemoryError):
        return ("ran out of memory (the input or the model is too large for this machine; "
                "use smaller images, a smaller --batch-size or a smaller model).")
    if isinstance(error, RecursionError):
        return "the input is nested too deeply to process (maximum recursion depth exceeded)."
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EROFS: "the file system is read-only",
                  errno.EACCES: "permission denied",
                  errno.EEXIST: "a file is already there, where a folder or a new file was "
                                "expected",
                  errno.ENOTDIR: "a part of the path is a file, expected a folder",
                  errno.EISDIR: "it is a folder, expected a file"}.get(
                      error.errno, error.strerror or str(error) or type(error).__name__)
        return f"cannot read or write a file{where}: {reason}."
    text = str(error).rstrip(".") or type(error).__name__
    return f"{text} ({type(error).__name__})."
