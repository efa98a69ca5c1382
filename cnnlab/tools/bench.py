"""Benchmarks: cnnlab and PyTorch on identical work, in the same process, alternating.

Timings on a shared machine are noisy, so each comparison runs cnnlab and torch in alternating
rounds on the same float32 arrays and reports medians and the ratio ``torch time / cnnlab time``
(above 1: cnnlab is faster). PyTorch is optional: without it, cnnlab's times are reported alone.

Parts (``run(parts=...)`` and ``cnnlab bench --only``):

- ``conv``: conv2d forward + backward over the shapes of :data:`CONV_SUITE`, geometric mean.
- ``train`` / ``infer``: LeNet-5 training steps (SGD with momentum) and forward passes (at
  the chosen batch size, and forward passes also at :data:`INFER_LARGE_BATCH`).
- ``memory``: peak resident memory added by LeNet-5 training, each framework in a fresh process.
- ``scaling``: LeNet-5 training throughput against batch size and image size.
- ``compile``: the compiled kernels' first-run compile time (a fresh process, empty cache) and
  their load time from the cache.
- ``load``: LeNet-5 training with one core busy (another process spinning) against idle.

With the compiled kernels installed, ``cnnlab`` is the path that runs by default (compiled)
and a ``numpy`` column times the NumPy reference path on the same work.

Example:
    >>> report = run(parts=("conv",), quick=True, use_torch=False, cases=CONV_SUITE[:1])
    >>> row = report.conv[0]
    >>> row["name"], row["cnnlab_ms"] > 0, row["ratio"] is None
    ('LeNet conv1 1→6 5×5 pad 2, 64×28×28', True, True)
"""

from __future__ import annotations

import gc
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import functional as F
from .. import models, optim, random
from ..autograd import Tensor, no_grad
from ..ops import kernels
from .twin import torch_twin

PARTS = ("conv", "train", "infer", "memory", "scaling", "compile", "load")


@dataclass(frozen=True)
class ConvCase:
    """One conv2d forward + backward: ``(batch, c_in, size, size)`` input, square kernel."""

    name: str
    batch: int
    c_in: int
    size: int
    c_out: int
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    input_grad: bool = True        # False for a first layer: the image needs no gradient


CONV_SUITE = (
    ConvCase("LeNet conv1 1→6 5×5 pad 2, 64×28×28", 64, 1, 28, 6, 5, padding=2,
             input_grad=False),
    ConvCase("LeNet conv2 6→16 5×5, 64×14×14", 64, 6, 14, 16, 5),
    ConvCase("3×3 32→32, 32×32×32 (CIFAR-like)", 32, 32, 32, 32, 3, padding=1),
    ConvCase("3×3 64→64, 8×56×56 (ImageNet-like)", 8, 64, 56, 64, 3, padding=1),
    ConvCase("3×3 stride 2 32→64, 32×32×32", 32, 32, 32, 64, 3, stride=2, padding=1),
    ConvCase("3×3 dilation 2 32→32, 32×32×32", 32, 32, 32, 32, 3, padding=2, dilation=2),
    ConvCase("depthwise 3×3 64 ch, 32×32×32", 32, 64, 32, 64, 3, padding=1, groups=64),
    ConvCase("11×11 blur 1→1, 1×512×512", 1, 1, 512, 1, 11, padding=5),
)
BATCH_SIZES = (16, 32, 64, 128, 256, 512)
INFER_LARGE_BATCH = 500       # inference over a large batch (a test set's evaluation)
IMAGE_SIZES = (28, 56, 112, 224)


@dataclass
class Report:
    """What :func:`run` measured; ``str()`` is the printed report, ``to_json()`` the file."""

    machine: dict[str, Any]
    conv: list[dict[str, Any]] = field(default_factory=list)
    conv_geomean: float | None = None
    train: dict[str, Any] | None = None
    infer: dict[str, Any] | None = None
    infer_large: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    scaling: list[dict[str, Any]] = field(default_factory=list)
    compile: dict[str, Any] | None = None
    load: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)

    def __str__(self) -> str:
        return "\n".join(_render(self))


