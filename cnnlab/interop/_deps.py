"""The optional packages of ``cnnlab[interop]``, imported on first use with one clear message."""

from __future__ import annotations

import importlib


def require(module: str):
    """``import module`` or an ``ImportError`` of one sentence saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise ImportError(
            f"this needs the {package!r} package, which is not installed; install it with: "
            f'pip install "cnnlab[interop]".'
        ) from None
