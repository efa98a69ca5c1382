"""The explorer's JSON API, in-process (Starlette's test client): every number it answers is
the number the command line's functions compute; every mistake is one sentence with a 4xx."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

with __import__("warnings").catch_warnings():        # "use httpx2": httpx still works
    __import__("warnings").simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from helpers import LECTURE_EXAMPLES  # noqa: E402

from cnnlab import models  # noqa: E402
from cnnlab.explorer import create_app  # noqa: E402
from cnnlab.tools import explain  # noqa: E402
from cnnlab.train import predict, save_checkpoint  # noqa: E402
from cnnlab.train.inference import load_trained, model_inputs  # noqa: E402

BASE = "http://127.0.0.1:8765"


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def seven() -> bytes:
    """A white 7 on black, 28×28."""
    a = np.zeros((28, 28), np.uint8)
    a[6:9, 7:21] = 255
    for r in range(9, 23):
        c = 20 - (r - 9) // 2
        a[r, c - 1:c + 2] = 255
    return png(a)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A lenet5 with its initial (random) weights, saved as training saves it."""
    import cnnlab

    cnnlab.manual_seed(0)
    args = {"in_channels": 1, "input_size": 28, "num_classes": 10}
    model = models.get("lenet5", **args)
    path = tmp_path_factory.mktemp("ckpt") / "model"
    return save_checkpoint(path, model, model_name="lenet5", model_args=args, epoch=0,
                           config={"data": "digits", "classes": [str(i) for i in range(10)],
                                   "normalize": {"mean": [0.13], "std": [0.31]}})


@pytest.fixture()
def client(checkpoint, tmp_path):
    app = create_app([checkpoint], runs_dir=tmp_path / "runs", max_upload_bytes=200_000,
                     max_pixels=1_000_000)
    with TestClient(app, base_url=BASE) as c:
        yield c


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    message = body["error"]
    assert message.endswith(".") and "\n" not in message and "Traceback" not in message
    return message