# ----------------------------------------------------------------------------- timing
def _load_torch(use_torch: bool) -> Any:
    if not use_torch:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def alternate(runners: dict[str, Callable[[], Any]], rounds: int, min_seconds: float,
              settle: float = 0.25) -> dict[str, float]:
    """Median seconds per call of each runner, the runners taking turns round by round.

    Each runner is called twice, the second call sizing its rounds: enough calls that one round
    lasts about ``min_seconds`` (a first call pays for what happens once, such as loading
    compiled kernels: the depthwise layer's 2.67 ms against 1.80, which made its rounds 75 calls
    instead of 111). Then one untimed round of every runner warms the process up: its first
    steps load compiled kernels and touch fresh pages of a heap three libraries share (LeNet-5
    training: 19,059 page faults in cnnlab's first 20 steps of a process, 527 in PyTorch's,
    single digits in every later 20); the objects that loading and warming up left are collected
    once after it, so that the timed rounds do not pay for a full collection of them (0.24 s
    each, with PyTorch and numba loaded, measured with ``gc.callbacks``). Before each round the
    machine idles ``settle`` seconds: BLAS and OpenMP worker threads spin for a while after
    their work, and would otherwise take the cores from the library timed next (measured:
    PyTorch's LeNet-5 step went from 8 to 15 ms right after cnnlab's). The pause has its own
    cost: the first steps after it are slower (cnnlab's LeNet-5 step: 11–13 ms for the first
    four or five after 0.25 s asleep, 7–8 ms after 0.25 s of busy work or none), so a quarter of
    each round's calls run untimed before the round is timed: the rounds measure the steady
    state a training loop runs in, not the wake-up.
    """
    calls = {}
    for name, fn in runners.items():
        fn()
        start = time.perf_counter()
        fn()
        once = max(time.perf_counter() - start, 1e-6)
        calls[name] = max(1, math.ceil(min_seconds / once))
    for name, fn in runners.items():                # the untimed warm-up round
        for _ in range(calls[name]):
            fn()
    gc.collect()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            time.sleep(settle)          # the other library's worker threads stop spinning
            for _ in range(math.ceil(calls[name] / 4)):     # awake again, untimed
                fn()
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(values) for name, values in samples.items()}


# A process's first seconds of cnnlab and PyTorch taking turns run slower than later ones:
# LeNet-5 inference at batch 64 in 0.5 s blocks, cnnlab 2.10, 2.21 ms, then 1.70-1.93 from
# the third second on, PyTorch 2.63 -> 2.25-2.30 (`/tmp/p/ramp.py`; cnnlab alone: 1.68-1.86
# from the first block). The first measurement of a bench fell in that ramp (LeNet-5
# training 0.79-0.96× first in a process, 1.07-1.26× when measured again in it).
WARM_UP_SECONDS = 3.0


def warm_up_process(torch: Any, seconds: float) -> None:
    """LeNet-5 training steps of cnnlab and of its torch twin taking turns, untimed, for about
    ``seconds``: the process's start-up ramp (above) before anything is timed."""
    runners = lenet_runners(64, 28, torch, training=True)
    end = time.perf_counter() + seconds
    while True:
        for fn in runners.values():
            fn()
        if time.perf_counter() >= end:
            return


def _ratio(times: dict[str, float], ours: str = "cnnlab") -> float | None:
    return times["torch"] / times[ours] if "torch" in times and ours in times else None


def _with_numpy_twin(runners: dict[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
    """Add a ``numpy`` runner (the ``cnnlab`` one on the NumPy path) when the default path is
    the compiled one."""
    if kernels.active() != "compiled":
        return runners
    ours = runners["cnnlab"]

    def numpy_path() -> None:
        with kernels.forced_kernels("numpy"):
            ours()

    return {"cnnlab": ours, "numpy": numpy_path, **{k: v for k, v in runners.items()
                                                     if k != "cnnlab"}}


def _geomean(values: Sequence[float]) -> float | None:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


# ----------------------------------------------------------------------------- conv suite
def _conv_runners(case: ConvCase, torch: Any) -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.batch, case.c_in, case.size, case.size), dtype=np.float32)
    w = rng.standard_normal((case.c_out, case.c_in // case.groups, case.kernel, case.kernel),
                            dtype=np.float32) * np.float32(0.1)
    b = np.zeros(case.c_out, np.float32)
    args = dict(stride=case.stride, padding=case.padding, dilation=case.dilation,
                groups=case.groups)
    xt = Tensor(x, requires_grad=case.input_grad)
    wt, bt = Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    dy = None

    def ours() -> None:
        nonlocal dy
        wt.grad = bt.grad = xt.grad = None
        y = F.conv2d(xt, wt, bt, **args)
        if dy is None:
            dy = np.random.default_rng(1).standard_normal(y.shape, dtype=np.float32)
        y.backward(dy)

    runners = {"cnnlab": ours}
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_(case.input_grad)
        tw = torch.from_numpy(w.copy()).requires_grad_(True)
        tb = torch.from_numpy(b.copy()).requires_grad_(True)

        def theirs() -> None:
            tw.grad = tb.grad = tx.grad = None
            y = torch.nn.functional.conv2d(tx, tw, tb, **args)
            y.backward(torch.from_numpy(dy))

        ours()                                    # fixes dy for both
        runners["torch"] = theirs
    return runners


def bench_conv(cases: Sequence[ConvCase], torch: Any, rounds: int, min_seconds: float
               ) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        times = alternate(_with_numpy_twin(_conv_runners(case, torch)), rounds, min_seconds)
        rows.append({"name": case.name, "cnnlab_ms": times["cnnlab"] * 1e3,
                     "numpy_ms": times["numpy"] * 1e3 if "numpy" in times else None,
                     "torch_ms": times["torch"] * 1e3 if "torch" in times else None,
                     "ratio": _ratio(times), "numpy_ratio": _ratio(times, "numpy")})
    return rows


# ----------------------------------------------------------------------------- LeNet-5
def _batches(batch: int, size: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((batch, 1, size, size), dtype=np.float32),
             rng.integers(0, 10, batch)) for _ in range(count)]


