"""One training per output folder: a lock file holding the owner's process id.

``cnnlab train --out DIR`` takes ``DIR/.train.lock`` (created with ``O_CREAT | O_EXCL``, so of
two processes exactly one succeeds) before writing anything there and removes it when done. A
second training into the same folder refuses with one sentence instead of mixing both runs'
files. A lock whose process no longer runs (killed with ``kill -9``, a power cut) is stale: the
next run takes it over, and removes the temporary files the killed run's saves left behind.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with OutputLock(folder):
...     try:
...         OutputLock(folder).acquire()
...     except OutputLocked as error:
...         print(str(error).startswith("another training (process"))
True
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from .checkpoint import _pid_alive, remove_stale_temporaries

LOCK_NAME = ".train.lock"
_held: set[str] = set()                     # locks this process holds (threads share a pid)
_held_guard = threading.Lock()


class OutputLocked(ValueError):
    """Another running training owns the output folder."""


class OutputLock:
    """The lock of one output folder; a context manager (``acquire`` / ``release``).

    Args:
        directory: the output folder (created if missing).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.removed: list[Path] = []

    def acquire(self) -> OutputLock:
        """Take the lock, taking over a stale one; raise :class:`OutputLocked` if it is held."""
        if self.directory.exists() and not self.directory.is_dir():
            raise OutputLocked(f"the output folder {str(self.directory)!r} is a file; expected "
                               f"a folder (or a path that does not exist yet).")
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and self._alive(owner):
                    raise OutputLocked(
                        f"another training (process {owner}) is writing to "
                        f"{str(self.directory)!r}; wait for it to finish or choose another --out."
                    ) from None
                self._take_over_stale()
                continue
            with os.fdopen(fd, "w") as file:
                file.write(f"{os.getpid()}\n")
            with _held_guard:
                _held.add(str(self.path.resolve()))
            self.removed = remove_stale_temporaries(self.directory)
            return self
        raise OutputLocked(f"cannot take the lock {str(self.path)!r}: other processes keep "
                           f"replacing it.")

    def _owner(self) -> int | None:
        try:
            text = self.path.read_text(encoding="ascii", errors="replace").strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def _alive(self, pid: int) -> bool:
        if pid == os.getpid():               # ours: held by another thread, or left by a crash
            with _held_guard:
                return str(self.path.resolve()) in _held
        return _pid_alive(pid)

    def _take_over_stale(self) -> None:
        """Move the stale lock aside atomically (only one taker wins the rename), then drop it."""
        aside = self.path.with_name(f"{LOCK_NAME}.{os.getpid()}.stale")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        with contextlib.suppress(OSError):
            aside.unlink()

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        with _held_guard:
            _held.discard(str(self.path.resolve()))
        if self._owner() == os.getpid():
            with contextlib.suppress(OSError):
                self.path.unlink()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