def test_health(client):
    import cnnlab

    r = client.get("/api/health")
    assert r.status_code == 200 and r.json() == {"status": "ok", "version": cnnlab.__version__}


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "<script type=\"module\"" in page.text
    assert "http://" not in page.text.replace("http://www.w3.org", "")     # nothing external
    for name in ("app.css", "api.js", "draw.js", "network.js", "playground.js", "filters.js",
                 "train.js", "main.js"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and len(r.text) > 100, name
        assert "https://" not in r.text, f"{name} reaches outside the package"


def test_predict_matches_the_cli_functions(client, checkpoint, tmp_path):
    image = tmp_path / "seven.png"
    image.write_bytes(seven())
    ckpt, model, normalize = load_trained(checkpoint)
    expected = predict(model, model_inputs(ckpt, normalize, [image]))[0]
    r = client.post("/api/predict", files={"image": ("seven.png", seven(), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    np.testing.assert_allclose(body["probabilities"], expected, rtol=1e-6)
    assert body["label"] == str(int(np.argmax(expected)))
    assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-5


def test_network_layers_and_worked_sum_equal_explain_model(client, checkpoint, tmp_path):
    r = client.post("/api/network", files={"image": ("seven.png", seven(), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    layers = body["layers"]
    assert layers[0]["name"] == "input" and layers[0]["shape"] == [1, 28, 28]
    conv = next(layer for layer in layers if layer.get("convolution"))
    assert conv["shape"] == [6, 28, 28]
    levels = np.frombuffer(base64.b64decode(conv["pixels"]), np.uint8).reshape(6, 28, 28)
    assert (levels.min(axis=(1, 2)) == 0).all() and (levels.max(axis=(1, 2)) == 255).all()
    # the feature-map value and its worked sum, as `cnnlab explain model` computes them
    image = tmp_path / "seven.png"
    image.write_bytes(seven())
    ckpt, model, normalize = load_trained(checkpoint)
    x = model_inputs(ckpt, normalize, [image])[0]
    want = explain.model(model, x, conv["name"], (2, 10, 12))
    r = client.post("/api/network/explain", json={"input_id": body["input_id"],
                                                  "layer": conv["index"], "at": [2, 10, 12]})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["text"] == want.text
    low, high = conv["low"][2], conv["high"][2]                # the map as drawn: min..max
    assert levels[2, 10, 12] == round(255 * (got["value"] - low) / (high - low))
    # lenet5's first conv: 5×5 with padding 2 -> the field around (10, 12), clipped to the image
    assert {k: got["box"][k] for k in ("top", "left", "bottom", "right")} == \
        {"top": 8, "left": 10, "bottom": 12, "right": 14}
    last = layers[-1]
    r = client.post("/api/network/explain", json={"input_id": body["input_id"],
                                                  "layer": last["index"], "at": [3]})
    assert r.status_code == 200 and r.json()["box"]["whole"]


def test_network_on_a_test_image(client):
    samples = client.get("/api/samples").json()["samples"]
    assert len(samples) == 10 and samples[7]["label"] == "7"
    assert samples[0]["png"].startswith("data:image/png;base64,")
    r = client.post("/api/network", json={"sample": samples[7]["index"]})
    assert r.status_code == 200 and r.json()["true_label"] == "7"
    assert "index" in error_of(client.post("/api/network", json={"sample": -1}), 400)
    assert "JSON object" in error_of(client.post("/api/network", json=[1]), 400)


def test_mistakes_are_one_sentence_with_4xx(client):
    files = {"image": ("seven.png", seven(), "image/png")}
    error_of(client.post("/api/network/explain", json={"input_id": "nope", "layer": 0,
                                                       "at": [0, 0, 0]}), 404)
    token = client.post("/api/network", files=files).json()["input_id"]
    assert "outside" in error_of(client.post("/api/network/explain", json={
        "input_id": token, "layer": 0, "at": [0, 99, 0]}), 400)
    assert "layer index" in error_of(client.post("/api/network/explain", json={
        "input_id": token, "layer": "conv", "at": [0, 0, 0]}), 400)
    assert "unknown model" in error_of(client.post("/api/predict?model=m9", files=files), 404)
    assert error_of(client.post("/api/explain/conv", content=b"{",
                                headers={"content-type": "application/json"}),
                    400) == "the request body is not valid JSON."
    assert error_of(client.post("/api/explain/conv", content=b"{}"), 415) == (
        "expected a JSON body (Content-Type application/json), received Content-Type '(none)'.")
    error_of(client.get("/api/nothing"), 404)
    error_of(client.get("/api/predict"), 405)


def test_uploads_are_checked(client):
    msg = error_of(client.post("/api/predict", files={"image": ("x.png", b"not an image at "
                                                               b"all", "image/png")}), 415)
    assert "not an image" in msg
    big = np.random.default_rng(0).integers(0, 255, (500, 500), dtype=np.uint8)
    assert "limit" in error_of(client.post("/api/predict",
                                           files={"image": ("big.png", png(big))}), 413)
    wide = np.zeros((1000, 1100), np.uint8)              # 1.1 Mpixel in a small file
    assert "pixels" in error_of(client.post("/api/predict",
                                            files={"image": ("wide.png", png(wide))}), 413)
    assert "field 'image'" in error_of(client.post("/api/predict", files={
        "photo": ("a.png", seven())}), 400)
    assert "multipart" in error_of(client.post("/api/predict", json={"image": "/etc/passwd"}),
                                   415)


def test_a_lying_content_length_is_caught_while_reading(checkpoint, tmp_path):
    from cnnlab.explorer.errors import ApiError
    from cnnlab.explorer.security import read_body

    class Liar:
        headers = {"content-length": "10"}

        async def stream(self):
            for _ in range(5):
                yield b"x" * 100

    import asyncio

    with pytest.raises(ApiError, match="limit of 250 bytes") as caught:
        asyncio.run(read_body(Liar(), 250))
    assert caught.value.status == 413


def test_the_client_never_names_a_server_path(client, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(seven())
    for body in ({"sample": str(secret)}, {"sample": 0, "path": str(secret)}):
        r = client.post("/api/network", json=body)
        assert r.status_code == 400 if "path" not in body else r.status_code == 200
    msg = error_of(client.post("/api/train/start", json={"data": str(tmp_path)}), 400)
    assert "digits" in msg
    msg = error_of(client.post("/api/train/start", json={"out": str(tmp_path)}), 400)
    assert "unknown training settings" in msg


def test_host_and_origin_checks(checkpoint, tmp_path):
    app = create_app([checkpoint], runs_dir=tmp_path)
    for base, status in (("http://127.0.0.1:8765", 200), ("http://localhost:8765", 200),
                         ("http://evil.example:8765", 403), ("http://127.0.0.2", 403)):
        with TestClient(app, base_url=base) as c:
            r = c.get("/api/health")
            assert r.status_code == status, base
            if status == 403:
                assert "Host" in r.json()["error"]
                assert c.get("/").status_code == 403
    with TestClient(app, base_url=BASE) as c:
        r = c.post("/api/explain/relu", json={"input": "1 -2"},
                   headers={"origin": "http://evil.example"})
        assert r.status_code == 403 and "Origin" in r.json()["error"]
        r = c.post("/api/explain/relu", json={"input": "1 -2"},
                   headers={"origin": "http://127.0.0.1:8765"})
        assert r.status_code == 200
    bound = create_app([checkpoint], host="192.168.7.7", runs_dir=tmp_path)
    with TestClient(bound, base_url="http://192.168.7.7:8765") as c:
        assert c.get("/api/health").status_code == 200


def test_trainings_started_from_the_page_write_into_runs_by_default(checkpoint):
    from pathlib import Path

    assert create_app([checkpoint]).state.explorer.trainer.runs_dir == Path("runs")


def test_the_presets_route_serves_the_lecture_examples(client):
    from cnnlab.explorer.app import PRESETS

    assert client.get("/api/presets").json() == json.loads(PRESETS.read_text())


def test_an_error_becomes_one_sentence():
    from cnnlab.explorer.errors import one_sentence

    assert one_sentence(ValueError("shape (2, 3)\n  does not fit")) == "shape (2, 3) does not fit."
    assert one_sentence(ValueError()) == "ValueError."
    for whole in ("done.", "stop!", "why?"):
        assert one_sentence(ValueError(whole)) == whole


def test_the_allowed_hosts_and_host_names():
    from cnnlab.explorer.security import allowed_hosts, host_name

    assert allowed_hosts("127.0.0.1") == {"localhost", "127.0.0.1"}
    assert allowed_hosts("::1") == {"localhost", "127.0.0.1", "::1", "[::1]"}
    assert host_name(" LocalHost:8765 ") == "localhost" and host_name("[::1]:80") == "[::1]"


def _local_only(headers: list[tuple[bytes, bytes]], method: str = "GET") -> list[dict]:
    """What LocalOnly sends for one request that reaches no application."""
    import asyncio

    from cnnlab.explorer.security import LocalOnly

    sent = []

    async def app(scope, receive, send):
        sent.append({"passed": True})

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "headers": headers}
    asyncio.run(LocalOnly(app, {"127.0.0.1", "localhost"})(scope, None, send))
    return sent


def test_the_host_refusal_names_what_was_received():
    start, body = _local_only([])                                  # no Host header at all
    assert start["status"] == 403
    assert dict(start["headers"])[b"content-length"] == str(len(body["body"])).encode()
    assert json.loads(body["body"]) == {"error": "this server answers requests for 127.0.0.1, "
                                                 "localhost, received Host '(none)'."}
    _, body = _local_only([(b"host", b"evil.example:8765")])
    assert json.loads(body["body"])["error"].endswith("received Host 'evil.example:8765'.")
    # the page itself, its host name in capitals, may post
    assert _local_only([(b"host", b"LOCALHOST:8765"), (b"origin", b"http://localhost:8765")],
                       "POST") == [{"passed": True}]
    assert _local_only([(b"host", b"localhost:8765"), (b"origin", b"http://LocalHost:8765")],
                       "POST") == [{"passed": True}]


def test_a_declared_body_over_the_limit_is_refused_before_reading():
    import asyncio

    from cnnlab.explorer.errors import ApiError
    from cnnlab.explorer.security import read_body

    class Declared:
        def __init__(self, length):
            self.headers = {"content-length": length}

        async def stream(self):
            raise AssertionError("the body was read")
            yield b""

    with pytest.raises(ApiError, match=r"^the upload is 1,000 bytes; the limit is 250 "
                                       r"bytes\.$") as caught:
        asyncio.run(read_body(Declared("1000"), 250))
    assert caught.value.status == 413
    with pytest.raises(ApiError, match=r"^expected a numeric Content-Length, received 'ten'\.$"):
        asyncio.run(read_body(Declared("ten"), 250))

    class Streamed:                                     # no Content-Length: counted as it comes
        headers = {}

        async def stream(self):
            for _ in range(5):
                yield b"x" * 50

    assert asyncio.run(read_body(Streamed(), 250)) == b"x" * 250          # exactly the limit


# ------------------------------------------------------------------ playground
def test_conv_playground_is_explain_conv2d(client):
    r = client.post("/api/explain/conv", json={"input": "1 2 3; 4 5 6; 7 8 9",
                                               "kernel": "1 0; 0 -1", "at": [1, 0]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["output"] == [[[-4.0, -4.0], [-4.0, -4.0]]]
    assert body["entry"]["text"] == "Z[1,0] = 4*1 + 5*0 + 7*0 + 8*(-1) = -4"
    assert body["entry"]["window"] == {"rows": [1, 2], "columns": [0, 1]}
    assert body["formula"][1].strip() == "rows:     floor((3 + 0 + 0 - 1·(2-1) - 1) / 1) + 1 = 2"


def test_stride_padding_and_dilation_change_the_output_size(client):
    base = {"input": "; ".join(" ".join(str(i * 7 + j) for j in range(7)) for i in range(7)),
            "kernel": "1 0 -1; 1 0 -1; 1 0 -1"}
    sizes = {}
    for name, extra in (("valid", {}), ("stride 2", {"stride": 2}),
                        ("same", {"padding": "same", "stride": 2}),
                        ("same-pytorch", {"padding": "same-pytorch"}),
                        ("sides", {"padding": [1, 0, 2, 0]}), ("dilation", {"dilation": 2})):
        r = client.post("/api/explain/conv", json={**base, **extra})
        assert r.status_code == 200, r.text
        sizes[name] = r.json()["output_shape"]
    assert sizes == {"valid": [1, 5, 5], "stride 2": [1, 3, 3], "same": [1, 4, 4],
                     "same-pytorch": [1, 7, 7], "sides": [1, 6, 7], "dilation": [1, 3, 3]}
    msg = error_of(client.post("/api/explain/conv", json={**base, "padding": "same-pytorch",
                                                          "stride": 2}), 400)
    assert "PyTorch refuses" in msg
    assert "stride" in error_of(client.post("/api/explain/conv", json={**base, "stride": 0}),
                                400)
    assert "outside" in error_of(client.post("/api/explain/conv", json={**base, "at": [9, 9]}),
                                 400)
    assert "kernel" in error_of(client.post("/api/explain/conv", json={**base,
                                                                       "kernel": "1 x"}), 400)


def test_homework_marks_wrong_entries_with_their_sums(client):
    r = client.post("/api/explain/conv", json={"input": "1 2 3; 4 5 6; 7 8 9",
                                               "kernel": "1 0; 0 -1", "check": "-4 -4; 4 -4"})
    wrong = r.json()["wrong"]
    assert [w["index"] for w in wrong] == [[0, 1, 0]]
    assert wrong[0]["given"] == 4 and wrong[0]["correct"] == -4
    assert wrong[0]["worked"].endswith("= -4")
    r = client.post("/api/explain/pool", json={"input": "1 2; 3 4", "size": 2, "check": "3"})
    assert r.json()["wrong"][0]["correct"] == 4


@pytest.mark.parametrize("preset", json.loads(
    (__import__("pathlib").Path(__file__).parents[1] / "cnnlab" / "explorer" / "presets.json")
    .read_text())["presets"], ids=lambda p: p["id"])
def test_presets_are_the_lecture_examples(client, preset):
    example = next(e for e in LECTURE_EXAMPLES if e["id"] == preset["id"])
    body = {k: preset[k] for k in preset if k in ("input", "kernel", "bias", "stride",
                                                  "padding", "dilation", "flip", "size",
                                                  "mode")}
    r = client.post(f"/api/explain/{preset['op']}", json=body)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["output"][0], example["expected"], atol=1e-9)


def test_pool_and_relu_windows(client):
    r = client.post("/api/explain/pool", json={"input": "1 2 0; 3 4 9; 0 0 1", "size": 2,
                                               "stride": 1, "padding": 1, "at": [0, 0]})
    body = r.json()
    assert body["padded"][0][0][0] is None                       # -inf: never the maximum
    assert body["entry"]["text"].endswith("= 1") and body["output_shape"] == [1, 4, 4]
    r = client.post("/api/explain/relu", json={"input": "1 -2; 0 3", "at": [0, 1]})
    assert r.json()["entry"]["text"] == "Z[0,1] = max(0, -2) = 0"
    assert r.json()["output"] == [[[1, 0], [0, 3]]]


# ------------------------------------------------------------------ filter lab
def test_filter_lab_is_tools_filters(client):
    from cnnlab.tools import filters

    photo = np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    r = client.post("/api/filter", files={"image": ("p.png", png(photo))},
                    data={"kernel": "sobel", "border": "reflect", "map": "auto"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mapping"] == "abs" and body["result_shape"] == [20, 30, 3]
    assert body["kernel"] == filters.format_kernel("sobel")
    import base64

    from PIL import Image

    got = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["result"].split(",")[1]))))
    np.testing.assert_array_equal(got, filters.to_pixels(filters.apply(photo, "sobel",
                                                                       border="reflect"), "abs"))
    assert "kernel" in error_of(client.post("/api/filter", files={"image": ("p.png",
                                                                          png(photo))}), 400)
    assert "border" in error_of(client.post("/api/filter", files={"image": ("p.png", png(photo))},
                                            data={"kernel": "box", "border": "mirror"}), 400)
    kernels = client.get("/api/kernels").json()["kernels"]
    assert any(k["name"] == "sharpen" and k["text"] == filters.format_kernel("sharpen")
               for k in kernels)


def test_playground_answers_and_refusals(client):
    relu = client.post("/api/explain/relu", json={"input": "1 -2; -3 4"}).json()
    assert relu["kind"] == "relu" and relu["wrong"] == []
    checked = client.post("/api/explain/relu", json={"input": "1 -2; -3 4",
                                                     "check": "1 -2; 0 4"}).json()
    assert checked["wrong"]                                     # -2 was not clipped to 0
    pool = client.post("/api/explain/pool", json={"input": "1 2; 3 4", "padding": 1}).json()
    assert pool["output"] == [[[1, 2], [3, 4]]] and pool["stride"] == pool["size"]  # max, 2
    assert pool["padded"][0][0] == [None] * 4                   # -inf padding is null in JSON
    assert pool["padded"][0][1] == [None, 1, 2, None]
    average = client.post("/api/explain/pool", json={"input": "1 2; 3 4", "mode": "avg"}).json()
    assert average["output"] == [[[2.5]]]
    assert error_of(client.post("/api/explain/relu", json={"input": "1 2", "at": [0, 0, 0, 0]}),
                    400) == "at must be [row, column] or [filter, row, column], received " \
                            "[0, 0, 0, 0]."
    assert error_of(client.post("/api/explain/relu", json={"input": "1 2", "at": [0, 5]}),
                    400) == "at [0, 0, 5] is outside the output (shape 1×1×2)."
    assert error_of(client.post("/api/explain/relu", json={"input": "1 " * 40_000}),
                    413) == "input: at most 4096 values, received 80,000 characters."


def test_filter_lab_defaults_flags_and_refusals(client):
    import base64

    from PIL import Image

    from cnnlab.tools import filters

    def picture(url):
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",")[1]))))

    photo = np.random.default_rng(2).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    files = {"image": ("p.png", png(photo))}
    body = client.post("/api/filter", files=files, data={"kernel": "sobel"}).json()
    assert body["border"] == "reflect" and body["mapping"] == "abs"     # the defaults
    np.testing.assert_array_equal(picture(body["original"]), photo)
    assert body["shape"] == [12, 16, 3] and body["result_shape"] == [12, 16, 3]
    assert body["kernels"] == [k.round(6).tolist() for k in filters.kernels("sobel")]
    np.testing.assert_array_equal(picture(body["result"]), filters.to_pixels(
        filters.apply(photo, "sobel", border="reflect"), "abs"))
    for mapping in filters.MAPPINGS:                       # map and equalize are honoured
        for equalize in ("false", "true"):
            body = client.post("/api/filter", files=files, data={
                "kernel": "sobel", "map": mapping, "equalize": equalize}).json()
            expected = filters.to_pixels(filters.apply(photo, "sobel", border="reflect"),
                                         mapping)
            if equalize == "true":
                expected = filters.equalize(expected)
            assert body["mapping"] == mapping
            np.testing.assert_array_equal(picture(body["result"]), expected)
    assert error_of(client.post("/api/filter", files=files, data={"kernel": "1 " * 2001}),
                    413) == "the kernel text is 4,001 characters; at most 4,000."
    for on in ("1", "ON", " on ", "true"):
        grey = client.post("/api/filter", files=files, data={"kernel": "box", "gray": on})
        assert grey.json()["shape"] == [12, 16], on
    for off in ("0", "off", "FALSE", ""):
        assert client.post("/api/filter", files=files, data={"kernel": "box", "gray": off}
                           ).json()["shape"] == [12, 16, 3], off
    assert error_of(client.post("/api/filter", files=files, data={"kernel": "box",
                                                                   "gray": "maybe"}),
                    400) == "gray must be true or false, received 'maybe'."
    big = " ; ".join([" ".join(["1"] * 33)] * 33)
    assert error_of(client.post("/api/filter", files=files, data={"kernel": big}), 400) == \
        "kernels up to 31×31 are filtered here; received 33×33."
    assert error_of(client.post("/api/filter", files={"image": ("p.png", png(photo)[:100])},
                                data={"kernel": "box"}),
                    415) == "could not decode the image (a damaged or unsupported file)."


# ------------------------------------------------------------------ training
def wait_for(client, predicate, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = client.get("/api/train").json()
        if predicate(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"timed out; last status {status}")


def test_training_one_at_a_time_stop_and_open(client):
    status = client.get("/api/train").json()
    assert status["state"] == "idle" and "lenet5" in status["options"]["models"]
    assert error_of(client.get("/api/train/events"), 404) == "no training has been started."
    assert "no training" in error_of(client.post("/api/train/stop", json={}), 409)
    r = client.post("/api/train/start", json={"model": "lenet5", "data": "digits", "epochs": 1,
                                              "lr": 0.002, "batch_size": 32})
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "running" and r.json()["config"]["batch_size"] == 32
    msg = error_of(client.post("/api/train/start", json={"epochs": 1}), 409)
    assert "one training at a time" in msg
    wait_for(client, lambda s: s["last"] and s["last"]["event"] == "step")
    assert client.post("/api/train/stop", json={}).status_code == 200
    status = wait_for(client, lambda s: s["state"] != "running")
    assert status["state"] == "stopped", status
    with client.stream("GET", "/api/train/events") as events:
        text = "".join(events.iter_text())
        assert events.headers["cache-control"] == "no-cache"        # no proxy holds events back
    ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    assert ids == list(range(1, len(ids) + 1))              # Last-Event-ID counts from 1
    assert error_of(client.get("/api/train/events?after=x"), 400) == \
        "after must be an event count."
    kinds = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")]
    assert kinds[0] == "log" and "begin" in kinds and "step" in kinds and kinds[-1] == "stopped"
    data = json.loads([line for line in text.splitlines() if line.startswith("data: ")][-1][6:])
    opened = data["model"]["id"]
    served = client.get("/api/models").json()["models"]
    assert opened in [m["id"] for m in served] and len(served) == 2
    assert opened == "m2" and set(data["model"]) == {"id", "name"}     # after the served m1
    # a client that has seen every event of a finished run gets an empty stream at once
    assert client.get(f"/api/train/events?after={len(kinds)}").text == ""
    ckpt, model, _ = load_trained(data["checkpoint"])      # a normal checkpoint
    assert ckpt.model_name == "lenet5" and ckpt.extra.get("interrupted")
    r = client.post(f"/api/predict?model={opened}", files={"image": ("7.png", seven())})
    assert r.status_code == 200
    # a new run may start now
    r = client.post("/api/train/start", json={"epochs": 1})
    assert r.status_code == 202
    client.post("/api/train/stop", json={})
    wait_for(client, lambda s: s["state"] != "running")


def test_training_settings_are_checked(client):
    for body, words in (({"model": "alexnet"}, "model must be one of"),
                        ({"epochs": 0}, "epochs must be an integer"),
                        ({"lr": -1}, "lr must be"), ({"optimizer": "rmsprop"}, "optimizer"),
                        ({"batch_size": True}, "batch_size")):
        assert words in error_of(client.post("/api/train/start", json=body), 400)


def test_no_checkpoint_served(tmp_path):
    with TestClient(create_app(runs_dir=tmp_path), base_url=BASE) as c:
        assert "no checkpoint" in error_of(c.post("/api/predict",
                                                  files={"image": ("7.png", seven())}), 404)
        assert c.get("/api/models").json() == {"models": []}


# ------------------------------------------------------------------ the command
def test_serve_without_the_web_extra_says_how_to_install_it(capsys, monkeypatch):
    from helpers import run_cli

    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)    # import fails
    code, out, err = run_cli(capsys, "serve")
    assert code == 2 and 'pip install "cnnlab[web]"' in err and "Traceback" not in err


def test_serve_mistakes_exit_2_with_one_line(capsys, checkpoint, tmp_path):
    import socket

    from helpers import run_cli

    code, _, err = run_cli(capsys, "serve", str(tmp_path / "missing.npz"))
    assert code == 2 and err.count("\n") == 1 and "missing.npz" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = run_cli(capsys, "serve", str(checkpoint), "--port", str(port))
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "serve", "--port", "70000")
    assert code == 2 and "port number" in err


