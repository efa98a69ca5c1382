"""Property-based checks: random legal convolution and pooling configurations against the loop
reference, and the algebraic identities that tie convolution to its transpose."""

from __future__ import annotations

import numpy as np
import reference
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnlab import functional as F
from cnnlab.ops.shapes import pool_output_size

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


@st.composite
def conv_configs(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2]))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    sizes, pads = [], []
    for k, d in zip(kernel, dilation):
        n = draw(st.integers(2, 6))
        limit = n - 1 if mode == "reflect" else 2
        before, after = draw(st.integers(0, min(2, limit))), draw(st.integers(0, min(2, limit)))
        span = d * (k - 1) + 1
        if n + before + after < span:                 # make the window fit
            n = span
        sizes.append(n)
        pads.append((before, after))
    seed = draw(st.integers(0, 2**16))
    return nd, groups, c_in, c_out, kernel, stride, dilation, mode, tuple(sizes), tuple(pads), seed


@settings(max_examples=60, deadline=None)
@given(conv_configs())
def test_random_conv_matches_reference(config):
    nd, groups, c_in, c_out, kernel, stride, dilation, mode, sizes, pads, seed = config
    assume(mode != "reflect" or all(max(p) < n for p, n in zip(pads, sizes)))  # pad < n
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c_in, *sizes))
    w = rng.standard_normal((c_out, c_in // groups, *kernel))
    b = rng.standard_normal(c_out)
    y = CONV[nd](x, w, b, stride=stride, padding=pads, dilation=dilation, groups=groups,
                 padding_mode=mode)
    expected = reference.conv_nd(x, w, b, stride, pads, dilation, groups, mode)
    np.testing.assert_allclose(y.data, expected, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(conv_configs())
def test_conv_transpose_is_the_adjoint_of_conv(config):
    """<conv(x), y> = <x, conv_transpose(y)> for zero padding, any stride/dilation/groups."""
    nd, groups, c_in, c_out, kernel, stride, dilation, _, sizes, _, seed = config
    rng = np.random.default_rng(seed)
    pads = tuple(min(k - 1, 1) for k in kernel)           # symmetric, as transposed conv takes
    x = rng.standard_normal((2, c_in, *sizes))
    w = rng.standard_normal((c_out, c_in // groups, *kernel))
    try:
        z = CONV[nd](x, w, stride=stride, padding=pads, dilation=dilation, groups=groups)
    except ValueError:
        assume(False)                                     # window larger than this input
    y = rng.standard_normal(z.shape)
    # The transposed output must be padded back to x's size where the stride left pixels out.
    output_padding = tuple(
        n + 2 * p - ((o - 1) * s + d * (k - 1) + 1)
        for n, p, o, s, d, k in zip(sizes, pads, z.shape[2:], stride, dilation, kernel))
    # Skip sizes that output_padding (< max(stride, dilation)) cannot express.
    assume(all(op < max(s, d) for op, s, d in zip(output_padding, stride, dilation)))
    back = CONV_T[nd](y, w, stride=stride, padding=pads, output_padding=output_padding,
                      groups=groups, dilation=dilation)
    assert back.shape == x.shape
    np.testing.assert_allclose((z.data * y).sum(), (x * back.data).sum(), rtol=1e-10)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2),
       st.booleans(), st.integers(0, 2**16), st.data())
def test_random_max_pool_matches_reference(nd, k, s, d, ceil_mode, seed, data):
    p = data.draw(st.integers(0, k // 2))
    sizes = tuple(data.draw(st.integers(1, 7)) for _ in range(nd))
    try:
        out = [pool_output_size(n, k, s, p, d, ceil_mode) for n in sizes]
    except ValueError:
        assume(False)                                     # no window fits: rejected, as torch
    x = np.random.default_rng(seed).permutation(2 * 3 * int(np.prod(sizes))).astype(float)
    x = x.reshape(2, 3, *sizes)
    y = MAX_POOL[nd](x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    assert list(y.shape[2:]) == out
    expected, _ = reference.max_pool_nd(x, (k,) * nd, (s,) * nd, (p,) * nd, (d,) * nd,
                                        ceil_mode)
    np.testing.assert_array_equal(y.data, expected)
