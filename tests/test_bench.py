"""``cnnlab bench`` and the torch twin: everything runs and reports; no timing is asserted."""

from __future__ import annotations

import json
import platform
import sys
import time

import numpy as np
import pytest

import cnnlab
from cnnlab import models, nn
from cnnlab.cli import main
from cnnlab.tools import bench
from cnnlab.tools.twin import torch_twin


def test_conv_suite_times_cnnlab_alone():
    report = bench.run(parts=("conv",), quick=True, use_torch=False, cases=bench.CONV_SUITE[:2])
    assert [r["name"] for r in report.conv] == [c.name for c in bench.CONV_SUITE[:2]]
    assert all(r["cnnlab_ms"] > 0 and r["torch_ms"] is None and r["ratio"] is None
               for r in report.conv)
    assert report.conv_geomean is None
    text = str(report)
    assert "PyTorch not installed" in text and "LeNet conv2 6→16 5×5" in text


def test_alternate_takes_the_median_per_call():
    calls = {"a": 0, "b": 0}

    def runner(name):
        def fn():
            calls[name] += 1
        return fn

    times = bench.alternate({"a": runner("a"), "b": runner("b")}, rounds=3, min_seconds=0.0,
                            settle=0.0)
    # two sizing calls, warm-up round, 3 rounds of one untimed and one timed call
    assert set(times) == {"a", "b"} and calls == {"a": 9, "b": 9}


def test_alternate_sizes_the_rounds_from_the_second_call():
    """A first call pays for what happens once (compiled kernels loaded): the rounds are sized
    from the second, so a slow first call does not leave them a few calls long."""
    calls = []

    def slow_first():
        calls.append(None)
        time.sleep(0.2 if len(calls) == 1 else 0.01)

    bench.alternate({"a": slow_first}, rounds=1, min_seconds=0.1, settle=0.0)
    # 2 sizing calls; then 10 calls a round (0.1 s / 0.01): the warm-up round, 3 untimed, 10
    assert 2 + 10 + 3 + 10 - 2 <= len(calls) <= 2 + 10 + 3 + 10


def test_alternate_does_not_time_the_warm_up_round():
    """The first round (a process's first steps, slower while its heap grows) is untimed."""
    calls = []

    def slow_at_first():
        calls.append(None)
        if len(calls) == 3:                  # the warm-up round's call
            time.sleep(0.05)

    times = bench.alternate({"a": slow_at_first}, rounds=1, min_seconds=0.0, settle=0.0)
    assert len(calls) == 5 and times["a"] < 0.025


def test_alternate_times_a_round_after_its_untimed_calls():
    """After the settling pause, the first call of a round (slower, waking up) is untimed."""
    calls = []

    def slow_after_pause():
        calls.append(None)
        if len(calls) == 4:                  # sizing (2), warm-up round, the round's first
            time.sleep(0.05)

    times = bench.alternate({"a": slow_after_pause}, rounds=1, min_seconds=0.0, settle=0.0)
    assert len(calls) == 5 and times["a"] < 0.025


def test_unknown_part_is_refused():
    with pytest.raises(ValueError, match="parts must be among conv, train, infer, memory, "
                                         "scaling, compile, load; received 'speed'"):
        bench.run(parts=("speed",))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_is_measured_in_a_fresh_process():
    result = bench.bench_memory(batch=16, steps=2, torch=None)
    assert result["cnnlab_peak_mib"] > 0 and "ratio" not in result


def test_cli_bench_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--no-torch", "--only", "infer,scaling",
                 "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["infer"]["cnnlab_images_per_s"] > 0 and data["infer"]["ratio"] is None
    assert [(r["batch"], r["size"]) for r in data["scaling"]] == [(16, 28), (32, 28), (64, 32)]
    assert data["infer_large"]["batch"] == 500 and data["infer_large"]["cnnlab_images_per_s"] > 0
    out = capsys.readouterr().out
    assert "LeNet-5 inference, batch 64" in out and "LeNet-5 inference, batch 500" in out


@pytest.mark.parametrize("argv, message", [
    (["bench", "--only", "speed"],
     "expected parts among conv,train,infer,memory,scaling,compile,load"),
    (["bench", "--rounds", "0"], "expected a positive integer, received 0"),
    (["bench", "--json", "/no/such/dir/x.json"], "the directory /no/such/dir does not exist"),
])
def test_cli_bench_mistakes_exit_2(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- with PyTorch
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("build", [
    lambda: models.lenet5(),
    lambda: models.lenet5(in_channels=3, input_size=32, channels=(8, 16)),
    lambda: models.small_vgg(),
    lambda: nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=2, groups=2,
                                    padding_mode="reflect"), nn.LeakyReLU(0.2),
                          nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(16, 3)),
    lambda: nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4, affine=False),
                          nn.AvgPool2d(2, divisor_override=3), nn.ConvTranspose2d(4, 2, 3),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8, 3)),
])
def test_twin_computes_the_same_function(build, torch):
    cnnlab.manual_seed(0)
    model = build().eval()
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    size = 28 if first.in_channels == 1 else (32 if first.in_channels == 3 else 8)
    x = np.random.default_rng(0).standard_normal((2, first.in_channels, size, size),
                                                 dtype=np.float32)
    twin = torch_twin(model, torch)
    assert not twin.training
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x).data, expected, rtol=1e-4, atol=1e-5)