@pytest.mark.slow
def test_a_complete_training_is_saved_and_opened(client):
    r = client.post("/api/train/start", json={"model": "lenet5", "data": "digits", "epochs": 1})
    assert r.status_code == 202
    status = wait_for(client, lambda s: s["state"] != "running", timeout=1800)
    assert status["state"] == "done", status
    data = status["last"]["data"]
    assert data["metrics"]["test_accuracy"] > 0.8 and data["metrics"]["epochs"] == 1
    checkpoint, _, _ = load_trained(data["checkpoint"])
    assert checkpoint.epoch == 1 and not checkpoint.extra.get("interrupted")
    with client.stream("GET", "/api/train/events") as events:
        text = "".join(events.iter_text())
        assert events.headers["cache-control"] == "no-cache"        # no proxy holds events back
    ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    assert ids == list(range(1, len(ids) + 1))              # Last-Event-ID counts from 1
    assert error_of(client.get("/api/train/events?after=x"), 400) == \
        "after must be an event count."
    assert "event: epoch" in text and text.rstrip().splitlines()[-2] == "event: done"
    r = client.post(f"/api/predict?model={data['model']['id']}", files={"image": ("7.png",
                                                                                 seven())})
    assert r.status_code == 200


# ------------------------------------------------------------------ the network view's JSON
def _input_of(checkpoint, tmp_path):
    image = tmp_path / "seven.png"
    image.write_bytes(seven())
    ckpt, model, normalize = load_trained(checkpoint)
    return model, model_inputs(ckpt, normalize, [image])[0]


