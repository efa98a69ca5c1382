"""A one-line progress bar per epoch on stderr: batches done, loss, accuracy and images/s.

The bar redraws in place (carriage return) at most ten times a second and ends with the
epoch's summary line (:func:`epoch_line`). It is silent (draws and prints nothing) when disabled
or when stderr is not a terminal, so logs, pipes and CI output hold no carriage returns; there,
``cnnlab train`` prints the same summary line once per epoch instead, as Keras' ``verbose=2``.
In a Jupyter notebook (and no ``stream`` given) the bar is one display output that is updated
in place, so a finished run leaves one summary line per epoch in the notebook, not one line per
redraw.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

_REDRAW_SECONDS = 0.1


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def epoch_line(epoch: int, epochs: int, logs: dict[str, float]) -> str:
    """The summary of one finished epoch, as the bar ends with it and logs print it.

    Example:
        >>> epoch_line(2, 10, {"loss": 0.25, "val_accuracy": 0.9, "images_per_s": 1234.5,
        ...                    "seconds": 3.21})
        'epoch 2/10  loss 0.2500  val_accuracy 0.9000  1,234 img/s  3.2 s'
    """
    shown = [f"{key} {value:.4f}" for key, value in logs.items()
             if key in ("loss", "accuracy", "val_loss", "val_accuracy")]
    if "images_per_s" in logs:
        shown.append(f"{logs['images_per_s']:,.0f} img/s")
    if "seconds" in logs:
        shown.append(f"{logs['seconds']:.1f} s")
    return f"epoch {epoch}/{epochs}  " + "  ".join(shown)


class EpochProgress:
    """The bar of one epoch.

    Args:
        epoch: the epoch's number, counted from 1.
        epochs: the number of the last epoch.
        steps: batches in the epoch.
        enabled: draw at all; the bar is drawn only if also ``stream`` is a terminal.
        stream: where to draw; ``sys.stderr`` by default.

    Example:
        >>> import io
        >>> bar = EpochProgress(1, 3, steps=10, stream=io.StringIO())   # not a terminal
        >>> bar.update(1, loss=0.5, accuracy=0.75, images=32)
        >>> bar.close({"loss": 0.5})
        >>> bar.enabled
        False
    """

    def __init__(self, epoch: int, epochs: int, steps: int, *, enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        from .._display import in_notebook

        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(enabled and isatty is not None and isatty())
        self._display = None            # the notebook output updated in place
        if enabled and stream is None and not self.enabled and in_notebook():
            self.enabled, self._display = True, _NotebookLine()
        self.epoch, self.epochs = epoch, epochs
        self.prefix = f"epoch {epoch}/{epochs}"
        self.steps = steps
        self.start = time.perf_counter()
        self._last_draw = -1.0
        self._width = 0

    def update(self, step: int, *, loss: float, accuracy: float, images: int) -> None:
        """Show ``step`` of ``steps`` batches done, the running loss and accuracy so far."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if step < self.steps and now - self._last_draw < _REDRAW_SECONDS:
            return
        self._last_draw = now
        elapsed = now - self.start
        rate = images / elapsed if elapsed > 0 else 0.0
        remaining = elapsed / step * (self.steps - step) if step else 0.0
        stats = (f" {step}/{self.steps}  loss {loss:.4f}  acc {accuracy:.4f}  "
                 f"{rate:,.0f} img/s  {_duration(elapsed)}<{_duration(remaining)}")
        columns = shutil.get_terminal_size((100, 20)).columns
        room = columns - len(self.prefix) - len(stats) - 4
        bar = ""
        if room >= 10:
            room = min(room, 30)
            filled = room * step // max(self.steps, 1)
            bar = " [" + "#" * filled + "." * (room - filled) + "]"
        self._write(f"{self.prefix}{bar}{stats}"[: columns - 1])

    def close(self, logs: dict[str, float]) -> None:
        """Replace the bar by the epoch's summary line (metrics of ``logs``) and a newline."""
        if not self.enabled:
            return
        self._write(epoch_line(self.epoch, self.epochs, logs))
        if self._display is None:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False

    def abandon(self) -> None:
        """End a bar cut short (an error, Ctrl-C) with a newline so later output starts clean."""
        if self.enabled and self._width and self._display is None:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False

    def _write(self, line: str) -> None:
        if self._display is not None:
            self._display.show(line)
            self._width = len(line)
            return
        padding = " " * max(self._width - len(line), 0)      # wipe what a longer line left
        self.stream.write("\r" + line + padding)
        self.stream.flush()
        self._width = len(line)


class _NotebookLine:
    """One line of text in a notebook's output, replaced on each ``show``."""

    def __init__(self) -> None:
        self._handle = None

    def show(self, line: str) -> None:
        from IPython.display import display

        data = {"text/plain": line}
        if self._handle is None:
            self._handle = display(data, raw=True, display_id=True)
        else:
            self._handle.update(data, raw=True)
