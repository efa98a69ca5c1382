"""The explorer's answers that a mutation test (seed 3, 2026-12-03) found untested: whole
sentences, keys of the JSON the page reads, the model a request names, the warm-up, and the
playground's limits at their exact boundaries (tests/MUTATION.md, "second pass")."""

from __future__ import annotations

import io
import threading
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

with __import__("warnings").catch_warnings():        # "use httpx2": httpx still works
    __import__("warnings").simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from cnnlab import models  # noqa: E402
from cnnlab.explorer import create_app  # noqa: E402
from cnnlab.explorer.errors import ApiError  # noqa: E402
from cnnlab.tools import explain  # noqa: E402
from cnnlab.train import save_checkpoint  # noqa: E402

BASE = "http://127.0.0.1:8765"


def _checkpoint(path, seed: int, data: str = "digits"):
    import cnnlab

    cnnlab.manual_seed(seed)
    args = {"in_channels": 1, "input_size": 28, "num_classes": 10}
    return save_checkpoint(path, models.get("lenet5", **args), model_name="lenet5",
                           model_args=args, epoch=0,
                           config={"data": data, "classes": [str(i) for i in range(10)]})


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two")
    return _checkpoint(folder / "a", 0), _checkpoint(folder / "b", 1)


@pytest.fixture()
def app(two_models, tmp_path):
    return create_app(list(two_models), runs_dir=tmp_path / "runs")


@pytest.fixture()
def client(app):
    with TestClient(app, base_url=BASE) as c:
        yield c


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    return response.json()["error"]


def _png_seven() -> bytes:
    from PIL import Image

    a = np.zeros((28, 28), np.uint8)
    a[6:9, 7:21] = 255
    a[9:23, 12:15] = 255
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------ app.py
def test_a_value_is_explained_for_the_model_the_body_names(client):
    """`model` in the JSON body picks the model (app: explain_value's `self.model(request,
    body)`): an image shown to m2 is explained by m2, not by the first model served."""
    files = {"image": ("seven.png", _png_seven(), "image/png")}
    shown = client.post("/api/network?model=m2", files=files)
    assert shown.status_code == 200, shown.text
    token = shown.json()["input_id"]
    r = client.post("/api/network/explain", json={"model": "m2", "input_id": token,
                                                  "layer": 0, "at": [0, 0, 0]})
    assert r.status_code == 200, r.text
    assert "no longer known" in _error(client.post("/api/network/explain", json={
        "model": "m1", "input_id": token, "layer": 0, "at": [0, 0, 0]}), 404)


def test_a_playground_body_that_is_not_an_object_is_named(client):
    assert _error(client.post("/api/explain/conv", json=[1, 2]), 400) == (
        "expected a JSON object of settings, received list.")


def test_the_static_files_are_mounted_as_static(app):
    assert app.url_path_for("static", path="/app.css") == "/static/app.css"


def test_the_warm_up_reads_each_models_test_images_and_skips_the_missing(tmp_path, two_models):
    missing = _checkpoint(tmp_path / "nope", 2, data="nope")
    app = create_app([two_models[0], missing], runs_dir=tmp_path / "runs")
    explorer = app.state.explorer
    explorer.read_test_images()                # what the warm-up thread runs: never raises
    first, second = explorer.models.values()
    assert first.tests is not None and len(first.tests) > 0
    assert second.tests is None


# ------------------------------------------------------------------ network.py
def test_the_scores_come_from_the_one_forward_pass(app, monkeypatch):
    """When the last layer gives the scores, `forward` takes their softmax instead of running
    the model a second time through `predict`."""
    from cnnlab.explorer.network import forward
    from cnnlab.train import predict

    served = app.state.explorer.models["m1"]
    x = np.random.default_rng(0).standard_normal((1, 28, 28)).astype(np.float32)
    expected = predict(served.model, x[None])[0]

    def second_pass(*args, **kwargs):
        raise AssertionError("forward ran the model a second time")

    monkeypatch.setattr("cnnlab.train.predict", second_pass)
    answer = forward(served, x)
    np.testing.assert_allclose(answer["probabilities"], expected, rtol=1e-5, atol=1e-7)