def test_models_describe_each_checkpoint(checkpoint, tmp_path):
    """The model list the page shows: names, classes, shape, epoch, accuracy and summary; the
    defaults of a checkpoint that records no classes, channels, size or data set."""
    import cnnlab
    from cnnlab.tools import summary

    cnnlab.manual_seed(1)
    bare = save_checkpoint(tmp_path / "bare", models.get("lenet5", num_classes=10),
                           model_name="lenet5", model_args={"num_classes": 10}, epoch=3,
                           metrics={"val_accuracy": 0.25}, config={})
    app = create_app([checkpoint, bare], runs_dir=tmp_path / "runs")
    with TestClient(app, base_url=BASE) as c:
        first, second = c.get("/api/models").json()["models"]
        table = summary(load_trained(checkpoint)[1], (1, 28, 28))
        assert first == {"id": "m1", "name": f"{checkpoint.parent.name}/{checkpoint.stem}",
                         "model": "lenet5", "data": "digits",
                         "classes": [str(i) for i in range(10)], "input_shape": [1, 28, 28],
                         "epoch": 0, "val_accuracy": None, "summary": table.to_dict(),
                         "table": str(table)}
        assert (second["id"], second["name"], second["data"], second["epoch"],
                second["val_accuracy"]) == ("m2", f"{tmp_path.name}/bare", None, 3, 0.25)
        assert second["classes"] == [str(i) for i in range(10)]
        assert second["input_shape"] == [1, 28, 28]
        # no data set recorded: the test images are the digits'
        labels = [s["label"] for s in c.get("/api/samples?model=m2").json()["samples"]]
        assert labels == [str(i) for i in range(10)]