def lenet_runners(batch: int, size: int, torch: Any, training: bool
                  ) -> dict[str, Callable[[], Any]]:
    """One LeNet-5 training step (or forward pass) per call, for cnnlab and its torch twin."""
    random.manual_seed(0)
    net = models.lenet5(input_size=size)
    batches = _batches(batch, size, 4)
    twin = torch_twin(net, torch) if torch is not None else None
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    step = {"cnnlab": 0, "torch": 0}

    def ours() -> None:
        x, y = batches[step["cnnlab"] % len(batches)]
        step["cnnlab"] += 1
        if not training:
            with no_grad():
                net(x)
            return
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    runners = {"cnnlab": ours}
    if twin is not None:
        topt = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9)
        tbatches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

        def theirs() -> None:
            x, y = tbatches[step["torch"] % len(tbatches)]
            step["torch"] += 1
            if not training:
                with torch.no_grad():
                    twin(x)
                return
            topt.zero_grad()
            torch.nn.functional.cross_entropy(twin(x), y).backward()
            topt.step()

        runners["torch"] = theirs
    return runners


def bench_lenet(batch: int, size: int, torch: Any, training: bool, rounds: int,
                min_seconds: float) -> dict[str, Any]:
    times = alternate(_with_numpy_twin(lenet_runners(batch, size, torch, training)), rounds,
                      min_seconds)
    result = {"batch": batch, "size": size}
    for name, seconds in times.items():
        result[f"{name}_images_per_s"] = batch / seconds
    result["ratio"] = _ratio(times)
    result["numpy_ratio"] = _ratio(times, "numpy")
    return result


_COMPILE_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from cnnlab.tools.bench import lenet_runners
t1 = time.perf_counter()
lenet_runners(8, 28, None, training=True)["cnnlab"]()
t2 = time.perf_counter()
lenet_runners(8, 28, None, training=True)["cnnlab"]()
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_step_s": t2 - t1, "next_step_s": t3 - t2}))
"""


def bench_compile() -> dict[str, Any] | None:
    """First LeNet-5 training step in fresh processes: with an empty kernel cache (compiling
    every kernel it uses) and again with the cache just written. None without numba."""
    import os
    import tempfile

    if not kernels.numba_installed() or kernels.requested() == "numpy":
        return None
    result = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "CNNLAB_KERNELS": "compiled"}
        for name in ("cold", "cached"):
            done = subprocess.run([sys.executable, "-c", _COMPILE_CHILD], env=env,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                return None
            times = json.loads(done.stdout)
            result[f"{name}_s"] = times["first_step_s"] - times["next_step_s"]
    return result


_LOAD_CHILD = "while True: pass"


def bench_load(batch: int, torch: Any, rounds: int, min_seconds: float) -> dict[str, Any]:
    """LeNet-5 training idle, then with one core busy (a child process spinning).

    ``slowdown`` is loaded time / idle time per library (1.0: not slowed at all)."""
    runners = lenet_runners(batch, 28, torch, training=True)
    idle = alternate(runners, rounds, min_seconds)
    busy = subprocess.Popen([sys.executable, "-c", _LOAD_CHILD])
    try:
        time.sleep(0.5)
        loaded = alternate(runners, rounds, min_seconds)
    finally:
        busy.kill()
        busy.wait()
    return {"batch": batch,
            **{f"{name}_idle_images_per_s": batch / t for name, t in idle.items()},
            **{f"{name}_loaded_images_per_s": batch / t for name, t in loaded.items()},
            **{f"{name}_slowdown": loaded[name] / idle[name] for name in idle}}


_MEMORY_CHILD = """
import json, sys
from cnnlab.tools.bench import _peak_memory_child
print(json.dumps(_peak_memory_child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
"""


def _rss_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field_name}")


def _peak_memory_child(framework: str, batch: int, steps: int) -> dict[str, float]:
    """In a fresh process: resident memory added at the peak of ``steps`` LeNet-5 steps.

    One step on a batch of 2 runs first, so that compiling the kernels (a one-time cost of
    the process, tens of MiB in LLVM) is not counted as training memory."""
    from ..memory import keep_freed_memory

    keep_freed_memory()                       # as in `cnnlab train` and the timed parts
    torch = _load_torch(True) if framework == "torch" else None
    if framework == "torch" and torch is None:
        raise SystemExit("torch is not installed")
    lenet_runners(2, 28, torch, training=True)[framework]()   # compile once (LLVM's memory)
    runners = lenet_runners(batch, 28, torch, training=True)
    with open("/proc/self/clear_refs", "w") as f:      # resets the peak (VmHWM) to now
        f.write("5")
    before = _rss_kib("VmRSS")
    for _ in range(steps):
        runners[framework]()
    return {"peak_mib": (_rss_kib("VmHWM") - before) / 1024}


def bench_memory(batch: int, steps: int, torch: Any) -> dict[str, Any] | None:
    """Peak memory of LeNet-5 training above the process's resting size, per framework."""
    result: dict[str, Any] = {"batch": batch, "steps": steps}
    for name in ("cnnlab", "torch") if torch is not None else ("cnnlab",):
        done = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, name, str(batch),
                               str(steps)], capture_output=True, text=True)
        if done.returncode != 0:            # no /proc (not Linux): nothing to report
            return None
        result[f"{name}_peak_mib"] = json.loads(done.stdout)["peak_mib"]
    if torch is not None:
        result["ratio"] = result["cnnlab_peak_mib"] / max(result["torch_peak_mib"], 1e-9)
    return result


