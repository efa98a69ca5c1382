"""What keeps a local server local: the ``Host`` check against DNS rebinding, the ``Origin``
check against other sites posting to it, and capped request bodies.

A web page on another site can make the user's browser send requests to ``127.0.0.1``; with DNS
rebinding it can even read the answers, but then its requests carry that site's name in the
``Host`` header, which is refused here (403). Cross-site form posts carry an ``Origin`` header
naming the other site, also refused. The client never names a server path: requests carry
images, numbers and names of models and data sets, nothing the server opens as a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from .errors import ApiError

LOOPBACK = ("localhost", "127.0.0.1")


def allowed_hosts(bound: str) -> frozenset[str]:
    """The host names a request may carry: the bound address, ``localhost``, ``127.0.0.1``."""
    names = {*LOOPBACK, bound.lower()}
    if bound == "::1":
        names.add("[::1]")
    return frozenset(names)


def host_name(header: str) -> str:
    """``"localhost:8765"`` -> ``"localhost"``, ``"[::1]:80"`` -> ``"[::1]"``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[:header.find("]") + 1]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class LocalOnly:
    """ASGI middleware: 403 for a foreign ``Host``, or a foreign ``Origin`` on a write."""

    def __init__(self, app, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(hosts)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = host_name(headers.get("host", ""))
        message = None
        if host not in self.hosts:
            message = (f"this server answers requests for {', '.join(sorted(self.hosts))}, "
                       f"received Host {headers.get('host', '(none)')!r}.")
        elif scope["method"] not in ("GET", "HEAD") and "origin" in headers:
            origin = urlsplit(headers["origin"]).netloc.lower()
            if origin != headers.get("host", "").lower():
                message = (f"requests that change something must come from this page, "
                           f"received Origin {headers['origin']!r}.")
        if message is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def read_body(request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to pass ``limit`` bytes: first
    from ``Content-Length``, then while reading (a client may lie or stream)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(f"expected a numeric Content-Length, received {declared!r}.") from None
        if size > limit:
            raise ApiError(f"the upload is {size:,} bytes; the limit is {limit:,} bytes.", 413)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiError(f"the upload passed the limit of {limit:,} bytes.", 413)
        chunks.append(chunk)
    return b"".join(chunks)