def test_twin_refuses_what_torch_cannot_express(torch):
    with pytest.raises(TypeError, match="asymmetric padding"):
        torch_twin(nn.Sequential(nn.Conv2d(1, 1, 3, padding=((0, 1), (1, 1)))), torch)


def test_conv_suite_against_torch(torch):
    report = bench.run(parts=("conv", "train"), quick=True, cases=bench.CONV_SUITE[-2:])
    assert all(r["torch_ms"] > 0 and r["ratio"] > 0 for r in report.conv)
    assert report.conv_geomean > 0 and report.train["ratio"] > 0
    assert "geometric mean" in str(report)


needs_numba = pytest.mark.skipif(not cnnlab.ops.kernels.numba_installed(),
                                 reason="the compiled kernels need numba (cnnlab[fast])")


@needs_numba
def test_both_paths_are_timed_when_the_compiled_kernels_run():
    report = bench.run(parts=("conv", "infer"), quick=True, use_torch=False,
                       cases=bench.CONV_SUITE[:1])
    row = report.conv[0]
    assert row["cnnlab_ms"] > 0 and row["numpy_ms"] > 0 and row["numpy_ratio"] is None
    assert report.infer["numpy_images_per_s"] > 0
    assert report.machine["kernels"] == "compiled"
    text = str(report)
    assert "cnnlab kernels: compiled" in text and "(NumPy path " in text
    with cnnlab.ops.kernels.forced_kernels("numpy"):
        report = bench.run(parts=("conv",), quick=True, use_torch=False,
                           cases=bench.CONV_SUITE[:1])
    assert "numpy_ms" in report.conv[0] and report.conv[0]["numpy_ms"] is None


@needs_numba
def test_compile_time_is_measured_in_fresh_processes():
    result = bench.bench_compile()
    assert result["cold_s"] > result["cached_s"] > -1.0
    assert "s compiling (empty cache)" in "\n".join(bench._render(
        bench.Report(machine={"numpy": "", "python": "", "torch": None, "kernels": "x"},
                     compile=result)))


def test_load_part_reports_the_slowdown_of_each_library():
    result = bench.bench_load(batch=8, torch=None, rounds=1, min_seconds=0.0)
    assert result["cnnlab_idle_images_per_s"] > 0 and result["cnnlab_slowdown"] > 0
    assert "torch_slowdown" not in result
    text = "\n".join(bench._render(bench.Report(
        machine={"numpy": "", "python": "", "torch": None, "kernels": "numpy"}, load=result)))
    assert "with one core busy" in text and "cnnlab" in text


def test_keep_freed_memory_checks_its_limit():
    assert cnnlab.memory.keep_freed_memory(64) in (True, False)
    if platform.libc_ver()[0] == "glibc":
        assert cnnlab.memory.keep_freed_memory(64) is True
    with pytest.raises(ValueError, match="limit_mib must be a positive int, received 0"):
        cnnlab.memory.keep_freed_memory(0)


def test_the_help_names_every_part(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ", ".join(bench.PARTS) + " (default: all)" in text


def test_alternate_collects_garbage_between_warm_up_and_timing(monkeypatch):
    """The objects left by loading and warming up are collected before the timed rounds, not
    during them."""
    events = []
    monkeypatch.setattr(bench.gc, "collect", lambda: events.append("collect"))
    bench.alternate({"a": lambda: events.append("call")}, rounds=1, min_seconds=0.0,
                    settle=0.0)
    # two sizing calls, warm-up round, collection, then the round's untimed and timed calls
    assert events == ["call", "call", "call", "collect", "call", "call"]


def test_warm_up_process_takes_turns_until_its_time_is_up(monkeypatch):
    calls = {"cnnlab": 0, "torch": 0}

    def runners(batch, size, torch, training):
        assert (batch, size, training) == (64, 28, True)
        return {name: (lambda name=name: calls.__setitem__(name, calls[name] + 1))
                for name in calls}

    monkeypatch.setattr(bench, "lenet_runners", runners)
    start = time.perf_counter()
    bench.warm_up_process(None, 0.05)
    assert time.perf_counter() - start >= 0.05
    assert calls["cnnlab"] > 1 and calls["cnnlab"] == calls["torch"]


def test_run_warms_the_process_up_unless_quick(monkeypatch):
    seen = []
    monkeypatch.setattr(bench, "warm_up_process", lambda torch, seconds: seen.append(seconds))
    one = bench.CONV_SUITE[:1]
    bench.run(parts=("conv",), quick=True, use_torch=False, cases=one)
    assert seen == []
    bench.run(parts=("conv",), quick=True, use_torch=False, cases=one, warm_up_seconds=0.01)
    assert seen == [0.01]
    bench.run(parts=("conv",), rounds=1, use_torch=False, cases=one)
    assert seen == [0.01, bench.WARM_UP_SECONDS]
