"""The explorer's latency: server time for a drawing's prediction plus every feature map
(``POST /api/network``), for lenet5 and small_vgg, and the first page load on localhost.

Goals (issue 10): lenet5 < 50 ms, small_vgg < 300 ms, first page load < 1 s. The models have
their initial weights (latency does not depend on what they learned). Three numbers per model:
``forward`` (cnnlab's work: preparing the image, predict and every layer's output), ``network``
(the whole request in-process: upload parsing, the work, JSON of every feature map) and
``predict`` (the whole ``POST /api/predict``); medians over ``--repeat`` runs after one warm-up.

    python benchmarks/explorer_latency.py [--repeat 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np


def drawing() -> bytes:
    """A 280×280 canvas with a white 7, as the page sends it."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (280, 280), "black")
    ImageDraw.Draw(image).line([(75, 75), (205, 70), (170, 140), (140, 220)], fill="white",
                               width=24, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def checkpoint(folder: Path, name: str) -> Path:
    import cnnlab
    from cnnlab import models
    from cnnlab.train import save_checkpoint

    cnnlab.manual_seed(0)
    args = {"in_channels": 1, "input_size": 28, "num_classes": 10}
    return save_checkpoint(folder / f"{name}.npz", models.get(name, **args), model_name=name,
                           model_args=args, epoch=0,
                           config={"data": "digits", "normalize": {"mean": [0.13],
                                                                   "std": [0.31]}})


def median_ms(fn, repeat: int) -> float:
    for _ in range(3):              # warm-up: the engine picks its algorithms per shape once
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return round(statistics.median(times), 1)


def model_latency(path: Path, repeat: int) -> dict:
    from cnnlab.explorer import create_app
    from cnnlab.explorer.network import forward, image_input, load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    served = load(path, "m1")
    data = drawing()
    result = {"forward": median_ms(lambda: forward(served, image_input(served, data)), repeat)}
    with TestClient(create_app([path]), base_url="http://127.0.0.1") as client:
        files = {"image": ("drawing.png", data, "image/png")}

        def request(url):
            r = client.post(url, files=files)
            assert r.status_code == 200, r.text
            return r
        result["network"] = median_ms(lambda: request("/api/network"), repeat)
        result["predict"] = median_ms(lambda: request("/api/predict"), repeat)
        result["network_json_kb"] = round(len(request("/api/network").content) / 1024, 1)
    return result


def page_load(path: Path) -> dict:
    """First load of the page on a real server: the HTML, its CSS and modules, and the JSON the
    views ask for at start; with Chromium, also the browser's own timing (until the page shows
    the test images, its last start-up request)."""
    from cnnlab.explorer.app import create_app
    from cnnlab.explorer.server import address, bind, make_server

    sock = bind("127.0.0.1", 0)
    server = make_server(create_app([path]), sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    url = address(sock)
    static = Path(__file__).parents[1] / "cnnlab" / "explorer" / "static"
    urls = [url] + [f"{url}static/{f.name}" for f in sorted(static.iterdir())] + [
        f"{url}api/{p}" for p in ("health", "models", "presets", "kernels", "train",
                                  "samples?model=m1")]
    start = time.perf_counter()
    for u in urls:
        with urllib.request.urlopen(u) as response:
            response.read()
    result = {"sequential_requests": len(urls),
              "sequential_ms": round(1000 * (time.perf_counter() - start), 1)}
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox"])
            page = browser.new_page()
            start = time.perf_counter()
            page.goto(url)                              # the load event, then the views'
            page.wait_for_selector("#net-samples img")  # first data: the test images shown
            result["chromium_ms"] = round(1000 * (time.perf_counter() - start), 1)
            browser.close()
    except Exception as error:                  # no Playwright or no Chromium here
        result["chromium_ms"] = f"not measured ({type(error).__name__}: {str(error)[:300]})"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp())
    report = {name: model_latency(checkpoint(folder, name), args.repeat)
              for name in ("lenet5", "small_vgg")}
    report["page_load"] = page_load(checkpoint(folder, "lenet5"))
    for name in ("lenet5", "small_vgg"):
        r = report[name]
        print(f"{name:<10} forward {r['forward']:7.1f} ms   POST /api/network {r['network']:7.1f}"
              f" ms ({r['network_json_kb']} kB JSON)   POST /api/predict {r['predict']:6.1f} ms")
    load = report["page_load"]
    print(f"first page load: {load['sequential_requests']} requests one after the other "
          f"{load['sequential_ms']} ms; Chromium until the page is drawn {load['chromium_ms']} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
