"""Errors the explorer's API returns: ``{"error": "<one sentence>"}`` with a 4xx status."""

from __future__ import annotations


class ApiError(Exception):
    """A request the server refuses; ``status`` is the HTTP status (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def one_sentence(error: BaseException) -> str:
    """The error's message as one sentence (never empty, never a traceback)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if text.endswith((".", "!", "?")) else text + "."
