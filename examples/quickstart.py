"""cnnlab in one minute: a lecture example by hand, its gradients, then a CNN trained from scratch.

    python examples/quickstart.py

1. The lecture's vertical-edge detector on a 6×6 image (a bright left half), computed with
   ``F.conv2d`` exactly as the notes do it by hand.
2. Backpropagation through that convolution: dK = X ⋆ dZ, dB = Σ dZ, dX = pad(dZ) ⋆ rot180(K).
3. LeNet-5 trained with SGD on a synthetic four-class problem (bars: horizontal, vertical and
   the two diagonals, at random places in noisy 28×28 images), then its test accuracy.
"""

from __future__ import annotations

import time

import numpy as np

import cnnlab
from cnnlab import functional as F
from cnnlab import models, nn, optim


def edge_detection() -> None:
    image = np.array([[10, 10, 10, 0, 0, 0]] * 6, dtype=np.float32)
    kernel = np.array([[1, 0, -1]] * 3, dtype=np.float32)
    edges = F.conv2d(image[None, None], kernel[None, None])
    print("1. 6×6 image (bright left half) ⋆ vertical-edge kernel [1 0 -1] ->")
    print(edges.data[0, 0].astype(int), "\n   the edge shows as the bright middle columns.\n")


def backprop_identities() -> None:
    x = nn.Parameter(np.array([[[[1, 2, 0], [3, -1, 2], [0, 1, 4]]]], dtype=np.float64))
    k = nn.Parameter(np.array([[[[1, -2], [3, 0]]]], dtype=np.float64))
    b = nn.Parameter(np.array([1.0]))
    z = F.conv2d(x, k, b)
    z.backward(np.array([[[[1, -1], [2, 3]]]], dtype=np.float64))
    print("2. z = X ⋆ K + b =", z.data[0, 0].tolist(), " with dL/dz = [[1, -1], [2, 3]]:")
    print("   dL/dK = X ⋆ dZ =", k.grad[0, 0].tolist(), "  dL/dB = Σ dZ =", b.grad.tolist())
    print("   dL/dX = pad(dZ) ⋆ rot180(K) =", x.grad[0, 0].tolist(), "\n")


def bars(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 28×28 images of a bar in one of four orientations (the class)."""
    labels = rng.integers(0, 4, n)
    images = rng.normal(0.0, 0.3, (n, 1, 28, 28)).astype(np.float32)
    idx = np.arange(28)
    for i, (label, offset) in enumerate(zip(labels, rng.integers(-8, 9, n))):
        line = np.clip(14 + offset, 0, 27)
        if label == 0:
            images[i, 0, line, :] += 2.0                        # horizontal
        elif label == 1:
            images[i, 0, :, line] += 2.0                        # vertical
        elif label == 2:
            images[i, 0, idx, np.clip(idx + offset, 0, 27)] += 2.0      # diagonal
        else:
            images[i, 0, idx, np.clip(27 - idx + offset, 0, 27)] += 2.0  # anti-diagonal
    return images, labels


def train_lenet() -> float:
    cnnlab.manual_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = bars(2048, rng)
    x_test, y_test = bars(512, rng)
    net = models.lenet5(num_classes=4)
    opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    print(f"3. LeNet-5 ({net.num_parameters():,} parameters) on 2,048 synthetic bar images:")
    start = time.perf_counter()
    for epoch in range(2):
        order = rng.permutation(len(x_train))
        losses = []
        for i in range(0, len(order), 64):
            batch = order[i:i + 64]
            opt.zero_grad()
            loss = F.cross_entropy(net(x_train[batch]), y_train[batch])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print(f"   epoch {epoch + 1}: mean training loss {np.mean(losses):.4f}")
    net.eval()
    with cnnlab.no_grad():
        accuracy = float((net(x_test).data.argmax(axis=1) == y_test).mean())
    print(f"   test accuracy {accuracy:.1%} on 512 new images "
          f"({time.perf_counter() - start:.1f} s of training)")
    return accuracy


if __name__ == "__main__":
    edge_detection()
    backprop_identities()
    train_lenet()