def test_missing_test_images_are_one_sentence(tmp_path):
    import cnnlab

    cnnlab.manual_seed(2)
    path = save_checkpoint(tmp_path / "elsewhere", models.get("lenet5", num_classes=10),
                           model_name="lenet5", model_args={"num_classes": 10}, epoch=0,
                           config={"data": "nope"})
    with TestClient(create_app([path], runs_dir=tmp_path / "runs"), base_url=BASE) as c:
        message = error_of(c.get("/api/samples"), 404)
        assert message.startswith("the test images of 'nope' are not available here: "
                                  "load_dataset: unknown dataset 'nope'")


def test_samples_are_the_first_test_image_of_each_class(client):
    from PIL import Image

    from cnnlab.data import load_dataset

    _, test = load_dataset("digits", download=False)
    samples = client.get("/api/samples").json()["samples"]
    for label, sample in enumerate(samples):
        index = int(np.flatnonzero(test.labels == label)[0])
        assert (sample["index"], sample["label"]) == (index, str(label))
        prefix = "data:image/png;base64,"
        assert sample["png"].startswith(prefix)
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(sample["png"][len(prefix):]))))
        np.testing.assert_array_equal(pixels, np.rint(test.images[index, 0] * 255))


def test_a_colour_sample_is_an_rgb_png():
    import threading
    from types import SimpleNamespace

    from PIL import Image

    from cnnlab.explorer.network import samples

    images = np.zeros((2, 3, 2, 2))
    images[0, 0] = 1.0                                 # red
    images[1, 2, 0, 1] = 0.5                           # one half-blue pixel
    tests = SimpleNamespace(images=images, labels=np.array([1, 0]), classes=["cat", "dog"])
    served = SimpleNamespace(tests=tests, reading=threading.Lock(), classes=["cat", "dog"])
    out = samples(served)
    assert [(s["index"], s["label"]) for s in out] == [(1, "cat"), (0, "dog")]
    rgb = [np.asarray(Image.open(io.BytesIO(base64.b64decode(s["png"].split(",")[1]))))
           for s in out]
    assert rgb[1].shape == (2, 2, 3) and (rgb[1][..., 0] == 255).all() \
        and (rgb[1][..., 1:] == 0).all()
    assert rgb[0][0, 1].tolist() == [0, 0, 128] and rgb[0].sum() == 128


