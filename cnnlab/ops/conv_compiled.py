"""Convolution as the lecture's loops, compiled (numba): stride 1, in the (N, C, H, W) layout,
with no window matrix and no transposes.

Notation as in ``conv``: padded input ``Xp (N, C, Hp, Wp)``, kernel ``K (C_out, C/G, k_h, k_w)``,
output ``Z (N, C_out, O_h, O_w)``, dilation ``(d_h, d_w)``, ``G`` groups. 1-D layers run as 2-D
ones of height 1.

**Planes as flat rows.** With stride 1, output ``Z[i, j]`` reads ``Xp[i + a·d_h, j + e·d_w]``
for tap ``(a, e)``. Number the positions of a plane of width ``Wp`` as ``p = i·Wp + j``: then tap
``(a, e)`` reads ``Xp`` at ``p + a·d_h·Wp + e·d_w``, a *fixed shift*, for every output at once.
So each tap is one pass over a long contiguous range, ``Zw[p] += K[a, e] · Xp[p + shift]``,
computed over the "wide" output ``Zw`` whose rows have ``Wp`` entries (the ``Wp - O_w`` extra
columns are computed and dropped). LLVM compiles each pass to vector instructions; the taps of
a kernel row are applied five (or three) at a time, to two output channels at once, so each
store of ``Zw`` carries five multiply-adds and each load of ``Xp`` serves two. A plane of
``Zw`` (a few KiB) stays in the L1 cache through all its taps.

- forward: ``Z[n, o] = B[o] + Σ_{c ∈ group(o)} Σ_{a,e} K[o, c, a, e] · shift(Xp[n, c])``
- dX: the lecture's ``(dZ padded by d·(k-1)) ⋆ rot180(K)``, input and output channels swapped:
  the same forward kernel, run on the padded ``dZ``.
- dK: ``dK[o, c, a, e] = Σ_n Σ_p dZw[n, o, p] · Xp[n, c, p + shift(a, e)]`` with ``dZw`` the
  wide ``dZ`` whose extra columns are zero (five taps and two output channels per pass again).

Each kernel computes a range of *items* (an image's pair of output planes, or the pair of
kernel rows of two output channels for one input channel), and
``parallel.run_blocks`` deals the ranges out to the threads, so every value is computed by one
thread with the same arithmetic however many threads run.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import parallel
from .kernels import distinct_arrays, jit, wide_vectors
from .pad import pad_forward

_WORK_PER_BLOCK = 1 << 20          # aim for at least this many multiply-adds per block

# Short loops. LLVM vectorises a loop as a vector loop that takes several vectors a turn
# (64 float32 values for a sum on this Intel Xeon with AVX-512), preceded by a check that
# sends shorter runs to the scalar loop. So a sum along the rows of a 32-wide plane runs
# scalar, where the same sum over the whole plane, one contiguous run, does not (one
# thread, a 32×32 plane: copy and sum row by row 0.18 ns a value, the copy row by row and
# then the sum over the plane 0.085; rows of 96: 0.065 and 0.07). Sums over a plane are
# therefore taken in a pass of their own. (Plain copies vectorise at shorter lengths.)


@jit
def plane_sum(values, start, count):
    """``Σ values[start .. start + count - 1]`` in the working precision, in one pass over the
    run (see "Short loops"): dB's share of a plane, for every kernel that lays dZ out."""
    total = values.dtype.type(0)
    first = np.uint64(start)
    for q in range(np.uint64(count)):
        total += values[first + q]
    return total