# ----------------------------------------------------------------------------- run, render
def run(parts: Sequence[str] = PARTS, *, rounds: int = 5, quick: bool = False,
        use_torch: bool = True, cases: Sequence[ConvCase] = CONV_SUITE,
        batch_size: int = 64, warm_up_seconds: float | None = None) -> Report:
    """Run the chosen benchmark parts; ``quick`` shrinks rounds and sizes (for a smoke test).

    Args:
        parts: any of ``"conv", "train", "infer", "memory", "scaling"``.
        rounds: alternating rounds per measurement (the median is reported).
        quick: one short round, small scaling table (checks that everything runs).
        use_torch: compare with PyTorch when it is installed.
        cases: the conv shapes to time.
        batch_size: LeNet-5 batch for ``train``, ``infer`` and ``memory``.
        warm_up_seconds: how long :func:`warm_up_process` runs before the in-process parts
            (default :data:`WARM_UP_SECONDS`, none when ``quick``).

    Returns:
        A :class:`Report`.
    """
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"bench: parts must be among {', '.join(PARTS)}; received "
                         f"{', '.join(map(repr, unknown))}.")
    torch = _load_torch(use_torch)
    rounds, min_seconds = (1, 0.0) if quick else (rounds, 0.2)
    report = Report(machine={"numpy": np.__version__, "python": sys.version.split()[0],
                             "torch": torch.__version__ if torch is not None else None,
                             "torch_threads": torch.get_num_threads() if torch else None,
                             "kernels": kernels.active()})
    if warm_up_seconds is None:
        warm_up_seconds = 0.0 if quick else WARM_UP_SECONDS
    if warm_up_seconds > 0 and set(parts) & {"conv", "train", "infer", "scaling", "load"}:
        warm_up_process(torch, warm_up_seconds)
    if "conv" in parts:
        report.conv = bench_conv(cases, torch, rounds, min_seconds)
        report.conv_geomean = _geomean([r["ratio"] for r in report.conv if r["ratio"]])
    if "train" in parts:
        report.train = bench_lenet(batch_size, 28, torch, True, rounds, min_seconds)
    if "infer" in parts:
        report.infer = bench_lenet(batch_size, 28, torch, False, rounds, min_seconds)
        report.infer_large = bench_lenet(INFER_LARGE_BATCH, 28, torch, False, rounds,
                                         min_seconds)
    if "memory" in parts:
        report.memory = bench_memory(batch_size, 3 if quick else 20, torch)
    if "scaling" in parts:
        batches, sizes = ((16, 32), (28, 32)) if quick else (BATCH_SIZES, IMAGE_SIZES)
        scale_rounds = 1 if quick else 3
        report.scaling = (
            [bench_lenet(b, 28, torch, True, scale_rounds, min_seconds) for b in batches]
            + [bench_lenet(64, s, torch, True, scale_rounds, min_seconds)
               for s in sizes if s != 28])
    if "compile" in parts:
        report.compile = bench_compile()
    if "load" in parts:
        report.load = bench_load(batch_size, torch, 1 if quick else 3, min_seconds)
    return report


