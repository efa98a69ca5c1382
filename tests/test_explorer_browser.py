"""The explorer in a real browser: Playwright driving Debian's Chromium, the way a person uses
the page (mouse strokes, clicks, keys, file uploads), checking what a person sees.

Skips where Chromium or Playwright is absent. With ``CNNLAB_SCREENSHOTS=DIR`` the screenshots
are written to DIR (docs/explorer/ holds the ones the documentation shows); set
``CNNLAB_EXPLORER_CHECKPOINT`` to a trained checkpoint to skip the one-epoch training.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(f"Chromium is not installed at {CHROMIUM}", allow_module_level=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A lenet5 trained one epoch on the embedded digits, by the job ``cnnlab train`` runs."""
    given = os.environ.get("CNNLAB_EXPLORER_CHECKPOINT")
    if given:
        return Path(given)
    from cnnlab.train.checkpoint import checkpoint_path
    from cnnlab.train.job import TrainConfig, run_training

    out = tmp_path_factory.mktemp("trained")
    run_training(TrainConfig(epochs=1, out=str(out)), progress=False, log=lambda line: None)
    return checkpoint_path(out / "model")


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    from cnnlab.explorer.app import create_app
    from cnnlab.explorer.server import address, bind, make_server

    app = create_app([trained], runs_dir=tmp_path_factory.mktemp("runs"))
    sock = bind("127.0.0.1", 0)
    uvicorn_server = make_server(app, sock)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(100):
        if uvicorn_server.started:
            break
        time.sleep(0.05)
    yield address(sock)
    uvicorn_server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    yield page
    context.close()
    assert not errors, errors