def test_sample_indices_are_checked(client):
    assert client.post("/api/network", json={"sample": 1999}).status_code == 200
    for bad in (2000, -1, True, 1.0, "3"):
        assert error_of(client.post("/api/network", json={"sample": bad}), 400) == \
            f"expected a test image index in 0..1999, received {bad!r}."


def test_grey_levels_stretch_each_map():
    from cnnlab.explorer.network import grey_levels

    def levels(g):
        return np.frombuffer(base64.b64decode(g["pixels"]), np.uint8).tolist()

    g = grey_levels(np.array([1.0, 3.0, 2.0]))                      # a vector is one map
    assert (levels(g), g["low"], g["high"]) == ([0, 255, 128], [1.0], [3.0])
    g = grey_levels(np.array([[[2.0, 2.0]], [[-1.0, 1.0]]]))        # two maps of 1×2
    assert (levels(g), g["low"], g["high"]) == ([0, 0, 0, 255], [2.0, -1.0], [2.0, 1.0])


def test_network_answers_every_layer_as_the_summary_names_it(client, checkpoint, tmp_path):
    from cnnlab.explorer.network import grey_levels
    from cnnlab.tools import summary

    model, x = _input_of(checkpoint, tmp_path)
    body = client.post("/api/network", files={"image": ("seven.png", seven(),
                                                        "image/png")}).json()
    expected = predict(model, x[None])[0]
    np.testing.assert_allclose(body["probabilities"], expected, rtol=1e-6)
    label = int(np.argmax(expected))
    assert (body["label"], body["label_index"]) == (str(label), label)
    assert body["classes"] == [str(i) for i in range(10)]
    assert body["model"] == "m1" and body["true_label"] is None
    layers = body["layers"]
    assert layers[0] == {"index": -1, "name": "input",
                         "layer": "the image as the network sees it (standardised)",
                         "shape": [1, 28, 28], **grey_levels(x)}
    rows = summary(model, (1, 28, 28)).rows
    assert [(la["index"], la["name"], la["layer"], la["shape"]) for la in layers[1:]] == \
        [(i, r.name, r.layer, list(r.output_shape)) for i, r in enumerate(rows)]
    assert [la["convolution"] for la in layers[1:]] == [i in (0, 3) for i in range(12)]


