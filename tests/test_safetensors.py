"""safetensors: PyTorch's state_dict files load into the matching cnnlab model (same outputs) and
back into PyTorch bit for bit; a file whose header lies about sizes is refused in one sentence."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

pytest.importorskip("safetensors")
torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

from cnnlab import models  # noqa: E402
from cnnlab.interop import load_safetensors, save_safetensors  # noqa: E402
from cnnlab.interop.safetensors_io import check_safetensors  # noqa: E402

tnn = torch.nn


def torch_lenet5():
    return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                          tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
                          tnn.Linear(84, 10))


def torch_small_vgg():
    from collections import OrderedDict

    features = []
    c_in = 1
    for c_out in (8, 16):
        for _ in range(2):
            features += [tnn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         tnn.BatchNorm2d(c_out), tnn.ReLU()]
            c_in = c_out
        features.append(tnn.MaxPool2d(2))
    classifier = tnn.Sequential(tnn.Flatten(), tnn.Linear(16 * 7 * 7, 32), tnn.ReLU(),
                                tnn.Dropout(0.5), tnn.Linear(32, 10))
    return tnn.Sequential(OrderedDict(features=tnn.Sequential(*features),
                                      classifier=classifier))


PAIRS = {
    "lenet5": (torch_lenet5, lambda: models.lenet5()),
    "small_vgg": (torch_small_vgg, lambda: models.small_vgg(channels=(8, 16), hidden=32)),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_pytorch_to_cnnlab_to_pytorch(name, tmp_path):
    make_torch, make_ours = PAIRS[name]
    torch.manual_seed(0)
    theirs = make_torch()
    for m in theirs.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.num_batches_tracked.fill_(7)
    theirs.eval()
    save_file(theirs.state_dict(), tmp_path / "torch.safetensors")

    ours = load_safetensors(make_ours(), tmp_path / "torch.safetensors").eval()
    x = np.random.default_rng(1).normal(size=(3, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(x).data, expected, rtol=1e-5, atol=1e-5)

    save_safetensors(ours, tmp_path / "cnnlab.safetensors")
    back = load_file(tmp_path / "cnnlab.safetensors")
    original = theirs.state_dict()
    assert list(back) == list(original) or set(back) == set(original)
    for key, value in original.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key
    fresh = make_torch()
    fresh.load_state_dict(back)                     # strict: every key and shape fits


def _write(path, header: dict, data: bytes, length: int | None = None) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)


def test_a_header_that_lies_is_refused(tmp_path):
    good = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
    _write(tmp_path / "ok.safetensors", good, bytes(24))
    assert check_safetensors(tmp_path / "ok.safetensors")["w"]["shape"] == [2, 3]

    beyond = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 2400]}}
    _write(tmp_path / "beyond.safetensors", beyond, bytes(24))
    with pytest.raises(ValueError, match=r"^'.*beyond.safetensors' is not a valid safetensors "
                                         r"file: tensor 'w' claims bytes 0\.\.2400, but the data "
                                         r"holds 24 bytes\.$"):
        load_safetensors(models.lenet5(), tmp_path / "beyond.safetensors")

    shape = {"w": {"dtype": "F32", "shape": [200, 300], "data_offsets": [0, 24]}}
    _write(tmp_path / "shape.safetensors", shape, bytes(24))
    with pytest.raises(ValueError, match=r"tensor 'w' of dtype F32 and shape \(200, 300\) needs "
                                         r"240,000 bytes, its header gives 24\."):
        check_safetensors(tmp_path / "shape.safetensors")

    _write(tmp_path / "long.safetensors", good, bytes(24), length=10 ** 12)
    with pytest.raises(ValueError, match=r"its header claims 1,000,000,000,000 bytes but the file "
                                         r"holds"):
        check_safetensors(tmp_path / "long.safetensors")

    (tmp_path / "short.safetensors").write_bytes(b"abc")
    with pytest.raises(ValueError, match=r"fewer than the 8 of the header length"):
        check_safetensors(tmp_path / "short.safetensors")


def test_weights_that_do_not_fit_are_named(tmp_path):
    save_safetensors(models.lenet5(channels=(4, 8)), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"do not fit Sequential: '0.weight' expected shape "
                                         r"\(6, 1, 5, 5\), received \(4, 1, 5, 5\)"):
        load_safetensors(models.lenet5(), tmp_path / "w.safetensors")


def test_cli_export_safetensors(tmp_path, capsys):
    from helpers import run_cli

    from cnnlab.train.checkpoint import save_checkpoint

    model = models.lenet5()
    ckpt = save_checkpoint(tmp_path / "trained", model, model_name="lenet5",
                           model_args={"num_classes": 10}, epoch=1)
    code, out, err = run_cli(capsys, "export", str(ckpt), "--format", "safetensors", "--out",
                             str(tmp_path / "w.safetensors"))
    assert code == 0 and "PyTorch state_dict key names" in out, err
    theirs = torch_lenet5()
    theirs.load_state_dict(load_file(tmp_path / "w.safetensors"))
    assert torch.equal(theirs[0].weight, torch.from_numpy(model[0].weight.data))
    code, out, err = run_cli(capsys, "export", str(ckpt), "--format", "tflite", "--out", "x")
    assert code == 2 and "invalid choice: 'tflite'" in err
