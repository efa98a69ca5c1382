"""3×3 convolution by Winograd's minimal filtering F(4×4, 3×3): 36 multiplications for every
4×4 block of outputs instead of 144.

For stride 1 and no dilation, split the output of every plane into 4×4 *tiles*. The tile at
``(4·ti, 4·tj)`` reads the 6×6 input block ``d`` at the same place of ``Xp``, and

    ``Y_tile = Aᵀ [ (G K Gᵀ) ⊙ (Bᵀ d B) ] A``

with the fixed matrices (interpolation points 0, ±1, ±2 and ∞)

    ``Bᵀ = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]``
    ``G  = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6],
            [1/24, -1/12, 1/6], [0, 0, 1]]``
    ``Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]``

(the correlation of a 6-vector with a 3-vector is four outputs, computed from six products of
sums). Over channels the element-wise product becomes, for each of the 36 positions ``ξ`` of
the 6×6 transformed block, a matrix product: ``M[ξ] = U[ξ] @ V[ξ]`` with ``U[ξ] (C_out, C)`` the
transformed kernels and ``V[ξ] (C, T)`` the transformed input blocks of all ``T`` tiles of the
batch. So the layer is: transform the input (compiled loops), 36 GEMMs of depth ``C``,
transform the output (compiled loops) — 4 times fewer multiply-adds than im2col + GEMM, and
no window matrix (``V`` holds 2.25 values per input value; im2col's holds 9). F(2×2, 3×3),
which cnnlab used before, saves 2.25 times; against it (forward + backward, same process,
Intel Xeon with AVX-512): 64->64 at 56×56 0.77-0.78 of the time, 32->32 at 32×32 1.01-1.06
(its 36 GEMMs a block are smaller, and its transforms do more a tile), 32->32 at 14×14
1.05, 16->16 at 16×16 1.10 (slower), dilation 2 at 32×32 0.55-0.60. The larger tiles round
off more: float32 outputs differ from a direct sum by a few units in the sixth digit (the
transforms' weights reach 8 and 1/24), as in other libraries' F(4×4, 3×3).

The backward pass runs the same steps in reverse (each transform is linear, its gradient is
its transpose):

- ``dM[ξ] = (A dY_tile Aᵀ)[ξ]``, the output gradient of each tile transformed;
- ``dU[ξ] = dM[ξ] @ V[ξ]ᵀ`` and ``dK = Gᵀ dU G`` (the lecture's ``dK = X ⋆ dZ``, tile by tile);
- ``dV[ξ] = U[ξ]ᵀ @ dM[ξ]`` and ``dXp = Σ_tiles B dV Bᵀ``, each tile's 6×6 block added where it
  was read (neighbouring tiles overlap by two rows or columns).

The input is padded one channel of a block at a time in a scratch array that stays in the
cache, so zero padding costs no pass over the batch; other padding modes pad first
(``pad.pad_forward``).

**Dilation.** With dilation ``(d_h, d_w)``, output ``Z[i, j]`` reads ``Xp[i + a·d_h, j + e·d_w]``:
rows and columns of one residue mod ``d`` only. So the outputs of residue ``(α, β)`` are an
ordinary 3×3 convolution of the input's ``(α, β)`` phase ``Xp[α::d_h, β::d_w]``. The
``d_h·d_w`` phases go through as extra images of the batch: the transforms read each phase
straight from ``X`` (a row of ``X`` every ``d_h``, a column every ``d_w``) and write its
outputs straight into ``Z``, so no phase is ever copied out (copying them cost as much as
the layer: 3×3 32->32 at 32×32 with dilation 2, F(2×2, 3×3), forward + backward 24.0 ->
15.7 ms, same process).
The batch goes through in blocks of images whose ``V`` and ``M`` fit a core's L2 cache (on
cnnlab's threads, as image_gemm's blocks): transformed, multiplied and transformed back while
they are there. The backward pass transforms a block's input again for dK rather than keep
``V`` (2.25 values per input value) from the forward pass. Each value is computed by one thread
and dK's per-block sums are added in block order, so results are the same for any number of
threads.
"""

from __future__ import annotations

import numpy as np

