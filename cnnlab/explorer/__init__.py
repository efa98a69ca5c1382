"""The explorer: ``cnnlab serve``, a local web app that shows what a CNN computes, on your own
checkpoint (network view, convolution playground, filter lab, training with live curves).

Needs the optional extra ``web`` (Starlette and uvicorn): ``pip install "cnnlab[web]"``.
The server is a thin JSON layer over :mod:`cnnlab.tools` and :mod:`cnnlab.train`; the page in
``static/`` draws what it answers.
"""

from __future__ import annotations


def create_app(*args, **kwargs):
    """See :func:`cnnlab.explorer.app.create_app` (imported here lazily: Starlette is optional)."""
    from .app import create_app as create

    return create(*args, **kwargs)


__all__ = ["create_app"]