@jit
def _correlate_flat(xf, w, b, z, index, wp, dh, dw, epilogue, start, stop):
    """``Z[n, o] = Σ_c Σ_{a,e} K[o, c, a, e] · Xp[n, g·C/G + c, p + a·d_h·Wp + e·d_w] + B[o]``
    for the items ``start .. stop-1``: item ``t`` is image ``t // P`` and its ``t % P``-th pair
    of output channels ``(o, o + 1)`` of one group (``P`` pairs an image; the last channel of
    a group with an odd count is paired with itself, and written once).

    ``xf (N, C, Hp·Wp)`` flat input planes, ``z (N, C_out, O_h, O_w)``; with an ``epilogue``
    (see :func:`_finish`) ``z`` holds ``ReLU(Z)`` or its 2×2 maxima instead, and ``index``
    (unless empty) the maxima's positions."""
    wide_vectors()
    c_out, c_group, kh, kw = w.shape
    oh, ow = xf.shape[2] // wp - dh * (kh - 1), wp - dw * (kw - 1)
    span = (oh - 1) * wp + ow                      # wide positions up to the last output
    per_group = c_out // (xf.shape[1] // c_group)
    pairs = (per_group + 1) // 2                   # pairs of output channels a group
    per_image = pairs * (xf.shape[1] // c_group)
    wide = np.empty((2, oh * wp), dtype=z.dtype)   # (whole rows: the pooling reads them all)
    best_row = np.empty(oh * (wp // 2) + 1, dtype=z.dtype)   # (windows at every row)
    at_row = np.empty(oh * (wp // 2) + 1, dtype=np.int32)
    for t in range(start, stop):
        n, u = t // per_image, t % per_image
        o = (u // pairs) * per_group + 2 * (u % pairs)
        first = (u // pairs) * c_group             # first input channel of o's group
        two = 2 * (u % pairs) + 1 < per_group
        second = o + 1 if two else o               # a lone channel: computed twice
        wide[:, :] = 0
        for c in range(c_group):
            _taps_pair(xf[n, first + c], w[o, c], w[second, c], wide[0], wide[1], wp, dh, dw,
                       span)
        for r in range(2 if two else 1):           # drop the extra columns of each row
            _finish(wide[r], wp, ow, b[o + r], z[n, o + r], index[n, o + r], epilogue,
                    best_row, at_row)


@jit
def _window_max(v0, v1, v2, v3, zero, corner, right, below):
    """``(max(zero, v0, v1, v2, v3), its position)`` for a 2×2 window's values in window order
    (``v0`` at ``corner``, then ``+ right``, ``+ below``, ``+ below + right``): a value
    replaces the best so far only when strictly greater, or NaN, so the first maximum wins, a
    window of values ≤ 0 points at its first position and one holding NaN at its last NaN
    (ReLU, then the pooling layer's rule). The one rule of :func:`_finish` and
    :func:`_images_first_last`, inlined by LLVM into their vector loops."""
    take = (v0 > zero) | (v0 != v0)
    best = v0 if take else zero
    at = corner
    take = (v1 > best) | (v1 != v1)
    best = v1 if take else best
    at = corner + right if take else at
    take = (v2 > best) | (v2 != v2)
    best = v2 if take else best
    at = corner + below if take else at
    take = (v3 > best) | (v3 != v3)
    best = v3 if take else best
    at = corner + below + right if take else at
    return best, at


@jit
def _finish(src, width, out_width, bias, dst, index, epilogue, best_row, at_row):
    """``dst (h, w)`` from the rows of ``src`` (flat, rows of ``width`` values) plus ``bias``:
    ``epilogue`` 0 the sums themselves, 1 their ReLU, 2 the ReLU of their 2×2 maxima (a max
    pooling of kernel and stride 2 after the ReLU, ``dst`` half the size). NaN stays NaN, as in
    the ReLU and pooling layers it stands for: ``max(0, a, b, c, d)`` taken NaN-first is
    ``ReLU`` and then the window's maximum, the same values bit for bit.

    With the pooling, ``index (h, w)`` (unless it is empty) gets the position of each maximum
    in the plane of the sums (``r·O_w + q``, ``O_w = out_width``: the pooling layer's
    convention): the first maximum in window order (a window whose values are all ReLU'd to
    0: its first position), and in a window holding NaN the last NaN, chosen in the same loop
    as the maxima (a window's value replaces the best so far only when strictly greater, or
    NaN). One loop rather than a second pass for the positions: LeNet-5's first layer
    (pooled rows of 14) 0.57-0.58 -> 0.41 ms, its second (rows of 5) 0.29-0.30 -> 0.20, rows
    of 32 0.11 -> 0.065 (one thread, same process, Intel Xeon).

    A pooled row is computed over every pair of columns ``src``'s rows hold (``width // 2``,
    more than ``w`` on the direct kernels' wide rows) into the scratch rows ``best_row`` and
    ``at_row`` (positions too when none are asked for: one loop, the same instructions), then
    its ``w`` real values copied: LeNet-5's first layer's pooled rows of 14 do not fill the
    loop's vector step (2 × 8 lanes) and ran scalar; its wide rows of 16 do (its forward with
    positions, one thread: 0.64-0.65 -> 0.41-0.42 ms, without 0.48 -> 0.41). ``src`` must hold
    ``2·h·width`` values.

    Where ``width`` is even and the positions are not asked for, or are the ones in ``src``
    (``width = O_w``), the windows are taken in one pass over the plane instead, a window at
    every row (at ``r·width + 2j = 2q`` for ``q = r·width/2 + j``; the odd rows' are computed
    and dropped), which LLVM runs as one long vector loop, not ``h`` short ones (see "Short
    loops"): LeNet-5's first layer without positions (inference), two threads, same process:
    0.35 -> 0.26 ms. (Its training forward keeps the rows: positions converted from the wide
    rows' ``r·W_p + c`` to ``r·O_w + c`` afterwards took more than the pass saved.) ``best_row``
    and ``at_row`` hold ``2·h·width/2`` values."""
    distinct_arrays()
    h, w = dst.shape
    full = np.uint64(max(w, width // 2))       # pooled columns computed a row
    zero = dst.dtype.type(0)
    floor = zero if epilogue else dst.dtype.type(-np.inf)     # -inf: no ReLU (v kept)
    one = np.uint64(1)
    right, below = np.int32(1), np.int32(out_width)           # (int32: a vector's lanes)
    if epilogue == 2 and width % 2 == 0 and (index.shape[0] == 0 or width == out_width):
        half, across = np.uint64(width // 2), np.uint64(width)
        for q in range(np.uint64(2 * h - 1) * half):   # one pass: a window at every row r
            top = q + q                            # (q = r·half + j, at r·width + 2j = 2q)
            best_row[q], at_row[q] = _window_max(
                src[top] + bias, src[top + one] + bias, src[top + across] + bias,
                src[top + across + one] + bias, zero, np.int32(top), right, below)
        for i in range(h):
            row = np.uint64(2 * i) * half          # (the windows of the even rows)
            for j in range(w):
                dst[i, j] = best_row[row + j]
            if index.shape[0] > 0:
                for j in range(w):
                    index[i, j] = at_row[row + j]
        return
    for i in range(h):
        if epilogue < 2:
            row = np.uint64(i * width)
            for j in range(np.uint64(w)):
                v = src[row + j] + bias
                dst[i, j] = v if v > floor or v != v else floor
            continue
        top = np.uint64(2 * i * width)             # (unsigned: a signed index stops LLVM)
        bottom = top + np.uint64(width)
        first = np.int32(2 * i * out_width)
        for j in range(full):
            q = j + j
            best_row[j], at_row[j] = _window_max(
                src[top + q] + bias, src[top + q + one] + bias, src[bottom + q] + bias,
                src[bottom + q + one] + bias, zero, first + np.int32(q), right, below)
        for j in range(w):
            dst[i, j] = best_row[j]
        if index.shape[0] > 0:                     # (positions asked for: training)
            for j in range(w):
                index[i, j] = at_row[j]


@jit
def _weight_grad_flat(dzw, xf, parts, wp, span, dh, dw, start, stop):
    """``parts[s, o, c, a, e] = Σ_{n in chunk s} Σ_p dZw[n, o, p] · Xp[n, g·C/G + c, p + a·d_h·Wp
    + e·d_w]`` for the items ``start .. stop-1``: the images are cut into ``S = len(parts)``
    chunks of near-equal size (chunk ``s`` from ``s·N // S``), and item ``t`` is chunk
    ``t % S`` of the kernel rows ``(o, c)`` and ``(o + 1, c)`` of the ``u``-th pair of output
    channels (numbered as in :func:`_correlate_flat`) with ``c = u % (C/G)``, ``u = t // S``.

    ``dzw (N, C_out, O_h·Wp)`` is dZ on rows of width ``Wp``, zeros in the extra columns. Each
    image's sum is taken in the working precision, the sum over images in float64 (``parts``)."""
    wide_vectors()
    chunks, c_out, c_group, kh, kw = parts.shape
    n_images = dzw.shape[0]
    per_group = c_out // (xf.shape[1] // c_group)
    pairs = (per_group + 1) // 2
    total = np.zeros((2, kh, kw))
    for t in range(start, stop):
        u, s = t // chunks, t % chunks
        c = u % c_group
        u //= c_group
        o = (u // pairs) * per_group + 2 * (u % pairs)
        channel = (u // pairs) * c_group + c
        two = 2 * (u % pairs) + 1 < per_group
        second = o + 1 if two else o               # a lone channel: computed twice
        total[:, :, :] = 0.0
        for n in range(s * n_images // chunks, (s + 1) * n_images // chunks):
            _tap_sums_pair(dzw[n, o], dzw[n, second], xf[n, channel], total[0], total[1], wp,
                           dh, dw, span)
        for r in range(2 if two else 1):
            for a in range(kh):
                for e in range(kw):
                    parts[s, o + r, c, a, e] = total[r, a, e]


@jit
def _dz_plane(dz, dy, y, index, n, o, scratch):
    """Plane ``(n, o)`` of dZ, flat: ``dz[n, o]`` itself, or, given the pooling's positions
    (``index`` not empty: a :class:`PooledGradient`), built in ``scratch``: ``dY·[Y > 0]`` at
    the positions ``index[n, o]``, zero elsewhere (what the ReLU's and the pooling layer's
    backward passes give). Each caller lays either out with one loop, so a layer's dB is the
    same bit for bit whether its ReLU and pooling ran fused or as layers of their own."""
    if index.shape[0] == 0:
        return dz[n, o]
    zero, one = scratch.dtype.type(0), scratch.dtype.type(1)
    scratch[:] = 0
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            scratch[index[n, o, i, j]] = dy[n, o, i, j] * (one if y[n, o, i, j] > zero else zero)
    return scratch


@jit
def _widen(dz, dy, y, index, dzw, sums, oh, ow, start, stop):
    """``dZw[n, o, i·Wp + j] = dZ[n, o, i·O_w + j]`` and zero in the extra columns ``j ≥ O_w``
    (so ``dzw`` need not be zeroed first: LeNet-5's first layer, 0.027 ms a step) and
    ``sums[n, o] = Σ dZw[n, o]`` (dB's share of image ``n``, summed in the working precision)
    for the images ``start .. stop-1``; dZ is ``dz (N, C_out, O_h·O_w)``, or a
    :class:`PooledGradient` ``(dy, y, index)``: ``dY·[Y > 0]`` at the maxima's positions
    ``index``, zero elsewhere (the values the ReLU's and the pooling layer's backward passes
    give), put straight into the zeroed wide plane (built in a scratch plane and copied row by
    row before, rows of 28 too short for the vector loop: LeNet-5's first layer, batch 64,
    one thread 0.160-0.174 -> 0.118 ms, two 0.145 -> 0.120, same process). Either way the sum
    is over the wide plane in one pass, the same order for both forms: a layer's dB is the
    same bit for bit whether its ReLU and pooling ran fused or as layers of their own."""
    wp = dzw.shape[2] // oh
    pooled = index.shape[0] > 0
    zero, one = dzw.dtype.type(0), dzw.dtype.type(1)
    extra = np.uint64(wp - ow)
    for n in range(start, stop):
        for o in range(dzw.shape[1]):
            plane = dzw[n, o]
            if pooled:
                for q in range(np.uint64(oh * wp)):
                    plane[q] = zero
                for i in range(dy.shape[2]):
                    top = np.uint64(2 * i * ow)            # the windows' first row
                    for j in range(dy.shape[3]):
                        at = np.uint64(index[n, o, i, j])  # r·O_w + q, r = 2i or 2i + 1
                        second = at - top - np.uint64(2 * j) >= np.uint64(ow)
                        row = np.uint64(2 * i + 1) if second else np.uint64(2 * i)
                        plane[at + row * extra] = dy[n, o, i, j] * (one if y[n, o, i, j] > zero
                                                                   else zero)
            else:
                for i in range(oh):
                    row, at = np.uint64(i * wp), np.uint64(i * ow)
                    for j in range(np.uint64(ow)):
                        plane[row + j] = dz[n, o, at + j]
                    for j in range(np.uint64(ow), np.uint64(wp)):
                        plane[row + j] = zero
            sums[n, o] = plane_sum(plane, 0, oh * wp)


# One copy of each tap loop per kernel: every call site of a loop LLVM inlines is compiled on
# first use. So the direct kernels compute a lone output channel (the last of a group with an
# odd count) as a pair with itself rather than call the one-channel loops ``_taps`` and
# ``_tap_sums``, which only the depthwise kernels use: LeNet-5's first step compiled in
# 11.6 s instead of 14.0-16.1 (same hour), and a 1→1 filter's forward takes 1.6 times as
# long (11×11 blur of 512×512: 1.8 -> 2.8 ms, against PyTorch's 314).
# A second call with the literal steps ``1, 1`` for dilation 1 (so that LLVM knew
# the taps were adjacent) sped up only layers the rule no longer sends here (LeNet's second
# layer forced direct: forward 0.48 against 0.55 ms; its first layer, 3×3 layers and the
# depthwise ones within noise) and cost 3 of the 12.5 s the first LeNet-5 step compiled in.
#
# The tap loops below index with unsigned offsets (``q + p``) rather than slicing: a slice
# costs a reference count and a bounds computation each, which on 14-wide planes cost as much
# as the arithmetic (LeNet's second layer: 2.1 -> 1.2 ms one plane at a time); and a signed
# index is checked for Python's wrap-around, which keeps LLVM from vectorising.


@jit
def _tap_sums(g, src, total, wp, dh, dw, span):
    """``total[a, e] += Σ_{p < span} g[p] · src[p + a·d_h·Wp + e·d_w]``, five or three taps of
    a kernel row per pass (3×3 kernels: :func:`_tap_sums_3x3`); the sum of each pass in the
    working precision: ``g.dtype.type(0)``, not ``g[0] * 0``, which numba types as float64
    for float32 ``g`` and which ran the sums at half the vector width, 2 times slower."""
    wide_vectors()
    kh, kw = total.shape
    width, step = np.uint64(span), np.uint64(dw)
    five = kw - kw % 5                             # taps in passes of five, then three
    three = five + (kw - five) // 3 * 3
    for a in range(kh):
        for e in range(0, five, 5):                # five taps per pass
            q0 = np.uint64(a * dh * wp + e * dw)
            q1 = q0 + step
            q2, q3, q4 = q1 + step, q1 + step + step, q1 + step + step + step
            s0 = s1 = s2 = s3 = s4 = g.dtype.type(0)
            for p in range(width):
                s0 += g[p] * src[q0 + p]
                s1 += g[p] * src[q1 + p]
                s2 += g[p] * src[q2 + p]
                s3 += g[p] * src[q3 + p]
                s4 += g[p] * src[q4 + p]
            total[a, e] += s0
            total[a, e + 1] += s1
            total[a, e + 2] += s2
            total[a, e + 3] += s3
            total[a, e + 4] += s4
        for e in range(five, three, 3):
            q0 = np.uint64(a * dh * wp + e * dw)
            q1 = q0 + step
            q2 = q1 + step
            s0 = s1 = s2 = g.dtype.type(0)         # zeros in the working precision
            for p in range(width):
                s0 += g[p] * src[q0 + p]
                s1 += g[p] * src[q1 + p]
                s2 += g[p] * src[q2 + p]
            total[a, e] += s0
            total[a, e + 1] += s1
            total[a, e + 2] += s2
        for e in range(three, kw):
            q0 = np.uint64(a * dh * wp + e * dw)
            s0 = g.dtype.type(0)
            for p in range(width):
                s0 += g[p] * src[q0 + p]
            total[a, e] += s0


# The depthwise kernels' 3×3 loops take the output two rows at a time: rows ``i`` and
# ``i + d_h`` read the source rows ``i, i + d_h, i + 2·d_h`` and ``i + d_h, i + 2·d_h,
# i + 3·d_h``, so 12 loads serve 18 multiply-adds instead of 18; and the correlation writes
# its rows straight into the output plane instead of a wide scratch row copied out after.
# Depthwise 3×3 64 ch, 32×32×32, two threads, same process, against the nine-tap passes over
# wide rows: forward 0.80-0.84 -> 0.66-0.70 ms, backward 1.45-1.59 -> 1.37-1.44 (dilation 2
# alike). The correlation pairs rows only without dilation, where the second row's stores
# lie one row's length after the first's: stores a run-time distance apart, which LLVM
# cannot prove disjoint, made it fall back to scalar code (1.5 against 0.3 µs a 32×32
# plane); a loop over all the rows that skipped the partners was as slow.
#
# dK's nine sums are reductions, and a loop along one pair of rows (32 values) ended in nine
# horizontal sums of vector registers that cost about as much as the loop (see "Short
# loops"). So the backward deals the rows of its scratch planes out to ``2·d_h`` parts (row
# ``R`` is row ``R // 2d_h`` of part ``R % 2d_h``, see :func:`_row_starts`): the pairs of rows
# of one residue mod ``d_h`` then lie one row apart in two parts, and all of a residue's
# pairs are one flat pass over those parts, the extra columns of dZ being zero. One thread,
# a plane in the L1 cache, dK's sums: 32×32 0.38 -> 0.24 µs, 28×28 0.72 -> 0.19, 56×56
# 1.32 -> 0.69, 14×14 0.149 -> 0.061.


@jit
def _row_starts(count, parts, wq):
    """Where each of the ``count`` rows of a scratch plane (rows of ``W_q``) begins when its
    rows are dealt out to ``parts`` parts: row ``R`` is row ``R // parts`` of part
    ``R % parts``, and the parts follow each other. One part is a plain plane. (A table made
    once a call: divisions made for every plane cost more than the split saved.)"""
    per_part = (count + parts - 1) // parts
    starts = np.empty(count, dtype=np.int64)
    for row in range(count):
        starts[row] = (row % parts * per_part + row // parts) * wq
    return starts


@jit
def _correlate_3x3(src, wq, r0, c0, w, c, bias, out, at, oh, ow, dh, dw):
    """``Z[i, j] = bias + Σ_{a,e} K[c, 0, a, e] · src[(r0 + i + a·d_h)·W_q + c0 + j + e·d_w]``
    for ``i < O_h``, ``j < O_w``, written straight into the plane at ``out[at:]`` (flat, rows of
    ``O_w``): a 3×3 correlation of a flat zero-bordered plane with rows of ``W_q``. (Arrays
    and offsets rather than the plane's views: a view passed to a function costs its
    reference count, some 12 ns, on each of a layer's thousands of small planes; depthwise
    3×3 64 ch, 32×32×32, same process: forward 0.69-0.74 -> 0.61-0.68 ms, backward 0.95-0.97
    of the time.)"""
    wide_vectors()
    distinct_arrays()
    k0, k1, k2 = w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2]
    k3, k4, k5 = w[c, 0, 1, 0], w[c, 0, 1, 1], w[c, 0, 1, 2]
    k6, k7, k8 = w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2]
    width, e1, down = np.uint64(ow), np.uint64(dw), np.uint64(dh * wq)
    e2 = e1 + e1
    alone = 0                                      # the first row computed alone
    if dh == 1:
        for i in range(0, oh - 1, 2):
            s0 = np.uint64((r0 + i) * wq + c0)
            s1 = s0 + down
            s2 = s1 + down
            s3 = s2 + down
            top = np.uint64(at + i * ow)
            low = top + width
            for j in range(width):
                a0, a1, a2 = src[s0 + j], src[s0 + j + e1], src[s0 + j + e2]
                b0, b1, b2 = src[s1 + j], src[s1 + j + e1], src[s1 + j + e2]
                c0_, c1, c2 = src[s2 + j], src[s2 + j + e1], src[s2 + j + e2]
                d0, d1, d2 = src[s3 + j], src[s3 + j + e1], src[s3 + j + e2]
                out[top + j] = bias + (k0 * a0 + k1 * a1 + k2 * a2 + k3 * b0 + k4 * b1
                                       + k5 * b2 + k6 * c0_ + k7 * c1 + k8 * c2)
                out[low + j] = bias + (k0 * b0 + k1 * b1 + k2 * b2 + k3 * c0_ + k4 * c1
                                       + k5 * c2 + k6 * d0 + k7 * d1 + k8 * d2)
        alone = oh - oh % 2
    for i in range(alone, oh):
        s0 = np.uint64((r0 + i) * wq + c0)
        s1 = s0 + down
        s2 = s1 + down
        top = np.uint64(at + i * ow)
        for j in range(width):
            out[top + j] = bias + (k0 * src[s0 + j] + k1 * src[s0 + j + e1]
                                   + k2 * src[s0 + j + e2] + k3 * src[s1 + j]
                                   + k4 * src[s1 + j + e1] + k5 * src[s1 + j + e2]
                                   + k6 * src[s2 + j] + k7 * src[s2 + j + e1]
                                   + k8 * src[s2 + j + e2])


@jit
def _correlate_3x3_rows(src, starts, r0, c0, w, c, bias, out, at, oh, ow, dh, dw):
    """:func:`_correlate_3x3` of a scratch plane ``Q`` whose row ``R`` begins at ``starts[R]``
    (:func:`_row_starts`): ``Z[i, j] = bias + Σ_{a,e} K[c, 0, a, e] · Q[r0 + i + a·d_h, c0 + j
    + e·d_w]``. (The same loops with row addresses read from a table ran 10% slower in the
    forward, one thread, than with addresses computed, and 0-6% slower once both promised
    distinct arrays (three same-process runs, 2026-12-05): so the forward, whose plane is
    plain, keeps its own.)"""
    wide_vectors()
    distinct_arrays()
    k0, k1, k2 = w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2]
    k3, k4, k5 = w[c, 0, 1, 0], w[c, 0, 1, 1], w[c, 0, 1, 2]
    k6, k7, k8 = w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2]
    width, e1 = np.uint64(ow), np.uint64(dw)
    e2 = e1 + e1
    alone = 0                                      # the first row computed alone
    if dh == 1:
        for i in range(0, oh - 1, 2):
            s0 = np.uint64(starts[r0 + i] + c0)
            s1 = np.uint64(starts[r0 + i + 1] + c0)
            s2 = np.uint64(starts[r0 + i + 2] + c0)
            s3 = np.uint64(starts[r0 + i + 3] + c0)
            top = np.uint64(at + i * ow)
            low = top + width
            for j in range(width):
                a0, a1, a2 = src[s0 + j], src[s0 + j + e1], src[s0 + j + e2]
                b0, b1, b2 = src[s1 + j], src[s1 + j + e1], src[s1 + j + e2]
                c0_, c1, c2 = src[s2 + j], src[s2 + j + e1], src[s2 + j + e2]
                d0, d1, d2 = src[s3 + j], src[s3 + j + e1], src[s3 + j + e2]
                out[top + j] = bias + (k0 * a0 + k1 * a1 + k2 * a2 + k3 * b0 + k4 * b1
                                       + k5 * b2 + k6 * c0_ + k7 * c1 + k8 * c2)
                out[low + j] = bias + (k0 * b0 + k1 * b1 + k2 * b2 + k3 * c0_ + k4 * c1
                                       + k5 * c2 + k6 * d0 + k7 * d1 + k8 * d2)
        alone = oh - oh % 2
    for i in range(alone, oh):
        s0 = np.uint64(starts[r0 + i] + c0)
        s1 = np.uint64(starts[r0 + i + dh] + c0)
        s2 = np.uint64(starts[r0 + i + 2 * dh] + c0)
        top = np.uint64(at + i * ow)
        for j in range(width):
            out[top + j] = bias + (k0 * src[s0 + j] + k1 * src[s0 + j + e1]
                                   + k2 * src[s0 + j + e2] + k3 * src[s1 + j]
                                   + k4 * src[s1 + j + e1] + k5 * src[s1 + j + e2]
                                   + k6 * src[s2 + j] + k7 * src[s2 + j + e1]
                                   + k8 * src[s2 + j + e2])


@jit
def _tap_sums_3x3(dzq, xs, total, starts_z, starts_x, wq, rh, rw, oh, ow, dh, dw):
    """``total[a, e] += Σ_{i < O_h, j < O_w} dZ[i, j] · Xp[i + a·d_h, j + e·d_w]``: a 3×3
    kernel's nine sums in one pass. dZ is in ``dzq`` from row ``r_h`` and column ``r_w``
    (zeros around it), ``Xp`` in ``xs``, both with rows of ``W_q`` dealt out to ``2·d_h``
    parts (:func:`_row_starts`: row ``R`` of ``dzq`` from ``starts_z[R]``, of ``xs`` from
    ``starts_x[R]``). Rows ``i`` and ``i + d_h`` are taken together; the pairs of a
    residue mod ``d_h`` lie one row apart, so each residue is one flat pass over its parts
    (sums in the working precision, as in :func:`_tap_sums`). Returns ``Σ dZ``, dB's share
    of the plane, from the same loads (a pass of its own, :func:`plane_sum`, cost 8% of the
    backward: depthwise 3×3 64 ch, 32×32×32, two threads, same process, 1.17 -> 1.09 ms)."""
    wide_vectors()
    e1, e2 = np.uint64(dw), np.uint64(dw + dw)
    width, down = np.uint64(ow), np.uint64(wq)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = plane = dzq.dtype.type(0)
    for r in range(min(dh, oh)):
        rows = (oh - r + dh - 1) // dh             # dZ rows r, r + d_h, ...
        pairs = rows // 2
        g = np.uint64(starts_z[r + rh] + rw)       # dZ rows r, r + 2·d_h, ..
        h = np.uint64(starts_z[r + dh + rh] + rw)  # dZ rows r + d_h, r + 3·d_h, ..
        t0 = np.uint64(starts_x[r])                # Xp rows r, r + 2·d_h, ..
        t1 = np.uint64(starts_x[r + dh])           # Xp rows r + d_h, r + 3·d_h, ..
        t2, t3 = t0 + down, t1 + down              # Xp rows r + 2·d_h, r + 3·d_h, ..
        for p in range(np.uint64((pairs - 1) * wq + ow if pairs else 0)):
            g0, g1 = dzq[g + p], dzq[h + p]
            a0, a1, a2 = xs[t0 + p], xs[t0 + p + e1], xs[t0 + p + e2]
            b0, b1, b2 = xs[t1 + p], xs[t1 + p + e1], xs[t1 + p + e2]
            c0, c1, c2 = xs[t2 + p], xs[t2 + p + e1], xs[t2 + p + e2]
            d0, d1, d2 = xs[t3 + p], xs[t3 + p + e1], xs[t3 + p + e2]
            s0 += g0 * a0 + g1 * b0
            s1 += g0 * a1 + g1 * b1
            s2 += g0 * a2 + g1 * b2
            s3 += g0 * b0 + g1 * c0
            s4 += g0 * b1 + g1 * c1
            s5 += g0 * b2 + g1 * c2
            s6 += g0 * c0 + g1 * d0
            s7 += g0 * c1 + g1 * d1
            s8 += g0 * c2 + g1 * d2
            plane += g0 + g1
        if rows % 2:                               # the residue's last row alone
            last = np.uint64(pairs * wq)
            g, t0, t1, t2 = g + last, t0 + last, t1 + last, t2 + last
            for j in range(width):
                g0 = dzq[g + j]
                s0 += g0 * xs[t0 + j]
                s1 += g0 * xs[t0 + j + e1]
                s2 += g0 * xs[t0 + j + e2]
                s3 += g0 * xs[t1 + j]
                s4 += g0 * xs[t1 + j + e1]
                s5 += g0 * xs[t1 + j + e2]
                s6 += g0 * xs[t2 + j]
                s7 += g0 * xs[t2 + j + e1]
                s8 += g0 * xs[t2 + j + e2]
                plane += g0
    total[0, 0] += s0
    total[0, 1] += s1
    total[0, 2] += s2
    total[1, 0] += s3
    total[1, 1] += s4
    total[1, 2] += s5
    total[2, 0] += s6
    total[2, 1] += s7
    total[2, 2] += s8
    return plane


@jit
def _tap_sums_pair(g, h, src, total_g, total_h, wp, dh, dw, span):
    """:func:`_tap_sums` for two output channels at once (``g`` into ``total_g``, ``h`` into
    ``total_h``): each load of ``src`` serves two sums. Five taps or one per pass (ten
    running sums fill the vector registers; three-tap passes measured no faster)."""
    wide_vectors()
    kh, kw = total_g.shape
    width, step = np.uint64(span), np.uint64(dw)
    five = kw - kw % 5                             # taps in passes of five, then one
    for a in range(kh):
        for e in range(0, five, 5):
            q0 = np.uint64(a * dh * wp + e * dw)
            q1 = q0 + step
            q2, q3, q4 = q1 + step, q1 + step + step, q1 + step + step + step
            s0 = s1 = s2 = s3 = s4 = t0 = t1 = t2 = t3 = t4 = g.dtype.type(0)
            for p in range(width):
                x0, x1, x2, x3, x4 = src[q0 + p], src[q1 + p], src[q2 + p], src[q3 + p], src[q4 + p]
                s0 += g[p] * x0
                s1 += g[p] * x1
                s2 += g[p] * x2
                s3 += g[p] * x3
                s4 += g[p] * x4
                t0 += h[p] * x0
                t1 += h[p] * x1
                t2 += h[p] * x2
                t3 += h[p] * x3
                t4 += h[p] * x4
            total_g[a, e] += s0
            total_g[a, e + 1] += s1
            total_g[a, e + 2] += s2
            total_g[a, e + 3] += s3
            total_g[a, e + 4] += s4
            total_h[a, e] += t0
            total_h[a, e + 1] += t1
            total_h[a, e + 2] += t2
            total_h[a, e + 3] += t3
            total_h[a, e + 4] += t4
        for e in range(five, kw):
            q0 = np.uint64(a * dh * wp + e * dw)
            s0 = t0 = g.dtype.type(0)
            for p in range(width):
                x0 = src[q0 + p]
                s0 += g[p] * x0
                t0 += h[p] * x0
            total_g[a, e] += s0
            total_h[a, e] += t0


def _run(kernel, items: int, work_per_item: int, *args) -> None:
    """``kernel(*args, start, stop)`` over ``items`` in blocks spread over the threads: blocks
    of at most ``_WORK_PER_BLOCK`` multiply-adds, at least four blocks a thread; less work
    than one block runs on the calling thread (waking a pool thread costs more: LeNet-5's
    first layer for one image, 0.13 million multiply-adds)."""
    if items * work_per_item < _WORK_PER_BLOCK:
        kernel(*args, 0, items)
        return
    parallel.run_ranges(kernel, items, *args,
                        per_block=_WORK_PER_BLOCK // max(work_per_item, 1))


def _image_chunks(n: int, items: int, work_per_item: int) -> int:
    """Into how many chunks of images a weight gradient's ``items`` (each summed over all
    ``n`` images, ``work_per_item`` multiply-adds) are cut: blocks of about
    ``_WORK_PER_BLOCK``, enough to share out. LeNet-5's first layer has 3 items (pairs of
    output channels) of 2.9 million, which two threads took as 2 + 1; in 3 chunks, 9 blocks:
    its dK on two threads 190-192 -> 157-164 µs (12 blocks: 178-180), same process. Depends on
    the shapes only (the chunks' partial sums are added in order: the same dK for any number
    of threads)."""
    blocks = -(-items * work_per_item // _WORK_PER_BLOCK)
    return max(1, min(n, -(-blocks // items)))


def _as_2d(a: np.ndarray) -> np.ndarray:
    """``(N, C, L) -> (N, C, 1, L)`` (1-D runs as 2-D of height 1); 2-D arrays as they are."""
    return a[:, :, None, :] if a.ndim == 3 else a


def _channel_pairs(c_out: int, groups: int) -> int:
    """How many pairs of output channels the direct kernels take (within each group; a group
    with an odd count ends with a channel alone)."""
    return groups * ((c_out // groups + 1) // 2)


def _dilation_2d(dilation: tuple[int, ...]) -> tuple[int, int]:
    return (1, dilation[0]) if len(dilation) == 1 else (dilation[0], dilation[1])


EPILOGUES = ("none", "relu", "relu_pool2")     # what the forward kernels apply to Z (_finish)


def _correlate_2d(xp: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                  dilation: tuple[int, int], epilogue: str = "none",
                  index: np.ndarray | None = None) -> np.ndarray:
    """Valid stride-1 correlation of ``Xp (N, C, Hp, Wp)`` with ``K (C_out, C/G, k_h, k_w)``."""
    n, c, hp, wp = xp.shape
    c_out, c_group, kh, kw = w.shape
    oh, ow = hp - dilation[0] * (kh - 1), wp - dilation[1] * (kw - 1)
    z = np.empty((n, c_out, *_finished((oh, ow), epilogue)), dtype=xp.dtype)
    bias = np.zeros(c_out, dtype=xp.dtype) if b is None else b.astype(xp.dtype, copy=False)
    xf = np.ascontiguousarray(xp).reshape(n, c, hp * wp)
    _run(_correlate_flat, n * _channel_pairs(c_out, c // c_group), 2 * c_group * kh * kw * oh * wp,
         xf, np.ascontiguousarray(w, dtype=xp.dtype), bias, z, _index_or_empty(index, z), wp,
         *dilation, EPILOGUES.index(epilogue))
    return z


def _index_or_empty(index: np.ndarray | None, z: np.ndarray) -> np.ndarray:
    """The kernels' ``index`` argument: the caller's array, or an empty plane per output plane
    when no positions are wanted."""
    return np.empty((*z.shape[:2], 0, 0), dtype=np.int32) if index is None else index


def _finished(size: tuple[int, int], epilogue: str) -> tuple[int, int]:
    """The size of a plane of ``Z`` after the ``epilogue``: halved (rounded down) by the 2×2
    pooling."""
    return (size[0] // 2, size[1] // 2) if epilogue == "relu_pool2" else size


def correlate(xp: np.ndarray, w: np.ndarray, b: np.ndarray | None,
              dilation: tuple[int, ...], epilogue: str = "none",
              index: np.ndarray | None = None) -> np.ndarray:
    """Forward, stride 1: ``Xp (N, C, *Sp)``, ``K (C_out, C/G, *k)``, ``B (C_out,)`` or None ->
    ``Z (N, C_out, *O)``, 1-D or 2-D; with an ``epilogue`` (2-D only for ``"relu_pool2"``),
    ``ReLU(Z)`` or its 2×2 max pooling instead, and then, given an int32 ``index`` shaped as
    the pooled output, the position of each maximum in its plane of ``Z``."""
    z = _correlate_2d(_as_2d(xp), _as_2d(w), b, _dilation_2d(dilation), epilogue, index)
    return z[:, :, 0] if xp.ndim == 3 else z


def _swap_channels(w: np.ndarray, groups: int) -> np.ndarray:
    """``rot180(K)`` with input and output channels swapped within each group:
    ``(C_out, C/G, k_h, k_w) -> (C, C_out/G, k_h, k_w)``."""
    c_out, c_group = w.shape[:2]
    per = w.reshape(groups, c_out // groups, c_group, *w.shape[2:])     # (G, C_out/G, C/G, ..)
    swapped = per.swapaxes(1, 2)[..., ::-1, ::-1]                      # (G, C/G, C_out/G, ..)
    return swapped.reshape(groups * c_group, c_out // groups, *w.shape[2:])


def images_summed(sums: np.ndarray) -> np.ndarray:
    """dB from the kernels' per-image sums ``(N, C_out)``: the images added in order, in
    float64, rounded once to the working precision (the same for any number of threads)."""
    return sums.sum(axis=0, dtype=np.float64).astype(sums.dtype)


def gradients(dz: np.ndarray, xp: np.ndarray, w: np.ndarray, dilation: tuple[int, ...],
              groups: int, need_dx: bool, need_dw: bool, need_db: bool = False
              ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(dXp, dK, dB)`` of :func:`correlate` (each None unless asked for), shaped as ``Xp``,
    ``K`` and ``(C_out,)``. dB comes from the pass that lays dZ out for dK (None when dK is
    not asked for: the caller sums dZ itself). For dK alone, ``dz`` may be a
    :class:`PooledGradient`."""
    d4, x4, w4 = (dz if isinstance(dz, PooledGradient) else _as_2d(dz)), _as_2d(xp), _as_2d(w)
    dh, dw = _dilation_2d(dilation)
    n, c_out, oh, ow = d4.shape
    kh, kw = w4.shape[2:]
    dxp = dk = db = None
    if need_dx:
        # dXp = (dZ zero-padded by d·(k-1) on every side) ⋆ rot180(K), channels swapped
        dzp, _ = pad_forward(d4, ((dh * (kh - 1),) * 2, (dw * (kw - 1),) * 2))
        dxp = _correlate_2d(dzp, _swap_channels(w4, groups), None, (dh, dw)).reshape(xp.shape)
    if need_dw:
        hp, wp = x4.shape[2:]
        span = (oh - 1) * wp + ow
        dzw = np.empty((n, c_out, oh * wp), dtype=dz.dtype)   # rows of Wp (_widen zeroes the extra)
        sums = np.empty((n, c_out), dtype=dz.dtype)
        # (values touched: dZ read, dZw written, the plane summed; a pooled dZ is first built
        # in a zeroed scratch plane. LeNet-5's first layer, 0.6 million values of dZ, pooled:
        # on both threads, training steps 2.985 -> 2.949 and 2.771 -> 2.706 ms, same process)
        touched = (4 if isinstance(dz, PooledGradient) else 3) * n * c_out * oh * ow
        parallel.run_ranges(_widen, n, *_dz_arguments(dz), dzw, sums, oh, ow, size=touched)
        if need_db:
            db = images_summed(sums)
        xf = np.ascontiguousarray(x4).reshape(n, x4.shape[1], hp * wp)
        c_group = w4.shape[1]
        items = _channel_pairs(c_out, x4.shape[1] // c_group) * c_group
        work = 2 * n * kh * kw * span              # multiply-adds an item, every image
        chunks = _image_chunks(n, items, work)
        parts = np.empty((chunks, *w4.shape))
        _run(_weight_grad_flat, items * chunks, work // chunks, dzw, xf, parts, wp, span, dh,
             dw)
        dk = sum_in_order(parts).astype(dz.dtype).reshape(w.shape)
    return dxp, dk, db


# --- Depthwise layers with zero padding: the padding, dX, dK and dB in the kernels -----------
#
# A depthwise layer (``groups = C_in = C_out``) does 9 multiply-adds per value for 3×3, so it
# runs at the speed of memory, and every separate pass over the batch (padding the input,
# padding dZ, cropping dXp, widening dZ for dK, summing dB) costs as much as the arithmetic.
# These kernels copy one plane at a time into a zero-bordered scratch plane that stays in the
# L1 cache, and compute from there: the forward reads X once and writes Z once; the backward
# reads X and dZ once and writes dX once, with dK and dB summed on the way.


@jit
def _depthwise_forward(x, w, b, z, ph, pw, dh, dw, start, stop):
    """``Z[n, c] = B[c] + Σ_{a,e} K[c, 0, a, e] · Xp[n, c, i + a·d_h, j + e·d_w]`` for the planes
    ``(n, c)`` numbered ``start .. stop-1``; ``Xp`` is ``X`` with ``(p_h, p_w)`` zero rows and
    columns before (and as many after as ``Z``'s size needs), built one plane at a time."""
    wide_vectors()
    channels, h, wd = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    oh, ow = z.shape[2], z.shape[3]
    hp, wp = oh + dh * (kh - 1), ow + dw * (kw - 1)
    span = (oh - 1) * wp + ow
    xs = np.zeros(hp * wp, dtype=x.dtype)         # the padded plane; its border stays zero
    wide = np.empty(span, dtype=z.dtype)
    flat = z.ravel()                               # (z: C-contiguous, made by the caller)
    for t in range(start, stop):
        n, c = t // channels, t % channels
        for i in range(h):                        # (element by element: a slice per row
            row = np.uint64((i + ph) * wp + pw)   # costs more than its copy, measured)
            for j in range(np.uint64(wd)):
                xs[row + j] = x[n, c, i, j]
        if kh == 3 and kw == 3:
            _correlate_3x3(xs, wp, 0, 0, w, c, b[c], flat, t * oh * ow, oh, ow, dh, dw)
            continue
        wide[:] = b[c]
        _taps(xs, w[c, 0], wide, wp, dh, dw, span)
        for i in range(oh):
            row = np.uint64(i * wp)
            for j in range(np.uint64(ow)):
                z[n, c, i, j] = wide[row + j]


@jit
def _taps(src, k, wide, wp, dh, dw, span):
    """``wide[p] += Σ_{a,e} k[a, e] · src[p + a·d_h·Wp + e·d_w]`` for ``p < span``, five or
    three taps of a kernel row per pass (3×3 kernels: :func:`_correlate_3x3`)."""
    wide_vectors()
    kh, kw = k.shape
    width, step = np.uint64(span), np.uint64(dw)
    five = kw - kw % 5                             # taps in passes of five, then three
    three = five + (kw - five) // 3 * 3
    for a in range(kh):
        for e in range(0, five, 5):                # five taps per pass (5×5, 11×11 rows)
            k0, k1, k2, k3, k4 = k[a, e], k[a, e + 1], k[a, e + 2], k[a, e + 3], k[a, e + 4]
            q0 = np.uint64(a * dh * wp + e * dw)
            q1 = q0 + step
            q2, q3, q4 = q1 + step, q1 + step + step, q1 + step + step + step
            for p in range(width):
                wide[p] += (k0 * src[q0 + p] + k1 * src[q1 + p] + k2 * src[q2 + p]
                            + k3 * src[q3 + p] + k4 * src[q4 + p])
        for e in range(five, three, 3):
            k0, k1, k2 = k[a, e], k[a, e + 1], k[a, e + 2]
            q0 = np.uint64(a * dh * wp + e * dw)
            q1 = q0 + step
            q2 = q1 + step
            for p in range(width):
                wide[p] += k0 * src[q0 + p] + k1 * src[q1 + p] + k2 * src[q2 + p]
        for e in range(three, kw):
            k0 = k[a, e]
            q0 = np.uint64(a * dh * wp + e * dw)
            for p in range(width):
                wide[p] += k0 * src[q0 + p]


@jit
def _taps_pair(src, k, m, wide_k, wide_m, wp, dh, dw, span):
    """:func:`_taps` for two output channels at once (kernel ``k`` into ``wide_k``, ``m`` into
    ``wide_m``): each load of ``src`` serves both, so a pass does two multiply-adds per load
    instead of one (LeNet's second layer: 1.2 -> 0.7 ms on one core). Five taps or three
    per pass."""
    wide_vectors()
    kh, kw = k.shape
    width, step = np.uint64(span), np.uint64(dw)
    five = kw - kw % 5                             # taps in passes of five, then three
    three = five + (kw - five) // 3 * 3
    for a in range(kh):
        for e in range(0, five, 5):
            k0, k1, k2, k3, k4 = k[a, e], k[a, e + 1], k[a, e + 2], k[a, e + 3], k[a, e + 4]
            m0, m1, m2, m3, m4 = m[a, e], m[a, e + 1], m[a, e + 2], m[a, e + 3], m[a, e + 4]
            q0 = np.uint64(a * dh * wp + e * dw)
            q1 = q0 + step
            q2, q3, q4 = q1 + step, q1 + step + step, q1 + step + step + step
            for p in range(width):
                x0, x1, x2, x3, x4 = src[q0 + p], src[q1 + p], src[q2 + p], src[q3 + p], src[q4 + p]
                wide_k[p] += k0 * x0 + k1 * x1 + k2 * x2 + k3 * x3 + k4 * x4
                wide_m[p] += m0 * x0 + m1 * x1 + m2 * x2 + m3 * x3 + m4 * x4
        for e in range(five, three, 3):
            k0, k1, k2 = k[a, e], k[a, e + 1], k[a, e + 2]
            m0, m1, m2 = m[a, e], m[a, e + 1], m[a, e + 2]
            q0 = np.uint64(a * dh * wp + e * dw)
            q1 = q0 + step
            q2 = q1 + step
            for p in range(width):
                x0, x1, x2 = src[q0 + p], src[q1 + p], src[q2 + p]
                wide_k[p] += k0 * x0 + k1 * x1 + k2 * x2
                wide_m[p] += m0 * x0 + m1 * x1 + m2 * x2
        for e in range(three, kw):
            k0, m0 = k[a, e], m[a, e]
            q0 = np.uint64(a * dh * wp + e * dw)
            for p in range(width):
                x0 = src[q0 + p]
                wide_k[p] += k0 * x0
                wide_m[p] += m0 * x0


@jit
def _depthwise_backward(x, dz, w, dx, dk, db, ph, pw, dh, dw, start, stop):
    """For the channels ``c`` numbered ``start .. stop-1``, over every image ``n``:

    - ``dK[c, 0, a, e] = Σ_n Σ_{i,j} dZ[n, c, i, j] · Xp[n, c, i + a·d_h, j + e·d_w]``
    - ``dB[c] = Σ_n Σ_{i,j} dZ[n, c, i, j]``
    - ``dX[n, c] = crop((dZ[n, c] zero-padded by d·(k-1)) ⋆ rot180(K[c, 0]))``

    One scratch copy of each plane serves both gradients: dZ padded by ``r = d·(k-1)`` on
    every side, and ``Xp``, both on rows of the padded dZ's width ``W_q = O_w + 2·r_w``. Read
    from its first real value, the padded dZ is dZ on wide rows with zeros in the extra
    columns (what dK's tap sums need); read whole, it is the input of dX's correlation. For
    3×3 kernels the scratch planes' rows are dealt out to ``2·d_h`` parts (:func:`_row_starts`,
    :func:`_tap_sums_3x3`). ``dx``, ``dk`` or ``db`` of size 0 are not computed. Sums over an
    image are taken in the working precision, over images in float64."""
    wide_vectors()
    n_images, h, wd = x.shape[0], x.shape[2], x.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    oh, ow = dz.shape[2], dz.shape[3]
    rh, rw = dh * (kh - 1), dw * (kw - 1)
    hp, wp = oh + rh, ow + rw                      # Xp's size
    wq = wp + rw                                   # the rows of both scratch planes
    span = (oh - 1) * wq + ow                      # wide positions of Z over Xp
    span_dx = (hp - 1) * wq + wp                   # wide positions of dXp over padded dZ
    want_dx, want_dk, want_db = dx.size > 0, dk.size > 0, db.size > 0
    parts = 2 * dh if kh == 3 and kw == 3 else 1
    starts_x, starts_z = _row_starts(hp, parts, wq), _row_starts(oh + 2 * rh, parts, wq)
    xs = np.zeros((hp + parts) * wq, dtype=x.dtype)   # (each part up to a row longer)
    dzq = np.zeros((oh + 2 * rh + parts) * wq, dtype=dz.dtype)
    g = dzq[rh * wq + rw:rh * wq + rw + span]      # one part: dZ on wide rows, zeros between
    wide = np.empty(span_dx, dtype=dz.dtype)
    rot = np.empty((1, 1, kh, kw), dtype=w.dtype)  # rot180(K[c, 0])
    total = np.zeros((kh, kw))
    zero = dz.dtype.type(0)
    channels = x.shape[1]
    flat = dx.ravel()                              # (dx: C-contiguous, made by the caller)
    flat_dz = dz.ravel()                           # (dz: C-contiguous too)
    for c in range(start, stop):
        for a in range(kh):
            for e in range(kw):
                rot[0, 0, a, e] = w[c, 0, kh - 1 - a, kw - 1 - e]
        total[:, :] = 0.0
        bias = 0.0
        for n in range(n_images):
            for i in range(oh):                   # (element by element: a slice per row
                row = np.uint64(starts_z[i + rh] + rw)  # costs more than its copy, measured)
                for j in range(np.uint64(ow)):
                    dzq[row + j] = dz[n, c, i, j]
            if want_dk:
                for i in range(h):
                    row = np.uint64(starts_x[i + ph] + pw)
                    for j in range(np.uint64(wd)):
                        xs[row + j] = x[n, c, i, j]
            if want_dk and parts > 1:                  # (dB's share on the way)
                bias += _tap_sums_3x3(dzq, xs, total, starts_z, starts_x, wq, rh, rw, oh, ow,
                                      dh, dw)
            elif want_db:
                bias += plane_sum(flat_dz, (n * channels + c) * oh * ow, oh * ow)
            if want_dk and parts == 1:
                _tap_sums(g, xs, total, wq, dh, dw, span)
            if want_dx and parts > 1:
                _correlate_3x3_rows(dzq, starts_z, ph, pw, rot, 0, zero, flat,
                               (n * channels + c) * h * wd, h, wd, dh, dw)
            elif want_dx:
                wide[:] = 0
                _taps(dzq, rot[0, 0], wide, wq, dh, dw, span_dx)
                for i in range(h):
                    row = np.uint64((i + ph) * wq + pw)
                    for j in range(np.uint64(wd)):
                        dx[n, c, i, j] = wide[row + j]
        if want_dk:
            for a in range(kh):
                for e in range(kw):
                    dk[c, 0, a, e] = total[a, e]
        if want_db:
            db[c] = bias


def _zero_pads_2d(pads) -> tuple[int, int]:
    """``(p_h, p_w)``: the padding before the first row and column (1-D: no rows)."""
    return (0, pads[0][0]) if len(pads) == 1 else (pads[0][0], pads[1][0])


def depthwise_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pads,
                      out: tuple[int, ...], dilation: tuple[int, ...]) -> np.ndarray:
    """Depthwise forward, stride 1, zero padding ``pads`` ((before, after) per axis):
    ``X (N, C, *S)``, ``K (C, 1, *k)``, ``B (C,)`` or None -> ``Z (N, C, *O)``, 1-D or 2-D."""
    x4, w4 = _as_2d(np.ascontiguousarray(x)), _as_2d(np.ascontiguousarray(w, dtype=x.dtype))
    n, c = x4.shape[:2]
    z = np.empty((n, c, *((1,) if x.ndim == 3 else ()), *out), dtype=x.dtype)
    bias = np.zeros(c, dtype=x.dtype) if b is None else b.astype(x.dtype, copy=False)
    _run(_depthwise_forward, n * c, w4[0, 0].size * z[0, 0].size,
         x4, w4, bias, z, *_zero_pads_2d(pads), *_dilation_2d(dilation))
    return z[:, :, 0] if x.ndim == 3 else z


def depthwise_backward(dz: np.ndarray, x: np.ndarray, w: np.ndarray, pads,
                       dilation: tuple[int, ...], need_dx: bool, need_dw: bool, need_db: bool):
    """``(dX, dK, dB)`` of :func:`depthwise_forward` (each None unless asked for)."""
    d4, x4, w4 = _as_2d(np.ascontiguousarray(dz)), _as_2d(x), _as_2d(w)
    n, c = x4.shape[:2]
    empty = np.empty(0, dtype=dz.dtype)
    dx = np.empty(x4.shape, dtype=dz.dtype) if need_dx else empty.reshape(0, 0, 0, 0)  # all written
    dk = np.empty(w4.shape, dtype=dz.dtype) if need_dw else empty.reshape(0, 0, 0, 0)
    db = np.empty(c, dtype=dz.dtype) if need_db else empty
    parallel.run_ranges(_depthwise_backward, c, x4, d4, w4, dx, dk, db, *_zero_pads_2d(pads),
                        *_dilation_2d(dilation))
    return (dx.reshape(x.shape) if need_dx else None, dk.reshape(w.shape) if need_dw else None,
            db if need_db else None)


# --- im2col + GEMM in the (N, C, H, W) layout: one GEMM for the batch ------------------------
#
# The NumPy path's im2col works batch-last, which costs a transpose of X, of Z, of dZ and of dX
# around every layer. Here the window matrix (of a block of images) is built channels first, ``cols
# (C·k_h·k_w, N, O_h·O_w)`` (row ``(c, a, e)``, then image, then output position), from a
# zero-bordered scratch plane per image and channel, so that the forward is one GEMM, ``Zc = K @
# cols`` (``(C_out, N, O)``, which one pass turns into ``(N, C_out, O)`` with the bias), and so are
# both gradients: ``dKᵀ = cols @ dZcᵀ`` sums over the images and positions in one product (in this
# orientation OpenBLAS runs it 1.2-1.4× faster than ``dZc @ colsᵀ``: backward of LeNet-5's second
# layer 1.82 -> 1.61 ms, 3×3 32->32 at 32×32 15.97 -> 13.66 ms, same process, Intel Xeon with
# AVX-512), and ``dcols = Kᵀ @ dZc`` goes back through the col2im. The window matrix is never built
# for the whole batch at once but for blocks of images that fit a core's L2 cache, each block's
# GEMMs run while its window matrix is there (LeNet-5's second layer: forward 1.58 -> 1.03 ms,
# backward 2.62 -> 2.13 ms; 3×3 stride 2 32->64 at 32×32, whose whole window matrix, 2.25 times
# ``X``, used to be kept: forward 9.7 -> 5.6 ms, backward 14.0 -> 11.7). It is ``k_h·k_w`` times the
# size of ``X`` and building it costs about half a GEMM, so the blocks' matrices are kept for dK
# only while the batch's come to at most ``KEEP_WINDOWS_BYTES`` (LeNet-5's second layer at batch 64,
# 3.8 MB: kept); larger ones are built again in the backward pass. Indices are unsigned in the copy
# loops: numba checks a signed index for wrap-around, which keeps LLVM from vectorising (measured
# 2.5× slower).

# Output rows shorter than this are copied into the window matrix by one gather a tap (see
# :func:`_windows`); one thread, same process, Intel Xeon: LeNet-5's second layer (rows of 10)
# 0.107-0.113 -> 0.074-0.077 ms a block of 17 images, 3×3 at 7×7 0.245 -> 0.172, stride 2 at
# 32×32 (rows of 16, strided) 0.105-0.122 -> 0.092; rows of 16 at stride 1 0.14 -> 0.18 and of
# 28 0.20 -> 0.32 (slower), of 14 0.29-0.31 -> 0.28-0.29.
GATHER_MAX_WIDTH = 16


@jit
def _windows(x, cols, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, start, stop):
    """``cols[(c·k_h + a)·k_w + e, n, i·O_w + j] = Xp[n, c, i·s_h + a·d_h, j·s_w + e·d_w]`` for
    the images ``start .. stop-1``; ``Xp`` is ``X`` placed at ``(p_h, p_w)`` in zeros.

    Rows of fewer than ``GATHER_MAX_WIDTH`` outputs (or of that many, strided) are copied as
    one gather over the whole window, ``dst[p] = Xp[tap + where[p]]`` (``where[i·O_w + j] =
    i·s_h·Wp + j·s_w``), not row by row: a loop of 10 iterations vectorises badly."""
    channels, h, wd = x.shape[1], x.shape[2], x.shape[3]
    hp = max((oh - 1) * sh + (kh - 1) * dh + 1, ph + h)
    wp = max((ow - 1) * sw + (kw - 1) * dw + 1, pw + wd)
    step = np.uint64(sw)
    size = np.uint64(oh * ow)
    gather = ow < GATHER_MAX_WIDTH or (sw > 1 and ow == GATHER_MAX_WIDTH)
    where = np.empty(oh * ow if gather else 0, dtype=np.uint32)
    for i in range(oh if gather else 0):
        for j in range(ow):
            where[i * ow + j] = i * sh * wp + j * sw
    xs = np.zeros(hp * wp, dtype=x.dtype)         # the padded plane; its border stays zero
    for n in range(start, stop):
        for c in range(channels):
            for i in range(h):
                row = np.uint64((i + ph) * wp + pw)
                for j in range(np.uint64(wd)):
                    xs[row + j] = x[n, c, i, j]
            for a in range(kh):
                for e in range(kw):
                    dst = cols[(c * kh + a) * kw + e, n]
                    if gather:
                        tap = np.uint64(a * dh * wp + e * dw)
                        for p in range(size):
                            dst[p] = xs[tap + np.uint64(where[p])]
                        continue
                    for i in range(oh):
                        src = np.uint64((i * sh + a * dh) * wp + e * dw)
                        out = np.uint64(i * ow)
                        for j in range(np.uint64(ow)):
                            dst[out + j] = xs[src + j * step]


@jit
def _col2im(dcols, dx, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, start, stop):
    """``dXp[n, c, i·s_h + a·d_h, j·s_w + e·d_w] += dcols[(c·k_h + a)·k_w + e, n, i·O_w + j]``,
    then ``dX = dXp`` cut at ``(p_h, p_w)``, for the images ``start .. stop-1``."""
    channels, h, wd = dx.shape[1], dx.shape[2], dx.shape[3]
    hp = max((oh - 1) * sh + (kh - 1) * dh + 1, ph + h)
    wp = max((ow - 1) * sw + (kw - 1) * dw + 1, pw + wd)
    step = np.uint64(sw)
    acc = np.empty(hp * wp, dtype=dx.dtype)
    for n in range(start, stop):
        for c in range(channels):
            acc[:] = 0
            for a in range(kh):
                for e in range(kw):
                    src = dcols[(c * kh + a) * kw + e, n]
                    for i in range(oh):
                        dst = np.uint64((i * sh + a * dh) * wp + e * dw)
                        out = np.uint64(i * ow)
                        for j in range(np.uint64(ow)):
                            acc[dst + j * step] += src[out + j]
            for i in range(h):
                row = np.uint64((i + ph) * wp + pw)
                for j in range(np.uint64(wd)):
                    dx[n, c, i, j] = acc[row + j]


@jit
def _images_first(zc, b, z, index, ow, epilogue, start, stop):
    """``Z[n, o] = Zc[o, n] + B[o]`` (rows of ``O_w``) for the images ``start .. stop-1``, with
    the ``epilogue`` of :func:`_finish`: ``z (N, C_out, h, w)``, ``index`` as there."""
    best_row = np.empty(2 * z.shape[2] * (ow // 2) + 1, dtype=z.dtype)   # (windows at
    at_row = np.empty(2 * z.shape[2] * (ow // 2) + 1, dtype=np.int32)   # every row)
    for n in range(start, stop):
        for o in range(z.shape[1]):
            _finish(zc[o, n], ow, ow, b[o], z[n, o], index[n, o], epilogue, best_row, at_row)


@jit
def _channels_first(dz, dy, y, index, dzc, sums, start, stop):
    """``dZc[o, n, p] = dZ[n, o, p]`` and ``sums[n, o] = Σ_p dZ[n, o, p]`` (dB's share of image
    ``n``, summed in the working precision) for the images ``start .. stop-1``; dZ as in
    :func:`_widen`."""
    c_out, size = dzc.shape[0], dzc.shape[2]
    scratch = np.empty(size if index.shape[0] else 0, dtype=dzc.dtype)
    for n in range(start, stop):
        for o in range(c_out):
            src, dst = _dz_plane(dz, dy, y, index, n, o, scratch), dzc[o, n]
            total = dzc.dtype.type(0)
            for p in range(size):
                dst[p] = src[p]
                total += src[p]
            sums[n, o] = total


class PooledGradient(NamedTuple):
    """dZ of a layer whose forward kernel applied the ReLU and the 2×2 max pooling (epilogue
    ``"relu_pool2"``), left implicit: ``dY·[Y > 0]`` at the positions ``index`` of the maxima
    in each plane of ``Z`` (``sizes``), zero elsewhere, the values the ReLU's and the pooling
    layer's backward passes give. The backward kernels build it a plane at a time in the cache
    and lay it out as they multiply it (:func:`_dz_plane`), so the full-size dZ is never
    written and read back."""
    dy: np.ndarray                 # (N, C_out, O_h // 2, O_w // 2), C-contiguous, as y
    y: np.ndarray                  # the pooled output
    index: np.ndarray              # int32 positions ``r·O_w + q`` in the planes of Z
    sizes: tuple[int, int]         # (O_h, O_w)

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.dy.shape[:2], *self.sizes)

    @property
    def dtype(self) -> np.dtype:
        return self.dy.dtype


def _dz_arguments(dz) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """dZ, an array ``(N, C_out, *O)`` or a :class:`PooledGradient`, as the kernels that lay
    it out take it (:func:`_dz_plane`): ``(dz (N, C_out, O_h·O_w), dy, y, index)``, empty
    arrays for the form it is not."""
    if isinstance(dz, PooledGradient):
        return np.empty((0, 0, 0), dz.dtype), dz.dy, dz.y, dz.index
    none = np.empty((0, 0, 0, 0), dz.dtype)
    plain = np.ascontiguousarray(dz).reshape(*dz.shape[:2], -1)
    return plain, none, none, np.empty((0, 0, 0, 0), np.int32)


# A block of several images whose rows are not strided lays its window matrix out images last:
# ``cols[r, p·B + n]`` for position ``p`` of image ``n`` of the block's ``B``. The block is first
# copied channel by channel into a padded scratch plane whose rows hold the ``B`` images' pixels
# side by side (``Xp[n, c, y, x]`` at ``[y, x·B + n]``), so that a tap's row of windows, ``O_w``
# outputs of ``B`` images, is one contiguous run of ``O_w·B`` values to copy (and, for dX, to
# add back), instead of ``B`` runs of ``O_w`` (LeNet-5's second layer: rows of 10). The GEMMs
# are the same; only the order of their columns changes. One thread, same process, Intel Xeon,
# LeNet-5's second layer, a block of 17 images: windows 0.079 -> 0.034 ms, ReLU + pooling from
# the GEMM's output 0.039 -> 0.016, col2im 0.111 -> 0.037, dZ laid out for the GEMMs 0.004 ->
# 0.014 (``/tmp/p/lastproto.py``).


def _images_last(geometry, images: int) -> bool:
    """Whether a block of ``images`` takes the images-last window matrix: rows of windows not
    strided, shorter than ``GATHER_MAX_WIDTH`` outputs, and more than one image a block."""
    return geometry[5] == 1 and geometry[-1] < GATHER_MAX_WIDTH and images > 1


@jit
def _windows_last(x, cols, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow):
    """``cols[(c·k_h + a)·k_w + e, (i·O_w + j)·B + n] = Xp[n, c, i·s_h + a·d_h, j + e·d_w]``
    for the ``B`` images of ``x`` (stride 1 along rows: ``sw`` is 1); ``Xp`` is ``X``
    placed at ``(p_h, p_w)`` in zeros."""
    images, channels, h, wd = x.shape
    hp = max((oh - 1) * sh + (kh - 1) * dh + 1, ph + h)
    wp = max(ow + (kw - 1) * dw, pw + wd)
    count = np.uint64(images)
    run = np.uint64(ow) * count                   # a row of windows: O_w outputs of B images
    xs = np.zeros((hp, wp * images), dtype=x.dtype)      # the padded planes, images last
    for c in range(channels):
        for n in range(images):
            for i in range(h):
                row = xs[i + ph]
                for j in range(np.uint64(wd)):
                    row[(j + np.uint64(pw)) * count + np.uint64(n)] = x[n, c, i, j]
        for a in range(kh):
            for e in range(kw):
                dst = cols[(c * kh + a) * kw + e]
                shift = np.uint64(e * dw) * count
                for i in range(oh):
                    src = xs[i * sh + a * dh]
                    out = np.uint64(i) * run
                    for q in range(run):
                        dst[out + q] = src[shift + q]


@jit
def _col2im_last(dcols, dx, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow):
    """``dXp[n, c, i·s_h + a·d_h, j + e·d_w] += dcols[(c·k_h + a)·k_w + e, (i·O_w + j)·B + n]``
    (the layout of :func:`_windows_last`), then ``dX = dXp`` cut at ``(p_h, p_w)``, for the
    ``B`` images of ``dx``."""
    images, channels, h, wd = dx.shape
    hp = max((oh - 1) * sh + (kh - 1) * dh + 1, ph + h)
    wp = max(ow + (kw - 1) * dw, pw + wd)
    count = np.uint64(images)
    run = np.uint64(ow) * count
    acc = np.empty((hp, wp * images), dtype=dx.dtype)
    for c in range(channels):
        acc[:, :] = 0
        for a in range(kh):
            for e in range(kw):
                src = dcols[(c * kh + a) * kw + e]
                shift = np.uint64(e * dw) * count
                for i in range(oh):
                    dst = acc[i * sh + a * dh]
                    out = np.uint64(i) * run
                    for q in range(run):
                        dst[shift + q] += src[out + q]
        for n in range(images):
            for i in range(h):
                row = acc[i + ph]
                for j in range(np.uint64(wd)):
                    dx[n, c, i, j] = row[(j + np.uint64(pw)) * count + np.uint64(n)]


@jit
def _images_first_last(zc, b, z, index, ow, epilogue):
    """``Z[n, o].flat[p] = Zc[o, p·B + n] + B[o]`` from the images-last GEMM output ``zc
    (C_out, O_h·O_w·B)``, with the ``epilogue`` of :func:`_finish` (the same values and
    positions) computed for the ``B`` images at once, then copied out image by image."""
    images, c_out, h, w = z.shape
    count = np.uint64(images)
    zero = z.dtype.type(0)
    floor = zero if epilogue else z.dtype.type(-np.inf)      # -inf: no ReLU (v kept)
    best = np.empty(h * w * images, dtype=z.dtype)
    at = np.empty(h * w * images, dtype=np.int32)
    right, below = np.int32(1), np.int32(ow)
    for o in range(c_out):
        src, bias = zc[o], b[o]
        for i in range(h):
            for j in range(w):
                q = np.uint64(i * w + j) * count
                if epilogue < 2:
                    for n in range(count):
                        v = src[q + n] + bias
                        best[q + n] = v if v > floor or v != v else floor
                    continue
                corner = np.int32(2 * i * ow + 2 * j)           # the window's first position
                top = np.uint64(2 * i * ow + 2 * j) * count
                bottom = top + np.uint64(ow) * count
                for n in range(count):
                    best[q + n], at[q + n] = _window_max(
                        src[top + n] + bias, src[top + count + n] + bias, src[bottom + n] + bias,
                        src[bottom + count + n] + bias, zero, corner, right, below)
        for n in range(images):
            for i in range(h):
                for j in range(w):
                    q = np.uint64(i * w + j) * count + np.uint64(n)
                    z[n, o, i, j] = best[q]
                    if index.shape[2] > 0:                 # (positions asked for: training)
                        index[n, o, i, j] = at[q]


@jit
def _channels_first_last(dz, dy, y, index, dzc, sums):
    """``dZc[o, p·B + n] = dZ[n, o, p]`` (the layout of :func:`_windows_last`) and ``sums[n, o]
    = Σ_p dZ[n, o, p]`` (as :func:`_channels_first`) for the ``B`` images of ``dzc``; dZ as
    in :func:`_widen`."""
    c_out = dzc.shape[0]
    images = sums.shape[0]
    size = dzc.shape[1] // images
    count = np.uint64(images)
    scratch = np.empty(size if index.shape[0] else 0, dtype=dzc.dtype)
    for o in range(c_out):
        dst = dzc[o]
        for n in range(images):
            src = _dz_plane(dz, dy, y, index, n, o, scratch)
            sums[n, o] = plane_sum(src, 0, size)
            for p in range(np.uint64(size)):
                dst[p * count + np.uint64(n)] = src[p]


def _geometry(x_shape, w_shape, pads, stride, dilation) -> tuple[int, ...]:
    """``(k_h, k_w, p_h, p_w, s_h, s_w, d_h, d_w, O_h, O_w)`` of a 1-D or 2-D layer (1-D as
    height 1), the pads as zeros before the first row and column."""
    if len(w_shape) == 3:
        pads, stride, dilation = ((0, 0),) + tuple(pads), (1,) + stride, (1,) + dilation
    kh, kw = w_shape[-2:] if len(w_shape) == 4 else (1, w_shape[-1])
    sizes = x_shape[2:] if len(x_shape) == 4 else (1, x_shape[-1])
    out = tuple((n + pb + pe - d * (k - 1) - 1) // s + 1
                for n, (pb, pe), k, s, d in zip(sizes, pads, (kh, kw), stride, dilation))
    return kh, kw, pads[0][0], pads[1][0], *stride, *dilation, *out


def _batch_cols(x4: np.ndarray, rows: int, geometry) -> np.ndarray:
    """The window matrix ``(C·k_h·k_w, N, O_h·O_w)`` of ``X (N, C, H, W)``."""
    cols = np.empty((rows, x4.shape[0], geometry[-2] * geometry[-1]), dtype=x4.dtype)
    _windows(x4, cols, *geometry, 0, x4.shape[0])
    return cols


# A block of images' window matrix (or Winograd's V and M), about a core's L2 cache. LeNet-5's
# second layer, forward + backward, same process, 2 threads: on the AMD EPYC (512 KiB of L2)
# 64 KiB blocks 5.7 ms, 256 KiB 3.1, 512 KiB 2.5-2.8, 1-2 MiB as fast, the batch in two
# blocks of 2 MiB 3.4-3.5; on the Intel Xeon (2 MiB of L2) 256 KiB 2.37-2.82, 512 KiB
# 2.30-2.58, 1 MiB 2.09-2.38, 2 MiB 2.09-2.58; and 1 MiB against 512 KiB there: 3×3 stride 2
# 32->64 at 32×32 9.95 against 12.01 ms, 32->64 at 14×14 13.82 against 14.45, 64->64 at
# 14×14 23.99 against 26.10 (the CIFAR-like layer's image alone is larger: no change).
BLOCK_BYTES = 1 << 20

# The most window-matrix memory a layer keeps from its forward pass for dK, instead of building
# it again (LeNet-5's second layer at batch 64: 3.8 MB; forward + backward 1.78 -> 1.63 and
# 2.91 -> 2.41 ms, same process, Intel Xeon; a whole-batch matrix above this is built again:
# 3×3 32->32 at 32×32 would keep 38 MB).
KEEP_WINDOWS_BYTES = 1 << 22


def image_blocks(n: int, per_image: int) -> list[int]:
    """Bounds of the blocks of ``n`` images whose scratch, ``per_image`` bytes an image, stays
    in a core's L2 cache (``BLOCK_BYTES``; at least one image a block)."""
    return parallel.split(n, max(1, BLOCK_BYTES // per_image))


def _image_blocks(n: int, rows: int, size: int, itemsize: int) -> list[int]:
    """:func:`image_blocks` for a window matrix ``(rows, images, size)``."""
    return image_blocks(n, rows * size * itemsize)


def sum_in_order(parts: np.ndarray) -> np.ndarray:
    """``parts[0] + parts[1] + ...``, added in block order: the blocks depend on the shapes
    only, so the sum is the same for any number of threads."""
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total


def over_blocks(fn, bounds: list[int]) -> None:
    """``fn(start, stop)`` for each image block: on cnnlab's threads where BLAS runs one thread
    a GEMM (``parallel.split_gemms``, on under ``cnnlab.threads.steady``), else one block after
    another, each GEMM on BLAS's own threads."""
    if parallel.gemms_split():
        parallel.run_blocks(fn, bounds)
    else:
        for start, stop in zip(bounds[:-1], bounds[1:]):
            fn(start, stop)


def image_gemm_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pads,
                       stride: tuple[int, ...], dilation: tuple[int, ...],
                       epilogue: str = "none", index: np.ndarray | None = None,
                       keep_windows: bool = False
                       ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
    """``Z = K @ cols`` for the batch, one group, zero padding: ``X (N, C, *S)``,
    ``K (C_out, C, *k)`` -> ``(Z (N, C_out, *O), X, windows)``, 1-D or 2-D; ``X``
    (C-contiguous) is what the backward pass needs. With an ``epilogue`` and ``index``, as
    :func:`correlate`.

    The batch goes through in blocks of images whose window matrix stays in the L2 cache
    (built, multiplied and turned into ``Z`` while it is there), never the whole batch's at
    once. With ``keep_windows`` (dK will be needed) and a whole batch's window matrices of at
    most ``KEEP_WINDOWS_BYTES``, ``windows`` is the list of them, block by block, for
    :func:`image_gemm_backward` to use instead of building them again (else None)."""
    geometry = _geometry(x.shape, w.shape, pads, stride, dilation)
    out = geometry[-2:]
    x = np.ascontiguousarray(x)
    n, c_out = x.shape[0], w.shape[0]
    wm = w.reshape(c_out, -1).astype(x.dtype, copy=False)
    size = math.prod(out)
    z = np.empty((n, c_out, *_finished(out, epilogue)), dtype=x.dtype)
    bias = np.zeros(c_out, dtype=x.dtype) if b is None else b.astype(x.dtype, copy=False)
    x4 = _as_2d(x)
    code, index = EPILOGUES.index(epilogue), _index_or_empty(index, z)
    bounds = _image_blocks(n, wm.shape[1], size, x.itemsize)
    keep = keep_windows and n * wm.shape[1] * size * x.itemsize <= KEEP_WINDOWS_BYTES
    windows: list = [None] * (len(bounds) - 1)

    def block(start: int, stop: int) -> None:
        if _images_last(geometry, stop - start):
            cols = np.empty((wm.shape[1], (stop - start) * size), dtype=x.dtype)
            _windows_last(x4[start:stop], cols, *geometry)
            _images_first_last(np.matmul(wm, cols), bias, z[start:stop], index[start:stop],
                               out[1], code)
        else:
            cols = _batch_cols(x4[start:stop], wm.shape[1], geometry)
            zc = np.matmul(wm, cols.reshape(wm.shape[1], -1)).reshape(c_out, stop - start, size)
            _images_first(zc, bias, z[start:stop], index[start:stop], out[1], code, 0,
                          stop - start)
        if keep:
            windows[bounds.index(start)] = cols

    over_blocks(block, bounds)
    return (z[:, :, 0] if x.ndim == 3 else z), x, (windows if keep else None)


def image_gemm_backward(dz: np.ndarray, x: np.ndarray, w: np.ndarray, pads,
                        stride: tuple[int, ...], dilation: tuple[int, ...], need_dx: bool,
                        need_dw: bool, windows: list[np.ndarray] | None = None,
                        need_db: bool = False
                        ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(dX, dK, dB)`` of :func:`image_gemm_forward`: ``dKᵀ = cols @ dZcᵀ``,
    ``dX = col2im(Kᵀ @ dZc)`` and ``dB = Σ dZ`` (each None unless asked for; dB summed as dZ
    is laid out channels first), from the ``X`` and ``windows`` it returned; ``dz`` an array
    or a :class:`PooledGradient`.

    Block by block of images as in the forward pass: a block's window matrix (kept, or built
    again from ``X``) for its share of dK, summed over the blocks afterwards in block order
    (the same sum for any number of threads)."""
    geometry = _geometry(x.shape, w.shape, pads, stride, dilation)
    n, c_out = dz.shape[:2]
    size = math.prod(dz.shape[2:])
    wm = w.reshape(c_out, -1).astype(dz.dtype, copy=False)
    rows = wm.shape[1]
    dz3, dy, y, index = _dz_arguments(dz)
    dx = np.empty(x.shape, dtype=dz.dtype) if need_dx else None
    bounds = _image_blocks(n, rows, size, dz.dtype.itemsize)
    parts = np.empty((len(bounds) - 1, rows, c_out), dtype=dz.dtype) if need_dw else None
    sums = np.empty((n, c_out), dtype=dz.dtype)
    x4, dx4 = _as_2d(x), (_as_2d(dx) if need_dx else None)

    def block(start: int, stop: int) -> None:
        last, count = _images_last(geometry, stop - start), stop - start
        dzc = np.empty((c_out, count * size), dtype=dz.dtype)
        parts_of_dz = dz3[start:stop], dy[start:stop], y[start:stop], index[start:stop]
        if last:
            _channels_first_last(*parts_of_dz, dzc, sums[start:stop])
        else:
            _channels_first(*parts_of_dz, dzc.reshape(c_out, count, size), sums[start:stop],
                            0, count)
        cols = None
        if need_dw:
            if windows is not None:
                cols = windows[bounds.index(start)]
            elif last:
                cols = np.empty((rows, (stop - start) * size), dtype=dz.dtype)
                _windows_last(x4[start:stop], cols, *geometry)
            else:
                cols = _batch_cols(x4[start:stop], rows, geometry)
            np.matmul(cols.reshape(rows, -1), dzc.T, out=parts[bounds.index(start)])
        if need_dx:
            # into a window matrix built here, done with: one block's worth in the cache
            dcols = (cols.reshape(rows, -1) if cols is not None and windows is None
                     else np.empty((rows, (stop - start) * size), dtype=dz.dtype))
            np.matmul(wm.T, dzc, out=dcols)
            if last:
                _col2im_last(dcols, dx4[start:stop], *geometry)
            else:
                _col2im(dcols.reshape(rows, stop - start, size), dx4[start:stop], *geometry, 0,
                        stop - start)

    over_blocks(block, bounds)
    dk = np.ascontiguousarray(sum_in_order(parts).T).reshape(w.shape) if need_dw else None
    db = images_summed(sums) if need_db else None
    return dx, dk, db