from . import conv_compiled
from .conv_compiled import plane_sum
from .kernels import jit
from .pad import PadCache, pad_backward, pad_forward

# G: the kernel transform of F(4×4, 3×3) (see the module docstring).
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])


def tiles(out: tuple[int, int]) -> tuple[int, int]:
    """The number of 4×4 output tiles down and across an ``(O_h, O_w)`` output."""
    return (out[0] + 3) // 4, (out[1] + 3) // 4


# Tiles as flat rows. Split the padded plane ``Xp`` into its sixteen *phases*
# ``P[α, β][a, b] = Xp[4a + α, 4b + β]`` (rows and columns mod 4), each stored with rows of
# ``T_w + 1`` entries. Tile ``(ti, tj)`` reads ``Xp[4ti + r, 4tj + s]`` (``r, s < 6``), which
# is phase ``(r mod 4, s mod 4)`` at flat position ``t + (r // 4)·(T_w + 1) + s // 4`` with
# ``t = ti·(T_w + 1) + tj``: a fixed shift, for every tile at once. So each step of a
# transform is one contiguous pass over all the tiles, which LLVM turns into vector
# instructions. The extra tile ``tj = T_w`` of each row is computed and dropped (its output
# gradient is zero, so it adds nothing going back). The planes of all the images of a block,
# and with dilation all their ``d_h·d_w`` phase planes, lie side by side in each row (a row
# of ``S = N·d_h·d_w·(T_w + 1)`` tiles), so that a pass is long: one plane's passes (72
# tiles at 32×32, 20 for a 16×16 phase plane) ran mostly in LLVM's scalar remainder loop
# (dilation 2 at 32×32, forward + backward, two threads: 20.2 -> 12.6 ms). ``V``, ``M`` and
# ``dM`` hold ``T_h·S`` tiles per channel and block, in that order; the GEMMs do not care.
#
# The passes address flat arrays by offsets (six of them, one per entry along the axis, in a
# small array) rather than by slices: a slice is an array view whose reference count is
# taken and dropped, and a plane's transform took some 30 of them (F(2×2, 3×3), 3×3 32->32
# at 32×32, one image on one thread: input transform 68 -> 33 µs). ``V``, ``M``, ``dM`` and
# ``dV`` are C-contiguous (made by ``np.empty`` or ``np.matmul``), so their ``ravel()``
# inside the kernels is a view.

@jit
def _along(offsets, base, step, count):
    """``offsets[k] = base + k·step`` for ``k < count``: entries one after another."""
    for k in range(count):
        offsets[k] = base + k * step
    return offsets


