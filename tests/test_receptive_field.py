"""Receptive fields: the recurrence against the gradient's footprint, and the lecture's point."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab import models, nn
from cnnlab.autograd import Tensor
from cnnlab.tools import receptive_field


def footprint(model, shape, index):
    """Input pixels that output feature ``index`` depends on: where its gradient is nonzero."""
    for p in model.parameters():
        p.data[...] = 1.0 if p.ndim > 1 else 0.0                  # every weight counts
    x = Tensor(np.ones((1, *shape)), requires_grad=True)
    out = model(x)
    grad = np.zeros(out.shape)
    grad[(0, 0, *index)] = 1
    out.backward(grad)
    rows, cols = np.nonzero(np.abs(x.grad[0, 0]) > 0)
    return (rows.min(), rows.max()), (cols.min(), cols.max())


@pytest.mark.parametrize("layers", [
    [nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(2, 2, 3, stride=2,
                                                                         dilation=2)],
    [nn.Conv2d(1, 2, 5, stride=2, padding=2), nn.AvgPool2d(3, stride=1, padding=1),
     nn.Conv2d(2, 1, (3, 1), padding="same")],
    [nn.Conv2d(1, 1, 4, padding="same"), nn.Conv2d(1, 1, 2, stride=2), nn.Conv2d(1, 1, 3)],
])
def test_size_jump_and_start_match_the_gradient_footprint(layers):
    cnnlab.manual_seed(0)
    model = nn.Sequential(*layers).double()
    last = receptive_field(model, (1, 48, 48))[-1]
    for index in [(2, 3), (4, 1)]:
        (r0, r1), (c0, c1) = footprint(model, (1, 48, 48), index)
        for (lo, hi), i, size, jump, start in zip(((r0, r1), (c0, c1)), index, last.size,
                                                  last.jump, last.start):
            centre = start + i * jump              # the field, cut to the image's 48 pixels
            assert (lo, hi) == (max(centre - (size - 1) / 2, 0), min(centre + (size - 1) / 2, 47))


def test_the_lecture_point_two_3x3_see_5x5_with_18_weights():
    two = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Conv2d(1, 1, 3))
    one = nn.Sequential(nn.Conv2d(1, 1, 5))
    assert receptive_field(two, (1, 9, 9))[-1].size == receptive_field(one, (1, 9, 9))[-1].size
    assert two[0].weight.size + two[2].weight.size == 18 < one[0].weight.size == 25


def test_lenet_and_residual_models():
    rows = receptive_field(models.lenet5(), (1, 28, 28))
    assert [(r.layer, r.size, r.jump) for r in rows[:6]] == [
        ("Conv2d(1→6, 5×5, padding 2)", (5, 5), (1, 1)), ("ReLU", (5, 5), (1, 1)),
        ("MaxPool2d(2×2)", (6, 6), (2, 2)), ("Conv2d(6→16, 5×5)", (14, 14), (2, 2)),
        ("ReLU", (14, 14), (2, 2)), ("MaxPool2d(2×2)", (16, 16), (4, 4))]
    assert rows[0].start == (0, 0) and rows[3].start == (4.5, 4.5)
    assert all(r.size is None for r in rows[6:])                   # flatten on: everything
    resnet = {r.name: r.size for r in receptive_field(models.small_resnet(), (1, 28, 28))}
    assert resnet["layer2.0.conv2"] == (13, 13) and resnet["layer2.0.downsample.0"] == (7, 7)
    assert resnet["layer2.0.relu"] == (13, 13)          # relu(main + shortcut): the wider one
    assert resnet["layer3.0.relu"] == (25, 25) and resnet["fc"] is None
