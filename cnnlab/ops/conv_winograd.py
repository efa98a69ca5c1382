"""3×3 convolution by Winograd's minimal filtering F(2×2, 3×3): 16 multiplications for every
2×2 block of outputs instead of 36.

For stride 1 and no dilation, split the output of every plane into 2×2 *tiles*. The tile at
``(2·ti, 2·tj)`` reads the 4×4 input block ``d`` at the same place of ``Xp``, and

    ``Y_tile = Aᵀ [ (G K Gᵀ) ⊙ (Bᵀ d B) ] A``

with the fixed matrices

    ``Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]``
    ``G  = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]``
    ``Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]``

(the correlation of a 4-vector with a 3-vector is two outputs, computed from four products of
sums). Over channels the element-wise product becomes, for each of the 16 positions ``ξ`` of
the 4×4 transformed block, a matrix product: ``M[ξ] = U[ξ] @ V[ξ]`` with ``U[ξ] (C_out, C)`` the
transformed kernels and ``V[ξ] (C, T)`` the transformed input blocks of all ``T`` tiles of the
batch. So the layer is: transform the input (compiled loops), 16 GEMMs of depth ``C``,
transform the output (compiled loops) — 2.25 times fewer multiply-adds than im2col + GEMM, and
no window matrix (``V`` holds 4 values per input value; im2col's holds 9).

The backward pass runs the same steps in reverse (each transform is linear, its gradient is
its transpose):

- ``dM[ξ] = (A dY_tile Aᵀ)[ξ]``, the output gradient of each tile transformed;
- ``dU[ξ] = dM[ξ] @ V[ξ]ᵀ`` and ``dK = Gᵀ dU G`` (the lecture's ``dK = X ⋆ dZ``, tile by tile);
- ``dV[ξ] = U[ξ]ᵀ @ dM[ξ]`` and ``dXp = Σ_tiles B dV Bᵀ``, each tile's 4×4 block added where it
  was read (neighbouring tiles overlap by two rows or columns).

The input is padded one plane at a time in a scratch plane that stays in the cache, so zero
padding costs no pass over the batch; other padding modes pad first (``pad.pad_forward``).

**Dilation.** With dilation ``(d_h, d_w)``, output ``Z[i, j]`` reads ``Xp[i + a·d_h, j + e·d_w]``:
rows and columns of one residue mod ``d`` only. So the outputs of residue ``(α, β)`` are an
ordinary 3×3 convolution of the input's ``(α, β)`` phase ``Xp[α::d_h, β::d_w]``. The
``d_h·d_w`` phases go through as extra images of the batch (:func:`to_phases`), and the
outputs are interleaved back (:func:`from_phases`).
The batch goes through in blocks of images whose ``V`` and ``M`` fit a core's L2 cache (on
cnnlab's threads, as image_gemm's blocks): transformed, multiplied and transformed back while
they are there. The backward pass transforms a block's input again for dK rather than keep
``V`` (4 values per input value) from the forward pass. Each value is computed by one thread
and dK's per-block sums are added in block order, so results are the same for any number of
threads.
"""

from __future__ import annotations

import numpy as np

from . import conv_compiled, parallel
from .kernels import jit
from .pad import PadCache, pad_backward, pad_forward

# G: the kernel transform of F(2×2, 3×3) (see the module docstring).
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def tiles(out: tuple[int, int]) -> tuple[int, int]:
    """The number of 2×2 output tiles down and across an ``(O_h, O_w)`` output."""
    return (out[0] + 1) // 2, (out[1] + 1) // 2


# Tiles as flat rows. Split the padded plane ``Xp`` into its four *phases*
# ``P[α, β][a, b] = Xp[2a + α, 2b + β]`` (even/odd rows and columns), each stored with rows of
# ``T_w + 1`` entries. Tile ``(ti, tj)`` reads ``Xp[2ti + r, 2tj + s]``, which is phase
# ``(r mod 2, s mod 2)`` at flat position ``t + (r // 2)·(T_w + 1) + s // 2`` with
# ``t = ti·(T_w + 1) + tj``: a fixed shift, for every tile at once. So each step of a transform
# is one contiguous pass over all the tiles of a plane, which LLVM turns into vector
# instructions. The extra tile ``tj = T_w`` of each row is computed and dropped (its output
# gradient is zero, so it adds nothing going back): ``V``, ``M`` and ``dM`` hold
# ``T_h·(T_w + 1)`` tiles per plane.
#
# The passes address flat arrays by offsets rather than by slices: a slice is an array view
# whose reference count is taken and dropped, and a plane's transform took some 30 of them
# (3×3 32->32 at 32×32, one image on one thread: input transform 68 -> 33 µs; the layer,
# two threads, same process: forward 3.83 -> 3.05 ms, backward 7.89 -> 6.29; 64->64 at
# 56×56 0.93-0.95 of the time). ``V``, ``M``, ``dM`` and ``dV`` are C-contiguous (made by
# ``np.empty`` or ``np.matmul``), so their ``ravel()`` inside the kernels is a view.