def test_the_receptive_field_box_reads_each_axis_of_its_own_field():
    """A field 3 rows × 5 columns, starting at (1, 2), jumping (1, 2), on a 10×12 image."""
    from cnnlab.explorer.network import field_box

    field = SimpleNamespace(whole=False, size=(3, 5), start=(1, 2), jump=(1, 2))
    served = SimpleNamespace(table=SimpleNamespace(rows=[SimpleNamespace(field=field)]),
                             input_shape=(1, 10, 12))
    # rows: centre 1 + 2·1 = 3, ±1; columns: centre 2 + 3·2 = 8, ±2, clipped at 11
    assert field_box(served, 0, (0, 2, 3)) == {"top": 2, "bottom": 4, "left": 6, "right": 10,
                                               "whole": False, "size": [3, 5]}
    assert field_box(served, 0, (0, 0, 5)) == {"top": 0, "bottom": 2, "left": 10,
                                               "right": 11, "whole": False, "size": [3, 5]}


def test_test_images_are_never_downloaded(monkeypatch):
    """The explorer reads the test split only where it is on this machine."""
    from cnnlab.explorer.network import test_images

    calls = []

    def load_dataset(name, *args, **kwargs):
        calls.append((name, args, kwargs))
        raise FileNotFoundError("mnist: not on this machine")

    monkeypatch.setattr("cnnlab.data.load_dataset", load_dataset)
    served = SimpleNamespace(reading=threading.Lock(), tests=None,
                             checkpoint=SimpleNamespace(config={"data": "mnist"}))
    with pytest.raises(ApiError) as error:
        test_images(served)
    assert error.value.status == 404 and str(error.value) == (
        "the test images of 'mnist' are not available here: mnist: not on this machine")
    assert calls == [("mnist", (), {"download": False})]


# ------------------------------------------------------------------ playground.py
CONV = {"input": "1 2 3; 4 5 6; 7 8 9", "kernel": "1 0; 0 -1"}


def _formula(e) -> list[str]:
    start = next(i for i, line in enumerate(e.lines) if line.startswith("Output size"))
    return e.lines[start:start + 3]


def test_the_conv_answer_is_explains_text_kernel_and_formula(client):
    body = client.post("/api/explain/conv", json=CONV).json()
    e = explain.conv2d(CONV["input"], CONV["kernel"])
    assert body["text"] == e.text
    assert body["kernel"] == e.numbers["kernel"] == [[[[1.0, 0.0], [0.0, -1.0]]]]
    assert body["formula"] == _formula(e) and len(body["formula"]) == 3
    assert body["formula"][0].startswith("Output size")
    pool = client.post("/api/explain/pool", json={"input": "1 2; 3 4", "size": 2}).json()
    assert pool["formula"] == _formula(explain.pool("1 2; 3 4", 2))


def test_a_pooling_entry_is_the_one_asked_for(client):
    body = client.post("/api/explain/pool", json={"input": "1 2 0; 3 4 9; 0 0 1", "size": 2,
                                                  "stride": 1, "at": [1, 1]}).json()
    assert body["entry"]["index"] == [0, 1, 1]
    assert body["entry"]["text"].endswith("= 9")


def test_a_missing_input_is_one_sentence(client):
    assert _error(client.post("/api/explain/conv", json={"kernel": "1"}), 400) == (
        "expected 'input': a matrix such as \"1 2; 3 4\".")


def test_the_playground_takes_4096_values_and_no_more(client):
    r = client.post("/api/explain/relu", json={"input": " ".join(["1"] * 4096)})
    assert r.status_code == 200, r.text
    assert _error(client.post("/api/explain/relu", json={"input": " ".join(["1"] * 4097)}),
                  413) == "the input has 4,097 values; the playground takes at most 4096."


def test_padding_up_to_64_and_no_more(client):
    for padding in (64, [64, 0, 0, 64]):
        r = client.post("/api/explain/conv", json={"input": "1", "kernel": "1",
                                                   "padding": padding})
        assert r.status_code == 200, r.text
    assert r.json()["output_shape"] == [1, 65, 65]
    for padding in (65, [0, 65, 0, 0]):
        assert _error(client.post("/api/explain/conv", json={"input": "1", "kernel": "1",
                                                             "padding": padding}), 400) == (
            "padding must be 'valid', 'same', 'same-pytorch', an integer in 0..64 or "
            f"[top, bottom, left, right], received {padding!r}.")


def test_same_pytorch_takes_a_stride_pair_of_ones(client):
    r = client.post("/api/explain/conv", json={**CONV, "padding": "same-pytorch",
                                               "stride": [1, 1]})
    assert r.status_code == 200, r.text
    assert r.json()["output_shape"] == [1, 3, 3]
    assert "PyTorch refuses" in _error(client.post("/api/explain/conv", json={
        **CONV, "padding": "same-pytorch", "stride": [1, 2]}), 400)