def test_a_value_and_its_receptive_field(client, checkpoint, tmp_path):
    from cnnlab.tools.summary import leaf_activations

    model, x = _input_of(checkpoint, tmp_path)
    token = client.post("/api/network", files={"image": ("seven.png", seven(),
                                                         "image/png")}).json()["input_id"]

    def explain_at(layer, at):
        r = client.post("/api/network/explain", json={"input_id": token, "layer": layer,
                                                      "at": at})
        assert r.status_code == 200, r.text
        return r.json()

    got = explain_at(0, [0, 27, 27])                    # clipped at the bottom right
    assert got["box"] == {"top": 25, "left": 25, "bottom": 27, "right": 27, "whole": False,
                          "size": [5, 5]}
    assert got["box"] == explain_at(0, [0, 27, 27])["box"]
    assert explain_at(0, [1, 0, 0])["box"] == {"top": 0, "left": 0, "bottom": 2, "right": 2,
                                               "whole": False, "size": [5, 5]}
    # the second pool: size 16, jump 4, start 5.5 -> rows centred on 21.5, columns on 9.5
    got = explain_at(5, [0, 4, 1])
    assert got["box"] == {"top": 14, "left": 2, "bottom": 27, "right": 17, "whole": False,
                          "size": [16, 16]}
    value = float(leaf_activations(model, x[None])[5][3][0][0, 4, 1])
    assert (got["layer"], got["description"], got["at"]) == ("5", "MaxPool2d(2×2)", [0, 4, 1])
    assert got["value"] == pytest.approx(value) and got["numbers"] == {"value": got["value"]}
    assert got["text"] == (f"layer 5 MaxPool2d(2×2): value {value:.4f} at (0, 4, 1). Worked "
                           "sums are written out for convolution layers; click a value of one "
                           "of those.")
    assert explain_at(11, [3])["box"] == {"top": 0, "left": 0, "bottom": 27, "right": 27,
                                          "whole": True, "size": None}
    conv = explain_at(3, [1, 2, 3])
    want = explain.model(model, x, "3", (1, 2, 3))
    assert (conv["text"], conv["value"]) == (want.text, want.numbers["value"])
    assert conv["numbers"]["value"] == want.numbers["value"]


