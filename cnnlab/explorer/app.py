"""The explorer's web application: routes that parse a request, call the function the command
line calls, and answer JSON (the page under ``static/`` draws it).

Why Starlette on uvicorn: a small, well-kept ASGI toolkit (the layer FastAPI is built on) with
routing, static files, multipart forms, streaming responses for server-sent events, and an
in-process test client; nothing more is needed, and nothing is generated from type hints.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .errors import ApiError, one_sentence
from .security import LocalOnly, allowed_hosts, read_body

STATIC = Path(__file__).parent / "static"
PRESETS = Path(__file__).parent / "presets.json"
MAX_UPLOAD_BYTES = 8 * 1024 * 1024     # an uploaded photo or drawing
MAX_PIXELS = 12_000_000               # its width × height, checked before decoding
MAX_JSON_BYTES = 256 * 1024            # a playground or settings request

log = logging.getLogger("cnnlab.explorer")


def api(handler):
    """Every route answers JSON; a mistake in the request is ``{"error": ...}`` with a 4xx
    status, and an unexpected failure a 500 with one sentence (the server keeps running)."""
    @functools.wraps(handler)
    async def route(request: Request) -> Response:
        try:
            result = await handler(request)
        except ApiError as error:
            return JSONResponse({"error": error.message}, status_code=error.status)
        except (ValueError, TypeError) as error:               # cnnlab's one-sentence mistakes
            return JSONResponse({"error": one_sentence(error)}, status_code=400)
        except Exception as error:                              # a bug: logged, reported
            log.exception("request %s failed", request.url.path)
            return JSONResponse({"error": f"internal error ({type(error).__name__}): "
                                          f"{one_sentence(error)}"}, status_code=500)
        return result if isinstance(result, Response) else JSONResponse(result)
    return route


async def json_body(request: Request) -> Any:
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise ApiError(f"expected a JSON body (Content-Type application/json), received "
                       f"Content-Type {request.headers.get('content-type', '(none)')!r}.", 415)
    body = await read_body(request, MAX_JSON_BYTES)
    try:
        return json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError("the request body is not valid JSON.") from None


class Explorer:
    """The state behind the routes: served checkpoints, recent inputs, the training runner."""

    def __init__(self, checkpoints: Sequence[str | Path], runs_dir: str | Path,
                 max_upload_bytes: int, max_pixels: int) -> None:
        from .network import InputCache, load
        from .training import Trainer

        self.models: dict[str, Any] = {}
        for path in checkpoints:
            served = load(path, f"m{len(self.models) + 1}")
            self.models[served.id] = served
        self.inputs = InputCache()
        self.trainer = Trainer(Path(runs_dir), self.open_trained)
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        threading.Thread(target=self.read_test_images, name="cnnlab-warm-up",
                         daemon=True).start()

    def read_test_images(self) -> None:
        """Read the served models' test images now, not when the page first asks for them."""
        from .network import test_images

        for served in list(self.models.values()):
            with contextlib.suppress(ApiError):
                test_images(served)

    def open_trained(self, path: Path) -> dict[str, Any]:
        from .network import load

        served = load(path, f"m{len(self.models) + 1}")
        self.models[served.id] = served
        return {"id": served.id, "name": served.name}

    def model(self, request: Request, body: Any = None) -> Any:
        wanted = (body.get("model") if isinstance(body, dict) else None) \
            or request.query_params.get("model")
        if not self.models:
            raise ApiError("no checkpoint is served: start cnnlab serve with a CHECKPOINT, or "
                           "train one on the Train page.", 404)
        if wanted is None:
            return next(iter(self.models.values()))
        if wanted not in self.models:
            raise ApiError(f"unknown model {wanted!r}; served: {', '.join(self.models)}.", 404)
        return self.models[wanted]

    # ------------------------------------------------------------------ routes
    async def health(self, request: Request):
        from .. import __version__

        return {"status": "ok", "version": __version__}

    async def list_models(self, request: Request):
        return {"models": [m.describe() for m in self.models.values()]}

    async def upload(self, request: Request) -> tuple[bytes, dict[str, str]]:
        from .uploads import image_field

        return await image_field(request, self.max_upload_bytes, self.max_pixels)

    async def predict(self, request: Request):
        from ..train import predict
        from .network import image_input

        served = self.model(request)
        data, _ = await self.upload(request)

        def work():
            x = image_input(served, data)
            with served.lock:
                p = predict(served.model, x[None])[0]
            return {"label": served.classes[int(p.argmax())], "classes": served.classes,
                    "probabilities": [float(v) for v in p]}
        return await run_in_threadpool(work)

    async def network(self, request: Request):
        from .network import forward, image_input, sample_input

        if request.headers.get("content-type", "").startswith("application/json"):
            body = await json_body(request)
            if not isinstance(body, dict):
                raise ApiError(f"expected a JSON object such as {{\"sample\": 17}}, received "
                               f"{type(body).__name__}.")
            served = self.model(request, body)
            x, true = await run_in_threadpool(sample_input, served, body.get("sample"))
            true_label = served.classes[true]
        else:
            served = self.model(request)
            data, _ = await self.upload(request)
            x, true_label = await run_in_threadpool(image_input, served, data), None
        result = await run_in_threadpool(forward, served, x)
        return {**result, "model": served.id, "input_id": self.inputs.add(served.id, x),
                "true_label": true_label}

    async def samples(self, request: Request):
        from .network import samples

        served = self.model(request)
        return {"model": served.id, "samples": await run_in_threadpool(samples, served)}

    async def explain_value(self, request: Request):
        from .network import explain_value

        body = await json_body(request)
        if not isinstance(body, dict):
            raise ApiError("expected a JSON object with model, input_id, layer and at.")
        served = self.model(request, body)
        x = self.inputs.get(body.get("input_id"), served.id)
        return await run_in_threadpool(explain_value, served, x, body.get("layer"),
                                       body.get("at"))

    async def playground(self, request: Request):
        from . import playground

        body = await json_body(request)
        if not isinstance(body, dict):
            raise ApiError(f"expected a JSON object of settings, received "
                           f"{type(body).__name__}.")
        what = request.path_params["what"]
        handler = {"conv": playground.conv, "pool": playground.pool,
                   "relu": playground.relu}.get(what)
        if handler is None:
            raise ApiError(f"unknown operation {what!r}; expected conv, pool or relu.", 404)
        return await run_in_threadpool(handler, body)

    async def presets(self, request: Request):
        return json.loads(PRESETS.read_text())

    async def kernels(self, request: Request):
        from ..tools import filters

        return {"kernels": [{"name": f.name, "description": f.description,
                             "text": filters.format_kernel(f.name)}
                            for f in filters.FILTERS.values()]}

    async def filter(self, request: Request):
        from . import filterlab

        data, fields = await self.upload(request)
        return await run_in_threadpool(filterlab.run, data, fields)

    async def train_start(self, request: Request):
        body = await json_body(request)
        run = self.trainer.start(body)
        return JSONResponse({"state": run.state, "config": vars(run.config)}, status_code=202)

    async def train_stop(self, request: Request):
        return self.trainer.stop().status()

    async def train_status(self, request: Request):
        from .. import models
        from .training import DATASETS

        run = self.trainer.current
        options = {"models": models.available(), "data": list(DATASETS)}
        return {**({"state": "idle"} if run is None else run.status()), "options": options}

    async def train_events(self, request: Request):
        run = self.trainer.current
        if run is None:
            raise ApiError("no training has been started.", 404)
        try:
            start = max(0, int(request.query_params.get("after", 0)))
        except ValueError:
            raise ApiError("after must be an event count.") from None

        async def stream():
            sent = start
            while True:
                with run.changed:
                    events, state = run.events[sent:], run.state
                for event in events:
                    yield (f"id: {sent + 1}\nevent: {event['event']}\n"
                           f"data: {json.dumps(event['data'])}\n\n")
                    sent += 1
                if state != "running" and not events:
                    return
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.1)
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def index(self, request: Request):
        return FileResponse(STATIC / "index.html")