@jit
def _bt(out, o0, o1, o2, o3, src, even, odd, delta, length):
    """One axis of ``Bᵀ d B``: from the four entries ``d0..d3`` along an axis, with ``d0, d2``
    at ``src[even + q]`` (``d2`` ``delta`` further on) and ``d1, d3`` at ``src[odd + q]``,
    ``out[o0 + q], .., out[o3 + q] = (d0 - d2, d1 + d2, d2 - d1, d1 - d3)`` for
    ``q < length``."""
    u0, u1, u2, u3 = np.uint64(o0), np.uint64(o1), np.uint64(o2), np.uint64(o3)
    e, o, d = np.uint64(even), np.uint64(odd), np.uint64(delta)
    for q in range(np.uint64(length)):
        d0, d1, d2, d3 = src[e + q], src[o + q], src[e + q + d], src[o + q + d]
        out[u0 + q] = d0 - d2
        out[u1 + q] = d1 + d2
        out[u2 + q] = d2 - d1
        out[u3 + q] = d1 - d3


@jit
def _at(out, o0, o1, src, m0, m1, m2, m3, length):
    """One axis of ``Aᵀ M A``: ``out[o0 + q], out[o1 + q] = (M0 + M1 + M2, M1 - M2 - M3)``
    with ``Mk = src[mk + q]``."""
    u0, u1 = np.uint64(o0), np.uint64(o1)
    v0, v1, v2, v3 = np.uint64(m0), np.uint64(m1), np.uint64(m2), np.uint64(m3)
    for q in range(np.uint64(length)):
        a, b, c = src[v1 + q], src[v2 + q], src[v3 + q]
        out[u0 + q] = src[v0 + q] + a + b
        out[u1 + q] = a - b - c


@jit
def _a(out, o0, o1, o2, o3, src, y0, y1, length):
    """One axis of ``A dY Aᵀ`` (the transpose of :func:`_at`): ``(Y0, Y0 + Y1, Y0 - Y1, -Y1)``
    with ``Yk = src[yk + q]``."""
    u0, u1, u2, u3 = np.uint64(o0), np.uint64(o1), np.uint64(o2), np.uint64(o3)
    w0, w1 = np.uint64(y0), np.uint64(y1)
    for q in range(np.uint64(length)):
        a, b = src[w0 + q], src[w1 + q]
        out[u0 + q] = a
        out[u1 + q] = a + b
        out[u2 + q] = a - b
        out[u3 + q] = -b


@jit
def _b(out, o0, o1, o2, o3, src, v0, v1, v2, v3, length):
    """One axis of ``B dV Bᵀ`` (the transpose of :func:`_bt`):
    ``(V0, V1 - V2 + V3, V1 + V2 - V0, -V3)`` with ``Vk = src[vk + q]``."""
    u0, u1, u2, u3 = np.uint64(o0), np.uint64(o1), np.uint64(o2), np.uint64(o3)
    w0, w1, w2, w3 = np.uint64(v0), np.uint64(v1), np.uint64(v2), np.uint64(v3)
    for q in range(np.uint64(length)):
        a, b, c, d = src[w0 + q], src[w1 + q], src[w2 + q], src[w3 + q]
        out[u0 + q] = a
        out[u1 + q] = b - c + d
        out[u2 + q] = b + c - a
        out[u3 + q] = -d


