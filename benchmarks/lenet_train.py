"""LeNet-5 training throughput: cnnlab against the identical PyTorch model, same process.

Both train LeNet-5 (28×28 inputs, batch 64, SGD with momentum, cross-entropy) on the same random
float32 batches. The two frameworks alternate in rounds so that machine noise hits both alike;
the median round gives images/s, and the ratio is cnnlab / torch throughput (> 1: cnnlab faster).

    python benchmarks/lenet_train.py [--steps 20] [--rounds 7] [--batch-size 64] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

import cnnlab
from cnnlab import functional as F
from cnnlab import models, optim


def cnnlab_trainer(batch_size: int, seed: int):
    cnnlab.manual_seed(seed)
    net = models.lenet5()
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step(x: np.ndarray, y: np.ndarray) -> float:
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step, net


def torch_trainer(torch, net_state: dict):
    tnn = torch.nn
    net = tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5),
        tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(),
        tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in net_state.items()})
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = tnn.CrossEntropyLoss()

    def step(x: np.ndarray, y: np.ndarray) -> float:
        opt.zero_grad()
        loss = loss_fn(net(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        return loss.item()

    return step


def time_steps(step, batches) -> float:
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (median)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((args.batch_size, 1, 28, 28)).astype(np.float32),
                rng.integers(0, 10, args.batch_size).astype(np.int64))
               for _ in range(args.steps)]
    ours, net = cnnlab_trainer(args.batch_size, seed=0)
    runners = {"cnnlab": ours}
    try:
        import torch
        runners["torch"] = torch_trainer(torch, net.state_dict())
    except ImportError:
        torch = None
        print("torch is not installed: timing cnnlab alone")

    for step in runners.values():                 # warm-up: allocations, BLAS threads, caches
        time_steps(step, batches[:3])
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, step in runners.items():
            times[name].append(time_steps(step, batches))

    images = args.steps * args.batch_size
    result = {"benchmark": "lenet5_train", "batch_size": args.batch_size, "steps": args.steps,
              "rounds": args.rounds, "machine": platform.machine(),
              "numpy": np.__version__, "torch": torch.__version__ if torch else None}
    for name, values in times.items():
        result[f"{name}_images_per_s"] = images / statistics.median(values)
        print(f"{name:>7}: {result[f'{name}_images_per_s']:8.0f} images/s "
              f"(median of {args.rounds} rounds of {args.steps} steps, batch {args.batch_size})")
    if "torch" in runners:
        ratio = result["cnnlab_images_per_s"] / result["torch_images_per_s"]
        result["ratio_cnnlab_over_torch"] = ratio
        print(f"  ratio: {ratio:.2f}x PyTorch's training throughput")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