def create_app(checkpoints: Sequence[str | Path] = (), *, host: str = "127.0.0.1",
               runs_dir: str | Path = "runs", max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_pixels: int = MAX_PIXELS):
    """The explorer as an ASGI application.

    Args:
        checkpoints: checkpoint files to serve (loaded now: a bad one raises ``ValueError``).
        host: the address the server binds; requests must name it, ``localhost`` or
            ``127.0.0.1`` in their ``Host`` header.
        runs_dir: where trainings started from the page write their checkpoints.
        max_upload_bytes, max_pixels: caps of an uploaded image.
    """
    state = Explorer(checkpoints, runs_dir, max_upload_bytes, max_pixels)
    routes = [Route("/", state.index),
              Route("/api/health", api(state.health)),
              Route("/api/models", api(state.list_models)),
              Route("/api/predict", api(state.predict), methods=["POST"]),
              Route("/api/network", api(state.network), methods=["POST"]),
              Route("/api/network/explain", api(state.explain_value), methods=["POST"]),
              Route("/api/samples", api(state.samples)),
              Route("/api/presets", api(state.presets)),
              Route("/api/kernels", api(state.kernels)),
              Route("/api/explain/{what}", api(state.playground), methods=["POST"]),
              Route("/api/filter", api(state.filter), methods=["POST"]),
              Route("/api/train", api(state.train_status)),
              Route("/api/train/start", api(state.train_start), methods=["POST"]),
              Route("/api/train/stop", api(state.train_stop), methods=["POST"]),
              Route("/api/train/events", api(state.train_events)),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]

    async def not_found(request, exc):
        status = getattr(exc, "status_code", 404)
        message = {404: f"no such page or API route: {request.url.path}.",
                   405: f"{request.method} is not allowed on {request.url.path}."}.get(
            status, f"{getattr(exc, 'detail', 'request refused')}.")
        return JSONResponse({"error": message}, status_code=status)

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.explorer = state
    app.add_middleware(LocalOnly, hosts=allowed_hosts(host))
    return app
