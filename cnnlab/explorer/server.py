"""Running the explorer: bind (127.0.0.1 unless asked), print the address, serve until Ctrl-C."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .security import LOOPBACK


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-sentence ``ValueError`` (port taken, unknown address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {error.strerror or error}; choose "
                         f"another --port or --host.") from None
    sock.listen(128)
    return sock


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def make_server(app, sock: socket.socket):
    """A uvicorn server for ``app`` on ``sock`` (``server.run(sockets=[sock])`` serves)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)
    return uvicorn.Server(config)


def serve(checkpoints: Sequence[str | Path] = (), *, host: str = "127.0.0.1", port: int = 8765,
          open_browser: bool = False, runs_dir: str | Path = "runs",
          say: Callable[[str], None] = print) -> None:
    """Load the checkpoints, bind, print the address, serve until Ctrl-C."""
    from .app import create_app

    app = create_app(checkpoints, host=host, runs_dir=runs_dir)
    sock = bind(host, port)
    url = address(sock)
    if host not in (*LOOPBACK, "::1"):
        say(f"warning: listening on {host}, so other machines on the network can reach this "
            f"server (it has no login); use the default --host 127.0.0.1 to keep it local.")
    say(f"cnnlab serve: the explorer is at {url}  (Ctrl-C stops it)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    server = make_server(app, sock)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        trainer = app.state.explorer.trainer
        if trainer.current is not None and trainer.current.state == "running":
            trainer.current.stop_requested.set()          # the run saves its last step
            trainer.current.thread.join(timeout=30)
    sys.stdout.flush()