def _fmt_ratio(ratio: float | None) -> str:
    return f"{ratio:.2f}×" if ratio is not None else "—"


def _fmt(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else "—"


def _render(report: Report) -> list[str]:
    m = report.machine
    lines = [f"cnnlab bench — NumPy {m['numpy']}, Python {m['python']}, "
             + (f"PyTorch {m['torch']} ({m['torch_threads']} threads)" if m["torch"]
                else "PyTorch not installed") + f"; cnnlab kernels: {m['kernels']}"
             + "; ratio = torch time / cnnlab time"]
    if report.conv:
        lines += ["", "conv2d forward + backward (ms per call; numpy: the NumPy path)",
                  f"  {'shape':<40} {'cnnlab':>8} {'numpy':>8} {'torch':>8} {'ratio':>7} "
                  f"{'numpy':>7}"]
        for r in report.conv:
            lines.append(f"  {r['name']:<40} {r['cnnlab_ms']:>8.2f} "
                         f"{_fmt(r.get('numpy_ms'), '>8.2f'):>8} "
                         f"{_fmt(r['torch_ms'], '>8.2f'):>8} {_fmt_ratio(r['ratio']):>7} "
                         f"{_fmt_ratio(r.get('numpy_ratio')):>7}")
        numpy_ratios = [r["numpy_ratio"] for r in report.conv if r.get("numpy_ratio")]
        lines.append(f"  {'geometric mean':<40} {'':>8} {'':>8} {'':>8} "
                     f"{_fmt_ratio(report.conv_geomean):>7} "
                     f"{_fmt_ratio(_geomean(numpy_ratios)):>7}")
    for title, result in (("training", report.train), ("inference", report.infer),
                          ("inference", report.infer_large)):
        if result:
            numpy_part = (f" (NumPy path {result['numpy_images_per_s']:,.0f}, ratio "
                          f"{_fmt_ratio(result['numpy_ratio'])})"
                          if "numpy_images_per_s" in result else "")
            lines += ["", f"LeNet-5 {title}, batch {result['batch']}: cnnlab "
                      f"{result['cnnlab_images_per_s']:,.0f} images/s{numpy_part}, torch "
                      f"{_fmt(result.get('torch_images_per_s'), ',.0f')} images/s, ratio "
                      f"{_fmt_ratio(result['ratio'])}"]
    if report.memory:
        mem = report.memory
        lines += ["", f"LeNet-5 training peak memory (batch {mem['batch']}, {mem['steps']} "
                  f"steps, above the resting process): cnnlab {mem['cnnlab_peak_mib']:.1f} MiB,"
                  f" torch {_fmt(mem.get('torch_peak_mib'), '.1f')} MiB"
                  + (f", cnnlab / torch {mem['ratio']:.2f}" if "ratio" in mem else "")]
    if report.scaling:
        lines += ["", "LeNet-5 training throughput against work (images/s)",
                  f"  {'batch':>6} {'size':>5} {'cnnlab':>9} {'torch':>9} {'ratio':>7}"]
        for r in report.scaling:
            lines.append(f"  {r['batch']:>6} {r['size']:>5} {r['cnnlab_images_per_s']:>9,.0f} "
                         f"{_fmt(r.get('torch_images_per_s'), '>9,.0f'):>9} "
                         f"{_fmt_ratio(r['ratio']):>7}")
    if report.compile:
        lines += ["", f"compiled kernels, first LeNet-5 step of a fresh process: "
                  f"{report.compile['cold_s']:.1f} s compiling (empty cache), "
                  f"{report.compile['cached_s']:.2f} s loading them from the cache"]
    if report.load:
        ld = report.load
        names = [n for n in ("cnnlab", "torch") if f"{n}_slowdown" in ld]
        lines += ["", f"LeNet-5 training (batch {ld['batch']}) with one core busy, images/s "
                  f"idle -> loaded (slowdown):"]
        lines += [f"  {n:<7} {ld[f'{n}_idle_images_per_s']:>9,.0f} -> "
                  f"{ld[f'{n}_loaded_images_per_s']:>9,.0f}  ({ld[f'{n}_slowdown']:.2f}×)"
                  for n in names]
    return lines