def test_value_requests_are_checked(client):
    files = {"image": ("seven.png", seven(), "image/png")}
    token = client.post("/api/network", files=files).json()["input_id"]

    def refusal(layer, at):
        return error_of(client.post("/api/network/explain", json={"input_id": token,
                                                                 "layer": layer, "at": at}), 400)

    for layer in (12, -1, True, "conv", 1.0):
        assert refusal(layer, [0, 0, 0]) == \
            f"expected a layer index in 0..11, received {layer!r}."
    for at in ([0, 0], [0, True, 0], [0, 0, 0.0], [0, 0, 0, 0], "0,0,0", None):
        assert refusal(0, at) == ("expected 'at' as 3 integers (an index into the layer's "
                                  f"output 6×28×28), received {at!r}.")
    assert refusal(0, [0, 28, 0]) == "'at' [0, 28, 0] is outside layer 0's output 6×28×28."
    assert refusal(0, [6, 0, 0]) == "'at' [6, 0, 0] is outside layer 0's output 6×28×28."
    assert refusal(0, [0, 0, -1]) == "'at' [0, 0, -1] is outside layer 0's output 6×28×28."
    assert client.post("/api/network/explain", json={"input_id": token, "layer": 0,
                                                     "at": [5, 27, 27]}).status_code == 200


def test_the_input_cache_forgets_the_oldest_and_other_models_inputs():
    from cnnlab.explorer.errors import ApiError
    from cnnlab.explorer.network import InputCache

    cache = InputCache(size=2)
    a, b, c = (np.full(1, v) for v in range(3))
    ta, tb, tc = cache.add("m1", a), cache.add("m1", b), cache.add("m2", c)
    assert len({ta, tb, tc}) == 3 and len(ta) == 16
    assert cache.get(tb, "m1") is b and cache.get(tc, "m2") is c
    for token, model in ((ta, "m1"), (tc, "m1"), (5, "m1"), (None, "m2")):
        with pytest.raises(ApiError) as error:
            cache.get(token, model)
        assert error.value.status == 404 and str(error.value) == (
            "that image is no longer known to the server (or belongs to another model); show "
            "it again.")
    assert InputCache().size == 64


def test_a_checkpoint_of_another_size_is_described_with_it(tmp_path):
    import cnnlab

    cnnlab.manual_seed(3)
    args = {"num_classes": 10, "input_size": 32}
    path = save_checkpoint(tmp_path / "big", models.get("lenet5", **args), model_name="lenet5",
                           model_args=args, epoch=0, config={})
    with TestClient(create_app([path], runs_dir=tmp_path / "runs"), base_url=BASE) as c:
        assert c.get("/api/models").json()["models"][0]["input_shape"] == [1, 32, 32]