@jit
def _input_transform(x, v, ph, pw, th, tw, start, stop):
    """``V[ξ, c, n·L + t] = (Bᵀ d B)[ξ]`` for the 4×4 block ``d`` of every tile ``t`` of the
    planes ``(n, c)`` numbered ``start .. stop-1`` (``L = T_h·(T_w + 1)``); ``x (N, C, H, W)``
    is placed at ``(p_h, p_w)`` in zeros; ``v (16, C, N·L)``."""
    channels, h, wd = x.shape[1], x.shape[2], x.shape[3]
    wt = tw + 1
    length = th * wt
    plane = (th + 2) * wt
    phase = np.zeros(4 * plane, dtype=x.dtype)         # phase (α, β) at (2α + β)·plane
    across = length + 1
    rows = np.empty(8 * across, dtype=x.dtype)         # Bᵀ d: row i, phase β at (2i + β)·across
    flat = v.ravel()
    per_xi = v.shape[1] * v.shape[2]
    for item in range(start, stop):
        n, c = item // channels, item % channels
        for i in range(h):
            r = ph + i
            for beta in range(2):                  # the even, then the odd columns of Xp
                j0 = (beta - pw) % 2               # the first column of X that lands there
                at = np.uint64((2 * (r % 2) + beta) * plane + (r // 2) * wt + (pw + j0) // 2)
                first = np.uint64(j0)
                for k in range(np.uint64((wd - j0 + 1) // 2)):
                    phase[at + k] = x[n, c, i, first + k + k]
        for beta in range(2):                      # Bᵀ d: the rows
            _bt(rows, beta * across, (2 + beta) * across, (4 + beta) * across,
                (6 + beta) * across, phase, beta * plane, (2 + beta) * plane, wt, across)
        first = c * v.shape[2] + n * length
        for i in range(4):                         # (Bᵀ d) B: the columns
            _bt(flat, 4 * i * per_xi + first, (4 * i + 1) * per_xi + first,
                (4 * i + 2) * per_xi + first, (4 * i + 3) * per_xi + first,
                rows, 2 * i * across, (2 * i + 1) * across, 1, length)


@jit
def _output_transform(m, b, z, th, tw, start, stop):
    """``Z[n, o, 2ti + r, 2tj + s] = B[o] + (Aᵀ M A)[r, s]`` for the planes ``(n, o)``
    numbered ``start .. stop-1`` (the parts of tiles past the output's edge are dropped);
    ``m (16, C_out, N·L)``."""
    channels, oh, ow = z.shape[1], z.shape[2], z.shape[3]
    wt = tw + 1
    length = th * wt
    rows = np.empty(8 * length, dtype=z.dtype)     # Aᵀ M: row r, column j at (4r + j)·L
    y = np.empty(4 * length, dtype=z.dtype)        # (Aᵀ M A)[r, s] at (2r + s)·L
    flat = m.ravel()
    per_xi = m.shape[1] * m.shape[2]
    for item in range(start, stop):
        n, o = item // channels, item % channels
        first = o * m.shape[2] + n * length
        for j in range(4):                         # Aᵀ M: the rows
            _at(rows, j * length, (4 + j) * length, flat, j * per_xi + first,
                (4 + j) * per_xi + first, (8 + j) * per_xi + first, (12 + j) * per_xi + first,
                length)
        for r in range(2):                         # (Aᵀ M) A: the columns
            _at(y, 2 * r * length, (2 * r + 1) * length, rows, 4 * r * length,
                (4 * r + 1) * length, (4 * r + 2) * length, (4 * r + 3) * length, length)
        bias = b[o]
        for i in range(oh):
            for s in range(2):                     # the even, then the odd columns of Z
                at = np.uint64((2 * (i % 2) + s) * length + (i // 2) * wt)
                first_column = np.uint64(s)
                for k in range(np.uint64((ow - s + 1) // 2)):
                    z[n, o, i, first_column + k + k] = bias + y[at + k]


@jit
def _output_grad_transform(dz, dm, th, tw, start, stop):
    """``dM[ξ, o, n·L + t] = (A dY Aᵀ)[ξ]`` for the 2×2 block ``dY`` of every tile of the
    planes ``(n, o)`` numbered ``start .. stop-1`` (zeros past the output's edge)."""
    channels, oh, ow = dz.shape[1], dz.shape[2], dz.shape[3]
    wt = tw + 1
    length = th * wt
    g = np.zeros(4 * length, dtype=dz.dtype)       # phase (r, s) of dY at (2r + s)·L
    rows = np.empty(8 * length, dtype=dz.dtype)    # A dY: row k, phase s at (2k + s)·L
    flat = dm.ravel()
    per_xi = dm.shape[1] * dm.shape[2]
    for item in range(start, stop):
        n, o = item // channels, item % channels
        for i in range(oh):
            for s in range(2):
                at = np.uint64((2 * (i % 2) + s) * length + (i // 2) * wt)
                first_column = np.uint64(s)
                for k in range(np.uint64((ow - s + 1) // 2)):
                    g[at + k] = dz[n, o, i, first_column + k + k]
        for s in range(2):                         # A dY: the rows
            _a(rows, s * length, (2 + s) * length, (4 + s) * length, (6 + s) * length,
               g, s * length, (2 + s) * length, length)
        first = o * dm.shape[2] + n * length
        for i in range(4):                         # (A dY) Aᵀ: the columns
            _a(flat, 4 * i * per_xi + first, (4 * i + 1) * per_xi + first,
               (4 * i + 2) * per_xi + first, (4 * i + 3) * per_xi + first,
               rows, 2 * i * length, (2 * i + 1) * length, length)


@jit
def _input_grad_transform(dv, dx, ph, pw, th, tw, start, stop):
    """``dXp = Σ_tiles B dV Bᵀ``, each tile's 4×4 block added where it read ``Xp``, then
    ``dX = dXp[p_h:p_h + H, p_w:p_w + W]``, for the planes ``(n, c)`` numbered
    ``start .. stop-1``; ``dv (16, C, N·L)``."""
    channels, h, wd = dx.shape[1], dx.shape[2], dx.shape[3]
    wt = tw + 1
    length = th * wt
    plane = (th + 2) * wt
    rows = np.empty(16 * length, dtype=dx.dtype)   # B dV: row k, column j at (4k + j)·L
    block = np.empty(16 * length, dtype=dx.dtype)  # B dV Bᵀ: dd[r, s] at (4r + s)·L
    phase = np.empty(4 * plane, dtype=dx.dtype)    # phase (α, β) at (2α + β)·plane
    flat = dv.ravel()
    per_xi = dv.shape[1] * dv.shape[2]
    for item in range(start, stop):
        n, c = item // channels, item % channels
        first = c * dv.shape[2] + n * length
        for j in range(4):                         # B dV: the rows
            _b(rows, j * length, (4 + j) * length, (8 + j) * length, (12 + j) * length,
               flat, j * per_xi + first, (4 + j) * per_xi + first, (8 + j) * per_xi + first,
               (12 + j) * per_xi + first, length)
        for r in range(4):                         # (B dV) Bᵀ: the columns
            _b(block, 4 * r * length, (4 * r + 1) * length, (4 * r + 2) * length,
               (4 * r + 3) * length, rows, 4 * r * length, (4 * r + 1) * length,
               (4 * r + 2) * length, (4 * r + 3) * length, length)
        phase[:] = 0
        for r in range(4):                         # each dd[r, s] onto its phase, shifted
            for s in range(4):
                to = np.uint64((2 * (r % 2) + s % 2) * plane + (r // 2) * wt + s // 2)
                at = np.uint64((4 * r + s) * length)
                for q in range(np.uint64(length)):
                    phase[to + q] += block[at + q]
        for i in range(h):
            r = ph + i
            for beta in range(2):
                j0 = (beta - pw) % 2
                at = np.uint64((2 * (r % 2) + beta) * plane + (r // 2) * wt + (pw + j0) // 2)
                first_column = np.uint64(j0)
                for k in range(np.uint64((wd - j0 + 1) // 2)):
                    dx[n, c, i, first_column + k + k] = phase[at + k]


def kernel_transform(w: np.ndarray) -> np.ndarray:
    """``U[ξ] = (G K Gᵀ)[ξ]``: ``K (C_out, C, 3, 3) -> U (16, C_out, C)``."""
    g = G.astype(w.dtype)
    return np.einsum("ia,ocab,jb->ijoc", g, w, g, optimize=True).reshape(16, *w.shape[:2])


def _image_blocks(n: int, c: int, c_out: int, length: int, itemsize: int) -> list[int]:
    """``conv_compiled.image_blocks`` for the transformed blocks ``V (16, C, ·)`` and
    ``M (16, C_out, ·)`` of ``length`` tiles an image."""
    return conv_compiled.image_blocks(n, 16 * (c + c_out) * length * itemsize)


def correlate(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pads: tuple[int, int],
              out: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward: ``X (N, C, H, W)`` placed at ``pads = (p_h, p_w)`` in zeros, ``K (C_out, C, 3, 3)``,
    ``B (C_out,)`` or None -> ``(Z (N, C_out, *out), U, X)`` (``U`` and the C-contiguous ``X``
    for the backward pass).

    In blocks of images whose ``V`` and ``M`` fit a core's L2 cache: each block is
    transformed, multiplied and transformed back while it is there (3×3 32->32 at 32×32,
    batch 32: the whole batch's ``V`` and ``M`` are 17.8 MB each, written to memory and read
    back)."""
    n, c = x.shape[:2]
    c_out = w.shape[0]
    th, tw = tiles(out)
    length = th * (tw + 1)
    x = np.ascontiguousarray(x)
    u = kernel_transform(w.astype(x.dtype, copy=False))
    z = np.empty((n, c_out, *out), dtype=x.dtype)
    bias = np.zeros(c_out, dtype=x.dtype) if b is None else b.astype(x.dtype, copy=False)

    def block(start: int, stop: int) -> None:
        v = np.empty((16, c, (stop - start) * length), dtype=x.dtype)
        _input_transform(x[start:stop], v, *pads, th, tw, 0, (stop - start) * c)
        m = np.matmul(u, v)                                        # (16, C_out, tiles)
        _output_transform(m, bias, z[start:stop], th, tw, 0, (stop - start) * c_out)

    conv_compiled.over_blocks(block, _image_blocks(n, c, c_out, length, x.itemsize))
    return z, u, x


def gradients(dz: np.ndarray, u: np.ndarray, x: np.ndarray, pads: tuple[int, int],
              need_dx: bool, need_dw: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(dX, dK)`` of :func:`correlate` (each None unless asked for) from the ``X`` it kept,
    in the same blocks of images: a block's ``V`` is transformed again for its share of dK
    (summed over the blocks afterwards, in block order: the same sum for any number of
    threads), and ``dV`` is written over it."""
    n, c_out = dz.shape[:2]
    c = x.shape[1]
    th, tw = tiles(dz.shape[2:])
    length = th * (tw + 1)
    dz = np.ascontiguousarray(dz)
    bounds = _image_blocks(n, c, c_out, length, dz.itemsize)
    parts = np.empty((len(bounds) - 1, 16, c_out, c), dtype=dz.dtype) if need_dw else None
    dx = np.empty(x.shape, dtype=dz.dtype) if need_dx else None
    ut = u.transpose(0, 2, 1)

    def block(start: int, stop: int) -> None:
        dm = np.empty((16, c_out, (stop - start) * length), dtype=dz.dtype)
        _output_grad_transform(dz[start:stop], dm, th, tw, 0, (stop - start) * c_out)
        v = np.empty((16, c, (stop - start) * length), dtype=dz.dtype)
        if need_dw:
            _input_transform(x[start:stop], v, *pads, th, tw, 0, (stop - start) * c)
            np.matmul(dm, v.transpose(0, 2, 1), out=parts[bounds.index(start)])
        if need_dx:
            np.matmul(ut, dm, out=v)                               # dV, over V
            _input_grad_transform(v, dx[start:stop], *pads, th, tw, 0, (stop - start) * c)

    conv_compiled.over_blocks(block, bounds)
    dk = None
    if need_dw:
        du = conv_compiled.sum_in_order(parts)
        g = G.astype(dz.dtype)
        dk = np.einsum("ia,ijoc,jb->ocab", g, du.reshape(4, 4, *du.shape[1:]), g,
                       optimize=True)
    return dx, dk


def _phase_slices(d: tuple[int, int], offset: tuple[int, int], shape: tuple[int, int]):
    """For each phase ``(α, β)``: its image block, the slices of a ``shape`` plane placed at
    ``offset`` that fall in it, and where they start in the phase."""
    for alpha in range(d[0]):
        for beta in range(d[1]):
            r0, c0 = (alpha - offset[0]) % d[0], (beta - offset[1]) % d[1]
            rows, cols = slice(r0, shape[0], d[0]), slice(c0, shape[1], d[1])
            count = (len(range(shape[0])[rows]), len(range(shape[1])[cols]))
            at = ((r0 + offset[0]) // d[0], (c0 + offset[1]) // d[1])
            yield alpha * d[1] + beta, rows, cols, (slice(at[0], at[0] + count[0]),
                                                    slice(at[1], at[1] + count[1]))


def to_phases(a: np.ndarray, d: tuple[int, int], size: tuple[int, int],
              offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``(N, C, H, W) -> (d_h·d_w·N, C, *size)``: with ``a`` placed at ``offset`` in a plane of
    zeros, image ``(α·d_w + β)·N + n`` is that plane's phase ``[α::d_h, β::d_w]``."""
    n = a.shape[0]
    q = np.zeros((d[0] * d[1] * n, a.shape[1], *size), dtype=a.dtype)
    for block, rows, cols, at in _phase_slices(d, offset, a.shape[2:]):
        parallel.copyto(q[block * n:(block + 1) * n, :, at[0], at[1]], a[:, :, rows, cols])
    return q


def from_phases(q: np.ndarray, d: tuple[int, int], size: tuple[int, int],
                offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The inverse of :func:`to_phases`: ``(d_h·d_w·N, C, h, w) -> (N, C, *size)``, the phases
    interleaved into a plane and the part of ``size`` at ``offset`` cut out."""
    n = q.shape[0] // (d[0] * d[1])
    out = np.empty((n, q.shape[1], *size), dtype=q.dtype)
    for block, rows, cols, at in _phase_slices(d, offset, size):
        parallel.copyto(out[:, :, rows, cols], q[block * n:(block + 1) * n, :, at[0], at[1]])
    return out


def _phase_sizes(padded: tuple[int, int], d: tuple[int, int]) -> tuple[int, int]:
    return -(-padded[0] // d[0]), -(-padded[1] // d[1])


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pads, mode: str,
            dilation: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The layer's forward, any padding mode and dilation: ``X (N, C, H, W)`` -> ``(Z, U, S)``,
    ``S`` the input as the kernels read it (for :func:`backward`: ``X``, padded unless the
    padding is zeros, in phases when dilated).

    ``pads`` is ``((p_top, p_bottom), (p_left, p_right))``, ``mode`` as ``pad.pad_forward``."""
    padded = (x.shape[2] + sum(pads[0]), x.shape[3] + sum(pads[1]))
    if dilation == (1, 1):
        out = (padded[0] - 2, padded[1] - 2)
        if mode == "constant":                     # the kernels pad with zeros themselves
            return correlate(x, w, b, (pads[0][0], pads[1][0]), out)
        return correlate(pad_forward(x, pads, mode)[0], w, b, (0, 0), out)
    out = (padded[0] - 2 * dilation[0], padded[1] - 2 * dilation[1])
    sizes = _phase_sizes(padded, dilation)
    if mode == "constant":
        xq = to_phases(x, dilation, sizes, (pads[0][0], pads[1][0]))
    else:
        xq = to_phases(pad_forward(x, pads, mode)[0], dilation, sizes)
    zq, u, xq = correlate(xq, w, b, (0, 0), (sizes[0] - 2, sizes[1] - 2))
    return from_phases(zq, dilation, out), u, xq


def backward(dz: np.ndarray, u: np.ndarray, x: np.ndarray, pad_cache: PadCache,
             dilation: tuple[int, int], need_dx: bool, need_dw: bool
             ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(dX, dK)`` of :func:`forward` (each None unless asked for) from the ``U`` and ``X`` it
    returned."""
    (h, w), pads = pad_cache.in_shape[2:], pad_cache.pads
    padded = (h + sum(pads[0]), w + sum(pads[1]))
    zero = pad_cache.mode == "constant"            # then dXp is cropped on the way out
    if dilation == (1, 1):
        if zero:
            return gradients(dz, u, x, (pads[0][0], pads[1][0]), need_dx, need_dw)
        dxp, dk = gradients(dz, u, x, (0, 0), need_dx, need_dw)
    else:
        sizes = _phase_sizes(padded, dilation)
        dzq = to_phases(dz, dilation, (sizes[0] - 2, sizes[1] - 2))
        dxq, dk = gradients(dzq, u, x, (0, 0), need_dx, need_dw)
        if need_dx and zero:
            return from_phases(dxq, dilation, (h, w), (pads[0][0], pads[1][0])), dk
        dxp = from_phases(dxq, dilation, padded) if need_dx else None
    dx = np.ascontiguousarray(pad_backward(dxp, pad_cache)) if need_dx else None
    return dx, dk