@jit
def _tile_axis(offsets, base, phase_step, shift):
    """``offsets[k]`` for the six entries ``k`` of a tile along an axis: phase ``k mod 4``
    (``phase_step`` apart), shifted by ``shift`` for ``k // 4 = 1``."""
    for k in range(6):
        offsets[k] = base + (k % 4) * phase_step + (k // 4) * shift
    return offsets


@jit
def _bt(out, o, src, s, length):
    """One axis of ``Bᵀ d B``: from the six entries ``d_k = src[s[k] + q]`` along an axis,
    ``out[o[i] + q] = (Bᵀ d)_i`` for ``q < length``."""
    o0, o1, o2, o3, o4, o5 = (np.uint64(o[0]), np.uint64(o[1]), np.uint64(o[2]),
                              np.uint64(o[3]), np.uint64(o[4]), np.uint64(o[5]))
    s0, s1, s2, s3, s4, s5 = (np.uint64(s[0]), np.uint64(s[1]), np.uint64(s[2]),
                              np.uint64(s[3]), np.uint64(s[4]), np.uint64(s[5]))
    two, four, five = src.dtype.type(2), src.dtype.type(4), src.dtype.type(5)
    for q in range(np.uint64(length)):
        d0, d1, d2, d3, d4, d5 = (src[s0 + q], src[s1 + q], src[s2 + q], src[s3 + q],
                                  src[s4 + q], src[s5 + q])
        out[o0 + q] = four * d0 - five * d2 + d4
        out[o1 + q] = d3 + d4 - four * (d1 + d2)
        out[o2 + q] = d4 - d3 + four * (d1 - d2)
        out[o3 + q] = d4 - d2 + two * (d3 - d1)
        out[o4 + q] = d4 - d2 + two * (d1 - d3)
        out[o5 + q] = four * d1 - five * d3 + d5


@jit
def _at(out, o, src, s, length):
    """One axis of ``Aᵀ M A``: ``out[o[r] + q] = (Aᵀ m)_r`` (``r < 4``) from the six entries
    ``m_k = src[s[k] + q]``."""
    o0, o1, o2, o3 = np.uint64(o[0]), np.uint64(o[1]), np.uint64(o[2]), np.uint64(o[3])
    s0, s1, s2, s3, s4, s5 = (np.uint64(s[0]), np.uint64(s[1]), np.uint64(s[2]),
                              np.uint64(s[3]), np.uint64(s[4]), np.uint64(s[5]))
    two, four, eight = src.dtype.type(2), src.dtype.type(4), src.dtype.type(8)
    for q in range(np.uint64(length)):
        m1, m2, m3, m4 = src[s1 + q], src[s2 + q], src[s3 + q], src[s4 + q]
        plus, minus, plus2, minus2 = m1 + m2, m1 - m2, m3 + m4, m3 - m4
        out[o0 + q] = src[s0 + q] + plus + plus2
        out[o1 + q] = minus + two * minus2
        out[o2 + q] = plus + four * plus2
        out[o3 + q] = minus + eight * minus2 + src[s5 + q]


@jit
def _a(out, o, src, s, length):
    """One axis of ``A dY Aᵀ`` (the transpose of :func:`_at`): ``out[o[k] + q] = (A y)_k``
    (``k < 6``) from the four entries ``y_r = src[s[r] + q]``."""
    o0, o1, o2, o3, o4, o5 = (np.uint64(o[0]), np.uint64(o[1]), np.uint64(o[2]),
                              np.uint64(o[3]), np.uint64(o[4]), np.uint64(o[5]))
    s0, s1, s2, s3 = np.uint64(s[0]), np.uint64(s[1]), np.uint64(s[2]), np.uint64(s[3])
    two, four, eight = src.dtype.type(2), src.dtype.type(4), src.dtype.type(8)
    for q in range(np.uint64(length)):
        y0, y1, y2, y3 = src[s0 + q], src[s1 + q], src[s2 + q], src[s3 + q]
        even, odd, even4, odd2 = y0 + y2, y1 + y3, y0 + four * y2, two * y1 + eight * y3
        out[o0 + q] = y0
        out[o1 + q] = even + odd
        out[o2 + q] = even - odd
        out[o3 + q] = even4 + odd2
        out[o4 + q] = even4 - odd2
        out[o5 + q] = y3


@jit
def _b(out, o, src, s, length):
    """One axis of ``B dV Bᵀ`` (the transpose of :func:`_bt`): ``out[o[k] + q] = (B v)_k``
    from the six entries ``v_i = src[s[i] + q]``."""
    o0, o1, o2, o3, o4, o5 = (np.uint64(o[0]), np.uint64(o[1]), np.uint64(o[2]),
                              np.uint64(o[3]), np.uint64(o[4]), np.uint64(o[5]))
    s0, s1, s2, s3, s4, s5 = (np.uint64(s[0]), np.uint64(s[1]), np.uint64(s[2]),
                              np.uint64(s[3]), np.uint64(s[4]), np.uint64(s[5]))
    two, four, five = src.dtype.type(2), src.dtype.type(4), src.dtype.type(5)
    for q in range(np.uint64(length)):
        v0, v1, v2, v3, v4, v5 = (src[s0 + q], src[s1 + q], src[s2 + q], src[s3 + q],
                                  src[s4 + q], src[s5 + q])
        out[o0 + q] = four * v0
        out[o1 + q] = four * (v2 - v1 + v5) + two * (v4 - v3)
        out[o2 + q] = -five * v0 - four * (v1 + v2) - v3 - v4
        out[o3 + q] = v1 - v2 + two * (v3 - v4) - five * v5
        out[o4 + q] = v0 + v1 + v2 + v3 + v4
        out[o5 + q] = v5


@jit
def _columns(first, col, count, residue, pad, dw, width):
    """Where the columns of one residue mod ``d_w`` of a row ``width`` wide, placed at
    ``pad``, go among the four tile phases (columns mod 4 of the dilation phase): for phase
    ``β``, ``first[β]`` the first of them, ``4·d_w`` apart, ``count[β]`` of them, from entry
    ``col[β]`` of the phase's row on."""
    j_res = (residue - pad) % dw                   # the residue's first column
    for beta in range(4):
        j0 = j_res + dw * ((beta - (pad + j_res) // dw) % 4)
        first[beta] = j0
        col[beta] = (pad + j0) // dw // 4
        count[beta] = (width - j0 + 4 * dw - 1) // (4 * dw)


@jit
def _deal_rows(dst, src, gather, stride, span, shift, start, width, i0, i1, pad, dh, dw, first,
               col, count):
    """Between the rows ``i = i0, i0 + d_h, .. < i1`` of a plane at ``start + i·width`` of a
    flat array and the sixteen tile phases at ``(4·(r % 4) + β)·stride + (r // 4)·span +
    shift`` of another (``r = (pad + i) // d_h``, the row's place in its dilation phase):
    the row's columns of phase ``β`` (:func:`_columns`) copied from ``src`` to ``dst``, into
    the phases (``gather``: ``src`` holds the rows) or back out of them. A pass takes one
    column of each phase in turn: neighbours in the row, not ``4·d_w`` apart."""
    f0, f1, f2, f3 = (np.uint64(first[0]), np.uint64(first[1]), np.uint64(first[2]),
                      np.uint64(first[3]))
    c0, c1, c2, c3 = (np.uint64(shift + col[0]), np.uint64(stride + shift + col[1]),
                      np.uint64(2 * stride + shift + col[2]),
                      np.uint64(3 * stride + shift + col[3]))
    common = np.uint64(min(count[0], count[1], count[2], count[3]))
    step = np.uint64(4 * dw)
    for i in range(i0, i1, dh):
        r = (pad + i) // dh
        row = np.uint64(start + i * width)
        base = np.uint64(4 * (r % 4) * stride + (r // 4) * span)
        t0, t1, t2, t3 = base + c0, base + c1, base + c2, base + c3
        if gather:
            for k in range(common):
                at = row + k * step
                dst[t0 + k] = src[at + f0]
                dst[t1 + k] = src[at + f1]
                dst[t2 + k] = src[at + f2]
                dst[t3 + k] = src[at + f3]
        else:
            for k in range(common):
                at = row + k * step
                dst[at + f0] = src[t0 + k]
                dst[at + f1] = src[t1 + k]
                dst[at + f2] = src[t2 + k]
                dst[at + f3] = src[t3 + k]
        for beta in range(4):                      # the phases with one column more
            to = base + np.uint64(beta * stride + shift + col[beta])
            for k in range(common, np.uint64(count[beta])):
                at = row + np.uint64(first[beta]) + k * step
                if gather:
                    dst[to + k] = src[at]
                else:
                    dst[at] = src[to + k]


@jit
def _input_transform(x, v, ph, pw, dh, dw, th, tw):
    """``V[ξ, c, t] = (Bᵀ d B)[ξ]`` for the 6×6 block ``d`` of every tile ``t`` of channel
    ``c``: the dilation phases of all images side by side, in rows of ``S = N·d_h·d_w·(T_w +
    1)`` tiles, ``T_h`` of them (see the module's notes); ``x (N, C, H, W)``, C-contiguous,
    is placed at ``(p_h, p_w)`` in zeros; ``v (36, C, T_h·S)``."""
    images, channels, h, wd = x.shape
    wt = tw + 1
    span = images * dh * dw * wt
    length = th * span
    plane = (th + 2) * span
    phase = np.zeros(16 * plane, dtype=x.dtype)        # phase (α, β) at (4α + β)·plane
    across = length + 1
    rows = np.empty(24 * across, dtype=x.dtype)        # Bᵀ d: row i, phase β at (4i + β)·across
    flat, pixels = v.ravel(), x.ravel()
    per_xi = v.shape[1] * v.shape[2]
    o, s = np.empty(6, np.int64), np.empty(6, np.int64)
    first, col, count = np.empty(4, np.int64), np.empty(4, np.int64), np.empty(4, np.int64)
    for c in range(channels):
        for p in range(images * dh * dw):          # image, row residue, column residue
            n, alpha, beta = p // (dh * dw), p // dw % dh, p % dw
            _columns(first, col, count, beta, pw, dw, wd)
            _deal_rows(phase, pixels, True, plane, span, p * wt, (n * channels + c) * h * wd,
                       wd, (alpha - ph) % dh, h, ph, dh, dw, first, col, count)
        for beta in range(4):                      # Bᵀ d: the rows
            _bt(rows, _along(o, beta * across, 4 * across, 6), phase,
                _tile_axis(s, beta * plane, 4 * plane, span), across)
        first_tile = c * v.shape[2]
        for i in range(6):                         # (Bᵀ d) B: the columns
            _bt(flat, _along(o, 6 * i * per_xi + first_tile, per_xi, 6), rows,
                _tile_axis(s, 4 * i * across, across, 1), length)


@jit
def _output_transform(m, b, z, dh, dw, th, tw):
    """``Z[n, o, i, j] = B[o] + (Aᵀ M A)[r, s]`` for the place ``(r, s)`` of the tile that
    holds output ``(i, j)`` (the parts of tiles past the output's edge are dropped);
    ``m (36, C_out, T_h·S)`` in :func:`_input_transform`'s order, ``z`` C-contiguous."""
    images, channels, oh, ow = z.shape
    wt = tw + 1
    span = images * dh * dw * wt
    length = th * span
    rows = np.empty(24 * length, dtype=z.dtype)    # Aᵀ M: row r, column l at (6r + l)·L
    y = np.empty(16 * length, dtype=z.dtype)       # (Aᵀ M A)[r, s] at (4r + s)·L
    flat, outputs = m.ravel(), z.ravel()
    per_xi = m.shape[1] * m.shape[2]
    o, s = np.empty(6, np.int64), np.empty(6, np.int64)
    first, col, count = np.empty(4, np.int64), np.empty(4, np.int64), np.empty(4, np.int64)
    for out in range(channels):
        first_tile = out * m.shape[2]
        for j in range(6):                         # Aᵀ M: the rows
            _at(rows, _along(o, j * length, 6 * length, 4), flat,
                _along(s, j * per_xi + first_tile, 6 * per_xi, 6), length)
        for r in range(4):                         # (Aᵀ M) A: the columns
            _at(y, _along(o, 4 * r * length, length, 4), rows,
                _along(s, 6 * r * length, length, 6), length)
        bias = b[out]
        for q in range(16 * length):
            y[q] += bias
        for p in range(images * dh * dw):
            n, alpha, beta = p // (dh * dw), p // dw % dh, p % dw
            _columns(first, col, count, beta, 0, dw, ow)
            _deal_rows(outputs, y, False, length, span, p * wt, (n * channels + out) * oh * ow,
                       ow, alpha, oh, 0, dh, dw, first, col, count)


@jit
def _output_grad_transform(dz, dm, sums, dh, dw, th, tw):
    """``dM[ξ, o, α·L + t] = (A dY Aᵀ)[ξ]`` for the 4×4 block ``dY`` of every tile (zeros
    past the output's edge), in :func:`_input_transform`'s order; ``dz`` C-contiguous. Unless
    ``sums`` is empty, ``sums[n, o] = Σ_{i,j} dY[n, o, i, j]`` (dB's share of image ``n``, in
    the working precision), a pass over each plane as the transform reads it."""
    images, channels, oh, ow = dz.shape
    wt = tw + 1
    span = images * dh * dw * wt
    length = th * span
    g = np.zeros(16 * length, dtype=dz.dtype)      # place (r, s) of dY at (4r + s)·L
    rows = np.empty(24 * length, dtype=dz.dtype)   # A dY: row k, column s at (4k + s)·L
    flat, grads = dm.ravel(), dz.ravel()
    per_xi = dm.shape[1] * dm.shape[2]
    o, s = np.empty(6, np.int64), np.empty(6, np.int64)
    first, col, count = np.empty(4, np.int64), np.empty(4, np.int64), np.empty(4, np.int64)
    for out in range(channels):
        for p in range(images * dh * dw):
            n, alpha, beta = p // (dh * dw), p // dw % dh, p % dw
            _columns(first, col, count, beta, 0, dw, ow)
            _deal_rows(g, grads, True, length, span, p * wt, (n * channels + out) * oh * ow,
                       ow, alpha, oh, 0, dh, dw, first, col, count)
        for n in range(sums.shape[0]):
            sums[n, out] = plane_sum(grads, (n * channels + out) * oh * ow, oh * ow)
        for j in range(4):                         # A dY: the rows
            _a(rows, _along(o, j * length, 4 * length, 6), g,
               _along(s, j * length, 4 * length, 4), length)
        first_tile = out * dm.shape[2]
        for k in range(6):                         # (A dY) Aᵀ: the columns
            _a(flat, _along(o, 6 * k * per_xi + first_tile, per_xi, 6), rows,
               _along(s, 4 * k * length, length, 4), length)


@jit
def _input_grad_transform(dv, dx, ph, pw, dh, dw, th, tw):
    """``dXp = Σ_tiles B dV Bᵀ``, each tile's 6×6 block added where it read ``Xp``, then
    ``dX = dXp[p_h:p_h + H, p_w:p_w + W]``; ``dv (36, C, T_h·S)`` in
    :func:`_input_transform`'s order, ``dx`` C-contiguous."""
    images, channels, h, wd = dx.shape
    wt = tw + 1
    span = images * dh * dw * wt
    length = th * span
    plane = (th + 2) * span
    rows = np.empty(36 * length, dtype=dx.dtype)   # B dV: row k, column l at (6k + l)·L
    block = np.empty(36 * length, dtype=dx.dtype)  # B dV Bᵀ: dd[k, l] at (6k + l)·L
    phase = np.empty(16 * plane, dtype=dx.dtype)   # phase (α, β) at (4α + β)·plane
    flat, grads = dv.ravel(), dx.ravel()
    per_xi = dv.shape[1] * dv.shape[2]
    o, s = np.empty(6, np.int64), np.empty(6, np.int64)
    first, col, count = np.empty(4, np.int64), np.empty(4, np.int64), np.empty(4, np.int64)
    for c in range(channels):
        first_tile = c * dv.shape[2]
        for j in range(6):                         # B dV: the rows
            _b(rows, _along(o, j * length, 6 * length, 6), flat,
               _along(s, j * per_xi + first_tile, 6 * per_xi, 6), length)
        for k in range(6):                         # (B dV) Bᵀ: the columns
            _b(block, _along(o, 6 * k * length, length, 6), rows,
               _along(s, 6 * k * length, length, 6), length)
        phase[:] = 0
        for k in range(6):                         # each dd[k, l] onto its phase, shifted
            for j in range(6):
                to = np.uint64((4 * (k % 4) + j % 4) * plane + (k // 4) * span + j // 4)
                at = np.uint64((6 * k + j) * length)
                for q in range(np.uint64(length)):
                    phase[to + q] += block[at + q]
        for p in range(images * dh * dw):
            n, alpha, beta = p // (dh * dw), p // dw % dh, p % dw
            _columns(first, col, count, beta, pw, dw, wd)
            _deal_rows(grads, phase, False, plane, span, p * wt, (n * channels + c) * h * wd,
                       wd, (alpha - ph) % dh, h, ph, dh, dw, first, col, count)


def kernel_transform(w: np.ndarray) -> np.ndarray:
    """``U[ξ] = (G K Gᵀ)[ξ]``: ``K (C_out, C, 3, 3) -> U (36, C_out, C)``."""
    g = G.astype(w.dtype)
    return np.einsum("ia,ocab,jb->ijoc", g, w, g, optimize=True).reshape(36, *w.shape[:2])


# The fewest tiles a block of images should hold. A pass of the transforms over 64 tiles or
# fewer runs in LLVM's scalar loop, not its vector one (which takes 64 values a turn), 3 to 5
# times slower a value (one thread, Intel Xeon with AVX-512: the output-gradient pass 2.2-2.7
# ns a tile up to 68 tiles, 0.6-0.8 from 72 on). Blocks of enough images to reach this
# outgrow the L2 budget for deep small planes (64 channels at 14×14, 20 tiles an image: 4
# images for 80 tiles, 1.5 MB, where the budget took 2), which costs far less: forward +
# backward, batch 128, two threads, same process, blocks of the budget's size against blocks
# of at least 80 tiles: 64->64 at 14×14 39-41 -> 26-27 ms, 32->64 at 14×14 19-19.5 ->
# 16.2-16.9, 64->64 at 16×16 (batch 32) 10.0-10.4 -> 7.2-7.4. At least 160 rather than 80: dK's
# GEMM, ``(T, C)`` summed over a block's ``T`` tiles, runs faster a tile on more of them (3×3
# 32->32 at 32×32, one image of 72 tiles a block against two, one thread: 0.085 against 0.060
# ms an image); dilation 2 at 32×32 (80 tiles an image), batch 32, five rounds: 10.27-10.81 ->
# 9.36-10.0 ms; the same without dilation (three images a block instead of one): 6.86-7.26 ->
# 7.20-8.06; 64->64 at 14×14 25.9-26.7 -> 25.1-25.3; 32->32 at 28×28 24.8-25.3 -> 24.5-24.8.
MIN_BLOCK_TILES = 160


def _image_blocks(n: int, c: int, c_out: int, length: int, itemsize: int) -> list[int]:
    """``conv_compiled.image_blocks`` for the transformed blocks ``V (36, C, ·)`` and
    ``M (36, C_out, ·)`` of ``length`` tiles an image, with at least ``MIN_BLOCK_TILES`` tiles
    a block where the batch has them."""
    fit = conv_compiled.image_blocks(n, 36 * (c + c_out) * length * itemsize)
    least = -(-MIN_BLOCK_TILES // length)
    if fit[1] - fit[0] >= least:
        return fit
    count = max(1, n // least)                     # near-equal blocks of at least `least`
    return [i * n // count for i in range(count)] + [n]


def _phase_tiles(out: tuple[int, int], d: tuple[int, int]) -> tuple[int, int]:
    """The tiles down and across the output of a dilation phase (the largest one's, for
    all of them)."""
    return tiles((-(-out[0] // d[0]), -(-out[1] // d[1])))


def correlate(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pads: tuple[int, int],
              out: tuple[int, int], dilation: tuple[int, int] = (1, 1)
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward: ``X (N, C, H, W)`` placed at ``pads = (p_h, p_w)`` in zeros, ``K (C_out, C, 3, 3)``
    dilated by ``dilation``, ``B (C_out,)`` or None -> ``(Z (N, C_out, *out), U, X)`` (``U`` and
    the C-contiguous ``X`` for the backward pass).

    In blocks of images whose ``V`` and ``M`` fit a core's L2 cache: each block is
    transformed, multiplied and transformed back while it is there (3×3 32->32 at 32×32,
    batch 32: the whole batch's ``V`` and ``M`` are 17.8 MB each, written to memory and read
    back)."""
    n, c = x.shape[:2]
    c_out = w.shape[0]
    th, tw = _phase_tiles(out, dilation)
    phases = dilation[0] * dilation[1]
    length = th * (tw + 1)
    x = np.ascontiguousarray(x)
    u = kernel_transform(w.astype(x.dtype, copy=False))
    z = np.empty((n, c_out, *out), dtype=x.dtype)
    bias = np.zeros(c_out, dtype=x.dtype) if b is None else b.astype(x.dtype, copy=False)

    def block(start: int, stop: int) -> None:
        v = np.empty((36, c, (stop - start) * phases * length), dtype=x.dtype)
        _input_transform(x[start:stop], v, *pads, *dilation, th, tw)
        m = np.matmul(u, v)                                        # (36, C_out, tiles)
        _output_transform(m, bias, z[start:stop], *dilation, th, tw)

    conv_compiled.over_blocks(block, _image_blocks(n, c, c_out, phases * length, x.itemsize))
    return z, u, x


def gradients(dz: np.ndarray, u: np.ndarray, x: np.ndarray, pads: tuple[int, int],
              need_dx: bool, need_dw: bool, dilation: tuple[int, int] = (1, 1),
              need_db: bool = False
              ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(dX, dK, dB)`` of :func:`correlate` (each None unless asked for; dB only with dX or
    dK) from the ``X`` it kept, in the same blocks of images: a block's ``V`` is transformed
    again for its share of dK (summed over the blocks afterwards, in block order: the same sum
    for any number of threads), and ``dV`` is written over it. dB is summed as the output
    gradient's transform reads dZ, not in a pass over dZ of its own (3×3 dilation 2 32->32 at
    32×32, batch 32: ``dz.sum`` took 0.27 ms of the backward's 7.5)."""
    n, c_out = dz.shape[:2]
    c = x.shape[1]
    th, tw = _phase_tiles(dz.shape[2:], dilation)
    phases = dilation[0] * dilation[1]
    length = th * (tw + 1)
    dz = np.ascontiguousarray(dz)
    bounds = _image_blocks(n, c, c_out, phases * length, dz.itemsize)
    parts = np.empty((len(bounds) - 1, 36, c_out, c), dtype=dz.dtype) if need_dw else None
    dx = np.empty(x.shape, dtype=dz.dtype) if need_dx else None
    sums = np.empty((n, c_out) if need_db and (need_dx or need_dw) else (0, 0), dtype=dz.dtype)
    ut = u.transpose(0, 2, 1)

    def block(start: int, stop: int) -> None:
        tiles_ = (stop - start) * phases * length
        dm = np.empty((36, c_out, tiles_), dtype=dz.dtype)
        _output_grad_transform(dz[start:stop], dm, sums[start:stop] if sums.size else sums,
                               *dilation, th, tw)
        v = np.empty((36, c, tiles_), dtype=dz.dtype)
        if need_dw:
            _input_transform(x[start:stop], v, *pads, *dilation, th, tw)
            np.matmul(dm, v.transpose(0, 2, 1), out=parts[bounds.index(start)])
        if need_dx:
            np.matmul(ut, dm, out=v)                               # dV, over V
            _input_grad_transform(v, dx[start:stop], *pads, *dilation, th, tw)

    conv_compiled.over_blocks(block, bounds)
    dk = None
    if need_dw:
        du = conv_compiled.sum_in_order(parts)
        g = G.astype(dz.dtype)
        dk = np.einsum("ia,ijoc,jb->ocab", g, du.reshape(6, 6, *du.shape[1:]), g,
                       optimize=True)
    return dx, dk, conv_compiled.images_summed(sums) if sums.size else None


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pads, mode: str,
            dilation: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The layer's forward, any padding mode and dilation: ``X (N, C, H, W)`` -> ``(Z, U, S)``,
    ``S`` the input as the kernels read it (for :func:`backward`: ``X``, padded unless the
    padding is zeros).

    ``pads`` is ``((p_top, p_bottom), (p_left, p_right))``, ``mode`` as ``pad.pad_forward``."""
    padded = (x.shape[2] + sum(pads[0]), x.shape[3] + sum(pads[1]))
    out = (padded[0] - 2 * dilation[0], padded[1] - 2 * dilation[1])
    if mode == "constant":                         # the kernels pad with zeros themselves
        return correlate(x, w, b, (pads[0][0], pads[1][0]), out, dilation)
    return correlate(pad_forward(x, pads, mode)[0], w, b, (0, 0), out, dilation)


def backward(dz: np.ndarray, u: np.ndarray, x: np.ndarray, pad_cache: PadCache,
             dilation: tuple[int, int], need_dx: bool, need_dw: bool, need_db: bool = False
             ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(dX, dK, dB)`` of :func:`forward` (as :func:`gradients`) from the ``U`` and ``X`` it
    returned."""
    pads = pad_cache.pads
    if pad_cache.mode == "constant":               # then dXp is cropped on the way out
        return gradients(dz, u, x, (pads[0][0], pads[1][0]), need_dx, need_dw, dilation,
                         need_db)
    dxp, dk, db = gradients(dz, u, x, (0, 0), need_dx, need_dw, dilation, need_db)
    dx = np.ascontiguousarray(pad_backward(dxp, pad_cache)) if need_dx else None
    return dx, dk, db