def shot(page, name):
    folder = os.environ.get("CNNLAB_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def stroke(page, points, box):
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
    page.mouse.up()


def test_draw_a_seven_and_see_seven(page):
    canvas = page.locator("#net-draw")
    page.wait_for_selector("#net-samples img")
    box = canvas.bounding_box()
    stroke(page, [(75, 75), (205, 70), (170, 140), (140, 220)], box)   # a 7 in one stroke
    sync_api.expect(page.locator("#net-label")).to_have_text("7", timeout=20000)
    assert page.locator(".prob").count() == 10
    assert page.locator(".prob.top .cls").inner_text() == "7"
    assert page.locator(".layer").count() >= 8                          # input + lenet5's layers
    assert "6×28×28" in page.locator(".layer").nth(1).inner_text()
    shot(page, "network")


def test_click_a_feature_map_value_shows_explain_models_sum(page, trained):
    from cnnlab.data import load_dataset
    from cnnlab.tools import explain
    from cnnlab.train.inference import load_trained

    page.wait_for_selector("#net-samples img")
    page.locator("#net-samples img").nth(3).click()                      # a test image of a 3
    sync_api.expect(page.locator("#net-true")).to_have_text("true label: 3", timeout=20000)
    conv = page.locator(".layer.conv").nth(1)                            # the second convolution
    conv.locator("canvas").nth(4).click(position={"x": 21, "y": 31})
    sync_api.expect(page.locator("#net-sum")).to_contain_text("Sum over the channels",
                                                              timeout=20000)
    shown = page.locator("#net-sum").inner_text()
    layer, c, i, j = re.match(r"layer (\S+) .*: output channel (\d+), row (\d+), column (\d+)",
                              shown).groups()
    assert c == "4"
    checkpoint, model, normalize = load_trained(trained)
    _, test = load_dataset("digits")
    index = int(page.locator("#net-samples img").nth(3).get_attribute("title").split()[2])
    x = normalize(test.images[index:index + 1])[0]
    assert shown == explain.model(model, x, layer, (int(c), int(i), int(j))).text
    assert "receptive field" in page.locator("#net-where").inner_text()
    shot(page, "network-worked-sum")


def test_playground_stride_steps_and_homework(page):
    page.get_by_role("button", name="Convolution playground").click()
    matrix = "; ".join(" ".join(str((3 * i + j * j) % 10) for j in range(6)) for i in range(6))
    page.locator("#pg-input").fill(matrix)
    page.locator("#pg-kernel").fill("1 0 -1; 1 0 -1; 1 0 -1")
    sync_api.expect(page.locator("#pg-output-title")).to_have_text("Output (4×4)")
    page.locator("#pg-stride").fill("2")
    sync_api.expect(page.locator("#pg-output-title")).to_have_text("Output (2×2)")
    assert "/ 2) + 1 = 2" in page.locator("#pg-formula").inner_text()
    page.locator("#pg-prev").focus()
    page.keyboard.press("ArrowRight")
    sync_api.expect(page.locator("#pg-pos")).to_contain_text("row 0, column 1")
    assert page.locator("#pg-sum").inner_text().startswith("Z[0,1] = ")
    assert page.locator("#pg-padded td.window").count() == 9
    page.keyboard.press("ArrowDown")
    sync_api.expect(page.locator("#pg-pos")).to_contain_text("row 1, column 1")
    shot(page, "playground")
    page.locator("#pg-homework").check()
    sync_api.expect(page.locator("#pg-output td")).to_have_text(["?"] * 4)
    from cnnlab.tools import explain

    right = explain.conv2d(matrix, "1 0 -1; 1 0 -1; 1 0 -1", stride=2).numbers["output"][0]
    answer = [row[:] for row in right]
    answer[1][0] += 5                                                   # one slip
    page.locator("#pg-answer").fill("; ".join(" ".join(f"{v:g}" for v in row)
                                              for row in answer))
    page.locator("#pg-check").click()
    sync_api.expect(page.locator("#pg-check-result")).to_contain_text("3 of 4 entries right")
    wrong = page.locator("#pg-output td.wrong")
    assert wrong.count() == 1
    assert wrong.inner_text() == f"{answer[1][0]:g} → {right[1][0]:g}"
    assert f"correct is {right[1][0]:g}" in page.locator("#pg-check-result").inner_text()
    shot(page, "playground-homework")


def test_playground_lecture_preset(page):
    page.get_by_role("button", name="Convolution playground").click()
    page.locator("#pg-preset").select_option(label="5×5 vertical edge")
    sync_api.expect(page.locator("#pg-output td").first).to_have_text("19")
    assert page.locator("#pg-sum").inner_text().endswith("= 19")


def test_filter_lab_uploads_a_photo(page, tmp_path):
    from PIL import Image, ImageDraw

    path = Path(__file__).parents[1] / "docs" / "gallery" / "astronaut.png"   # the gallery's
    if not path.exists():                                                  # photo, or a drawing
        yy, xx = np.mgrid[0:256, 0:256]
        sky = np.stack([110 + yy // 3, 150 + yy // 4, 230 - yy // 4], -1).astype(np.uint8)
        picture = Image.fromarray(sky)
        draw = ImageDraw.Draw(picture)
        draw.ellipse((190, 30, 240, 80), fill=(250, 220, 80))
        draw.polygon([(0, 200), (90, 110), (170, 200)], fill=(70, 110, 60))
        draw.rectangle((60, 160, 110, 256), fill=(200, 80, 60))
        path = tmp_path / "photo.png"
        picture.save(path)
    size = "×".join(map(str, Image.open(path).size[::-1]))
    page.get_by_role("button", name="Filter lab").click()
    page.locator("#fl-kernel-name").select_option("sobel")
    page.locator("#fl-upload").set_input_files(str(path))
    sync_api.expect(page.locator("#fl-result-caption")).to_contain_text(size)
    assert "signed values: abs" in page.locator("#fl-result-caption").inner_text()
    from cnnlab.tools import filters

    assert page.locator("#fl-kernel-text").inner_text() == filters.format_kernel("sobel")
    page.locator("#fl-kernel").fill("1 x")
    page.locator("#fl-apply").click()
    sync_api.expect(page.locator("#fl-error")).not_to_be_empty()
    page.locator("#fl-kernel").fill("")
    page.locator("#fl-apply").click()
    sync_api.expect(page.locator("#fl-error")).to_be_empty()
    shot(page, "filter-lab")


def test_training_curve_grows_then_stop_and_open(page):
    page.get_by_role("button", name="Train").click()
    page.locator("#tr-epochs").fill("1")
    page.locator("#tr-start").click()
    sync_api.expect(page.locator("#tr-status")).to_have_text(re.compile(r"step \d+ of"),
                                                             timeout=120000)
    first = int(re.search(r"step (\d+)", page.locator("#tr-status").inner_text()).group(1))
    sync_api.expect(page.locator("#tr-status")).to_have_text(          # the curve grows
        re.compile(rf"step ({'|'.join(str(n) for n in range(first + 8, first + 200))}) of"),
        timeout=120000)
    assert page.locator("#tr-filters canvas").count() == 6
    shot(page, "train")
    page.locator("#tr-stop").click()
    sync_api.expect(page.locator("#tr-status")).to_have_text("stopped.", timeout=120000)
    page.get_by_role("button", name="Open it in the network view").click()
    sync_api.expect(page.locator("#net-model")).to_have_value(re.compile("m2"))
