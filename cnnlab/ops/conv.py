"""N-dimensional convolution (cross-correlation) and its transpose, forward and backward.

One implementation serves 1-, 2- and 3-D: ``nd = w.ndim - 2`` spatial axes. Arguments arrive
normalised (tuples of length ``nd``, padding as ``(before, after)`` pairs); the functional layer
checks them.

Notation (per spatial axis, multi-indices for nd > 1): input ``X (N, C, *S)``, padded input
``Xp``, weight ``K (C_out, C/G, *k)``, bias ``B (C_out,)``, stride ``s``, dilation ``d``,
``G`` groups, output ``Z (N, C_out, *O)``, ``O = floor((S + p_begin + p_end - d*(k-1) - 1)/s) + 1``.

Algorithm: im2col + GEMM in a batch-last layout. The padded input is copied once into
``(C, *S_padded, N)``; its windows are a zero-copy strided view ``(C, *k, *O, N)``; one more copy
makes them the matrix ``cols (G, C/G*prod(k), prod(O)*N)`` and one GEMM per group with the weight
matrix ``(G, C_out/G, C/G*prod(k))`` gives ``Z``. With the batch axis last, each row of ``cols``
is built from long contiguous runs, the forward pass and ``dK`` are single large GEMMs (which
BLAS spreads over all cores), and the col2im adds of ``dX`` run over contiguous rows — measured
2-3× faster than the ``(N, C, *S)`` layout for LeNet's layers (benchmarks/RESULTS.md).

Other algorithms, chosen per layer by :func:`choose_algorithm` (a fixed rule of the shapes):
``"rows"`` (2-D, stride 1, deep layers) copies only the last axis' taps and runs one GEMM per
tap row; ``"fft"`` (``conv_fft``) for filtering-sized kernels; ``"depthwise"``
(``conv_direct``) for depthwise layers. All compute the same sums; tests hold each to the loop
reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from . import conv_compiled, conv_direct, conv_fft, conv_winograd, kernels, parallel, pool_compiled
from .activation import relu_backward, relu_forward
from .pad import PadCache, pad_backward, pad_forward
from .pool import MaxPoolCache, max_pool_backward, max_pool_forward
from .shapes import Pairs, conv_output_sizes, conv_transpose_output_size
from .windows import col2im, sliding_windows

ALGORITHMS = ("gemm", "rows", "fft", "depthwise", "direct", "winograd", "image_gemm")
FFT_MIN_TAPS = 49               # kernels with at least this many taps (7×7) ...
FFT_MAX_CHANNEL_PAIRS = 16      # ... and at most this many (input, output) channel pairs
ROWS_MIN_DEPTH = 64             # 2-D, stride 1: "rows" when C_in * k_w is at least this ...
ROWS_MIN_SIZE = 24              # ... and the input at least this high and wide
DIRECT_MAX_CHANNELS = 3         # compiled direct loops: at most this many input channels a group
DIRECT_MAX_OUTPUTS = 8          # ... and, with one group, at most this many output channels
WINOGRAD_MIN_CHANNELS = 16      # compiled Winograd F(4×4, 3×3): at least this many input channels
WINOGRAD_MIN_SIZE = 12          # ... and an input (a dilation phase) at least this high and wide
WINOGRAD_FUSED_MIN_SIZE = 28    # ... at least this when image_gemm could fuse a ReLU after it


def choose_algorithm(c_in: int, c_out: int, kernel: tuple[int, ...], stride: tuple[int, ...],
                     groups: int, size: tuple[int, ...] = (),
                     dilation: tuple[int, ...] = (), relu_after: bool = False) -> str:
    """The convolution algorithm for a layer's geometry, one of :data:`ALGORITHMS`.

    The choice is a fixed rule of the shapes, never a timing, so a run repeats bit for bit
    on any machine. The FFT's cost does not grow with the kernel, while im2col copies every
    input pixel once per tap (121 times for 11×11); but its per-frequency channel sums are
    slower than a GEMM's. So: the FFT for image filtering (at least ``FFT_MIN_TAPS`` taps,
    at most ``FFT_MAX_CHANNEL_PAIRS`` channel pairs, stride 1, one group); the direct tap loop
    of ``conv_direct`` for depthwise layers (``groups = C_in = C_out > 1``), where a GEMM
    per channel would be a matrix-vector product; ``"rows"`` for 2-D, stride-1, one-group
    layers whose rows are deep enough (``C_in * k_w >= ROWS_MIN_DEPTH``) that ``k_h`` GEMMs
    cost little more than one and whose input ``size`` (height, width) is large enough
    (``ROWS_MIN_SIZE``) that copying ``k_w`` instead of ``k_h * k_w`` windows pays;
    im2col + GEMM for everything else (the measured crossovers are in benchmarks/RESULTS.md).

    Where the compiled kernels are in use (``kernels.use_compiled()``), 1-D and 2-D stride-1
    layers that are depthwise, or read at most ``DIRECT_MAX_CHANNELS`` input channels per
    group and (with one group) write at most ``DIRECT_MAX_OUTPUTS`` channels (LeNet's first
    layer, image filtering) take ``"direct"`` (``conv_compiled``): there a GEMM is too small
    to pay for copying the windows (measured, forward + backward: 1→6 5×5 1.5× faster than
    ``"image_gemm"``, 1→8 1.2×, 1→16 1.15× slower, 3→32 3×3 1.6× slower). 3×3 layers with stride
    1, one group, at least ``WINOGRAD_MIN_CHANNELS`` input channels and an input at least
    ``WINOGRAD_MIN_SIZE`` high and wide (with ``dilation``, each of its ``d_h·d_w`` phase
    planes, ``size // dilation``) take ``"winograd"`` (``conv_winograd``, F(4×4, 3×3)): 4 times
    fewer multiply-adds than a GEMM over the windows, which pays once the channel sums outweigh
    its transforms and the planes are large enough that the transforms' per-plane work and the
    extra column of tiles cost little. The thresholds were measured with F(2×2, 3×3) (forward
    + backward against ``"image_gemm"``, both in blocks of images that fit the L2 cache, Intel
    Xeon with AVX-512, same process: 16->16 at 32×32 1.36× faster, 16->16 at 16×16 1.22×,
    32->32 at 16×16 1.33×, at 12×12 1.07×, at 11×11 0.91× (slower), 16->32 at 14×14 1.09×,
    32->64 1.04×, 64->64 1.29×, 64->64 at 10×10 1.01×, 128->128 at 8×8 0.86×; with fewer
    channels mixed: 8->8 at 32×32 1.30×, at 14×14 0.93×, 4->8 at 32×32 1.21×, 6->16 1.14×,
    4->16 at 28×28 0.97×, 3->32 at 32×32 0.87×) and checked again with F(4×4, 3×3): 32->32 at
    32×32 1.33×, 64->64 at 56×56 1.69×, 32->32 at 14×14 1.16×, 16->16 at 16×16 1.20×, 32->32
    at 12×12 1.02×, and dilation 2 at 32×32 (16×16 phases) 1.22× (0.69× with F(2×2, 3×3) and
    the phases copied out, which kept dilated layers off Winograd before).
    A layer whose ReLU (and 2×2 max pooling) follows it (``relu_after``:
    :func:`conv_relu_forward`) takes Winograd only on planes at least
    ``WINOGRAD_FUSED_MIN_SIZE`` wide, as ``"image_gemm"`` applies the ReLU and the pooling to
    each plane in the cache while Winograd runs them as passes of their own (conv + ReLU +
    pooling, Winograd against fused image_gemm: 24->32 at 28×28 1.17× faster, 32->32 at 32×32
    1.12×, 64->64 at 28×28 1.17×, at 56×56 1.10×; but 16->32 at 24×24 0.97×, 32->64 at 16×16
    0.84×, 16->32 at 14×14 0.74×, 32->64 0.92×; measured with F(2×2, 3×3)). Other 1-D and
    2-D layers of one group (strided ones, LeNet's second layer, 1×1, 3×3 with fewer channels
    or smaller planes) take ``"image_gemm"``
    (``conv_compiled``): im2col + GEMM in the ``(N, C, H, W)`` layout, without the batch-last
    transposes, in blocks of images whose window matrix fits a core's L2 cache (kept for dK
    only while the batch's is small: ``conv_compiled.KEEP_WINDOWS_BYTES``); the FFT keeps the
    layers of its rule.
    """
    if _forced:
        return _forced[-1]
    depthwise = groups == c_in == c_out > 1
    stride_1 = all(s == 1 for s in stride)
    compiled = len(kernel) <= 2 and kernels.use_compiled()
    if compiled and stride_1:
        if depthwise or (c_in // groups <= DIRECT_MAX_CHANNELS
                         and (groups > 1 or c_out <= DIRECT_MAX_OUTPUTS)):
            return "direct"
        min_size = WINOGRAD_FUSED_MIN_SIZE if relu_after else WINOGRAD_MIN_SIZE
        phase = [n // d for n, d in zip(size, dilation or (1,) * len(size))]
        if (kernel == (3, 3) and groups == 1 and c_in >= WINOGRAD_MIN_CHANNELS
                and len(size) == 2 and min(phase) >= min_size):
            return "winograd"
    fft = (groups == 1 and stride_1 and math.prod(kernel) >= FFT_MIN_TAPS
           and c_in * c_out <= FFT_MAX_CHANNEL_PAIRS)
    if compiled and groups == 1 and not fft:
        return "image_gemm"
    if depthwise:
        return "depthwise"
    if fft:
        return "fft"
    if (groups == 1 and len(kernel) == 2 and all(s == 1 for s in stride)
            and c_in * kernel[-1] >= ROWS_MIN_DEPTH and len(size) == 2
            and min(size) >= ROWS_MIN_SIZE):
        return "rows"
    return "gemm"


_forced: list[str] = []


@contextmanager
def forced_algorithm(algorithm: str) -> Iterator[None]:
    """Within the block every convolution uses ``algorithm`` (tests and comparisons).

    >>> import numpy as np
    >>> with forced_algorithm("fft"):
    ...     z, cache = conv_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), None, (1, 1),
    ...                             ((0, 0), (0, 0)), (1, 1))
    >>> cache.algorithm, z.round(6).ravel().tolist()
    ('fft', [9.0, 9.0, 9.0, 9.0])
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"forced_algorithm: expected one of {ALGORITHMS}, received "
                         f"{algorithm!r}.")
    _forced.append(algorithm)
    try:
        yield
    finally:
        _forced.pop()


def _padding_fused(algorithm: str, groups: int, w_shape: tuple[int, ...], mode: str) -> bool:
    """Whether the compiled depthwise kernels run, which pad with zeros themselves: the
    ``"direct"`` algorithm on a depthwise layer (``C/G = 1`` and ``groups = C_out``) padded
    with zeros. ``ConvCache.saved`` then holds ``X``, not ``Xp``."""
    return (algorithm == "direct" and mode == "constant" and w_shape[1] == 1
            and groups == w_shape[0])


class ConvCache(NamedTuple):
    saved: np.ndarray           # gemm: cols (G, C/G*prod(k), prod(O)*N), the windows of Xp as a
    #                             matrix; fft: ℱXp (C, *F, N); depthwise, direct: Xp (N, C, *Sp);
    #                             compiled depthwise with zero padding: X (N, C, *S); winograd:
    #                             X (N, C, *S) (Xp when the padding is not zeros, in phases
    #                             when dilated); image_gemm: X (N, C, *S) (Xp when the padding
    #                             is not zeros)
    w: np.ndarray               # the kernel actually applied (already flipped if asked)
    padded: tuple[int, ...]     # spatial sizes of Xp
    pad_cache: PadCache
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    flip_kernel: bool
    algorithm: str = "gemm"
    fft: tuple | None = None    # fft: (plan, ℱK)
    transformed: np.ndarray | None = None   # winograd: the transformed kernels U (36, C_out, C)
    windows: list | None = None             # image_gemm: its window matrices, kept for dK


def _flip(w: np.ndarray) -> np.ndarray:
    """rot180 of every kernel: reverse all spatial axes of ``(C_out, C_in/G, *k)``."""
    return w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)]


def _batch_last(x: np.ndarray, pads: Pairs = (), mode: str = "constant"
                ) -> tuple[np.ndarray, PadCache]:
    """``(N, C, *S) -> (C, *S_padded, N)``, contiguous: one copy that also pads."""
    nd = x.ndim - 2
    pads = pads or ((0, 0),) * nd
    cache = PadCache(x.shape, pads, mode)
    moved = np.moveaxis(x, 0, -1)                                  # (C, *S, N) view
    if mode != "constant":
        xp, cache = pad_forward(x, pads, mode)
        return parallel.contiguous(np.moveaxis(xp, 0, -1)), cache
    padded = tuple(n + pb + pe for n, (pb, pe) in zip(x.shape[2:], pads))
    xt = np.zeros((x.shape[1], *padded, x.shape[0]), dtype=x.dtype)
    interior = tuple(slice(pb, pb + n) for n, (pb, _) in zip(x.shape[2:], pads))
    parallel.copyto(xt[(slice(None), *interior)], moved)
    return xt, cache


def _batch_first(yt: np.ndarray) -> np.ndarray:
    """``(C, *S, N) -> (N, C, *S)``, contiguous."""
    return parallel.contiguous(np.moveaxis(yt, -1, 0))


def _valid_sizes(padded: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 dilation: tuple[int, ...]) -> tuple[int, ...]:
    """``O``: the output sizes over an input that is already padded."""
    return conv_output_sizes(padded, kernel, stride, ((0, 0),) * len(padded), dilation)


def _im2col(xt: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...],
            dilation: tuple[int, ...], groups: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """``Xp (C, *S, N) -> cols (G, C/G*prod(k), prod(O)*N)`` (one copy) and ``O``."""
    out = _valid_sizes(xt.shape[1:-1], kernel, stride, dilation)
    windows = sliding_windows(xt, kernel, stride, dilation, out, trail=1)   # (C, *k, *O, N)
    c, n = xt.shape[0], xt.shape[-1]
    return windows.reshape(groups, c // groups * math.prod(kernel), math.prod(out) * n), out


def _correlate(xt: np.ndarray, w: np.ndarray, stride: tuple[int, ...],
               dilation: tuple[int, ...], groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Valid cross-correlation ``Z = K ⋆ Xp`` of a padded batch-last input; returns ``Z, cols``.

    ``Z`` comes back in the usual ``(N, C_out, *O)`` layout.
    """
    cols, out = _im2col(xt, w.shape[2:], stride, dilation, groups)
    wm = w.reshape(groups, w.shape[0] // groups, -1)              # (G, C_out/G, C/G*k)
    # (G, C_out/G, C/G*k) @ (G, C/G*k, O*N) -> (G, C_out/G, O*N)
    zt = parallel.matmul(wm, cols)
    return _batch_first(zt.reshape(w.shape[0], *out, xt.shape[-1])), cols   # (N, C_out, *O)


def _input_grad(dzt: np.ndarray, w: np.ndarray, padded: tuple[int, ...],
                stride: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> np.ndarray:
    """``dXp = (dZ dilated by s, zero-padded by d*(k-1)) ⋆ rot180(K)``, computed as col2im(Kᵀ dZ).

    Both sides are the same sum ``dXp[i] = Σ_{o,k: o*s + k*d = i} dZ[o] K[k]``; scattering the
    products ``Kᵀ dZ`` over the windows (col2im) skips the zeros that dilating dZ inserts.
    Batch-last in and out: ``dZ (C_out, *O, N) -> dXp (C, *S_padded, N)``.
    """
    c_out, kernel = w.shape[0], w.shape[2:]
    wm = w.reshape(groups, c_out // groups, -1)                    # (G, C_out/G, C/G*k)
    dz3 = dzt.reshape(groups, c_out // groups, -1)                 # (G, C_out/G, O*N)
    # (G, C/G*k, C_out/G) @ (G, C_out/G, O*N) -> (G, C/G*k, O*N)
    dcols = parallel.matmul(wm.transpose(0, 2, 1), dz3)
    dcols = dcols.reshape(w.shape[1] * groups, *kernel, *dzt.shape[1:])    # (C, *k, *O, N)
    return col2im(dcols, padded, kernel, stride, dilation, trail=1)        # (C, *S_padded, N)


def _weight_grad(dzt: np.ndarray, cols: np.ndarray, w_shape: tuple[int, ...],
                 groups: int) -> np.ndarray:
    """``dK = Xp ⋆ dZ``: ``dK[g] = dZ[g] @ cols[g]ᵀ``, one GEMM per group -> ``(C_out, C/G, *k)``.

    ``(G, C_out/G, O*N) @ (G, O*N, C/G*k)``: the sum over the batch and all output positions.
    """
    dz3 = dzt.reshape(groups, w_shape[0] // groups, -1)            # (G, C_out/G, O*N)
    return parallel.matmul(dz3, cols.transpose(0, 2, 1)).reshape(w_shape)


def _row_windows(xt: np.ndarray, kernel: tuple[int, ...], dilation: tuple[int, ...]
                 ) -> np.ndarray:
    """``Xp (C, Hp, Wp, N) -> R (C, k_w, Hp, O_w, N)``, ``R[c, b, i, j] = Xp[c, i, j + b*d_w]``:
    im2col of the last axis only (``k_w`` copies of the input instead of ``k_h*k_w``)."""
    c, hp, wp, n = xt.shape
    kw, d = kernel[-1], dilation[-1]
    ow = wp - d * (kw - 1)
    r = np.empty((c, kw, hp, ow, n), dtype=xt.dtype)
    for b in range(kw):
        parallel.copyto(r[:, b], xt[:, :, b * d:b * d + ow])
    return r


def _row_taps(r: np.ndarray, kh: int, dh: int) -> Iterator[np.ndarray]:
    """For each tap ``a`` of the first axis, the matrix ``(C*k_w, O_h*O_w*N)`` of the windows
    that tap reads: rows ``a*d_h ... a*d_h + O_h - 1`` of ``R``, a strided view BLAS takes as
    it is (no copy)."""
    c, kw, hp, ow, n = r.shape
    oh, step = hp - dh * (kh - 1), ow * n
    m = r.reshape(c * kw, hp * step)
    for a in range(kh):
        yield m[:, a * dh * step:(a * dh + oh) * step]


def _rows_correlate(xt: np.ndarray, w: np.ndarray, dilation: tuple[int, ...]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """2-D, stride 1, one group: ``Z = Σ_a K[:, :, a, :] @ R_a`` -> ``Z (C_out, O_h, O_w, N), R``.

    The same sum as im2col + GEMM (``k_h`` GEMMs of depth ``C*k_w`` instead of one of depth
    ``C*k_h*k_w``) with a third of the copying for 3×3 kernels.
    """
    c_out, _, kh, kw = w.shape
    r = _row_windows(xt, w.shape[2:], dilation)
    # (k_h, C_out, C*k_w): the weights of each tap row as a matrix
    wa = np.ascontiguousarray(w.transpose(2, 0, 1, 3)).reshape(kh, c_out, -1)
    z = None
    for a, taps in enumerate(_row_taps(r, kh, dilation[0])):
        part = parallel.matmul(wa[a], taps)                       # (C_out, O_h*O_w*N)
        if z is None:
            z = part
        else:
            parallel.add(z, part)
    oh = r.shape[2] - dilation[0] * (kh - 1)
    return z.reshape(c_out, oh, r.shape[3], r.shape[4]), r


def _rows_weight_grad(dzt: np.ndarray, r: np.ndarray, w_shape: tuple[int, ...],
                      dilation: tuple[int, ...]) -> np.ndarray:
    """``dK[:, :, a, :] = dZ @ R_aᵀ`` for each tap row ``a`` -> ``(C_out, C, k_h, k_w)``."""
    c_out, c, kh, kw = w_shape
    dz2 = dzt.reshape(c_out, -1)
    dw = np.empty((kh, c_out, c * kw), dtype=dzt.dtype)
    for a, taps in enumerate(_row_taps(r, kh, dilation[0])):
        dw[a] = parallel.matmul(dz2, taps.T)
    return np.ascontiguousarray(dw.reshape(kh, c_out, c, kw).transpose(1, 2, 0, 3))


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: tuple[int, ...],
                 pads: Pairs, dilation: tuple[int, ...], groups: int = 1,
                 padding_mode: str = "zeros", flip_kernel: bool = False,
                 algorithm: str | None = None, epilogue: str = "none",
                 index: np.ndarray | None = None, keep_windows: bool = False
                 ) -> tuple[np.ndarray, ConvCache]:
    """Convolution layer forward: ``Z = K ⋆ pad(X) + B``.

    ``Z[n, o, i] = B[o] + Σ_{c ∈ group(o)} Σ_k Xp[n, c, i*s + k*d] · K[o, c mod C/G, k]``

    ``flip_kernel=True`` applies ``rot180(K)`` instead (the mathematical convolution).
    ``padding_mode`` is ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
    ``algorithm`` is ``"gemm"`` (im2col + GEMM), ``"fft"`` (stride 1, one group; see
    ``conv_fft``), ``"depthwise"`` (see ``conv_direct``) or None for the rule of
    :func:`choose_algorithm`; all give the same numbers up to rounding, and the backward pass
    uses the forward's algorithm. ``epilogue`` and ``index`` serve :func:`conv_relu_forward`
    (the compiled kernels of ``"direct"`` and ``"image_gemm"`` only); the cache is then still
    that of ``Z``, for the backward pass of ``dZ``. ``keep_windows`` (when dK will be asked
    for): ``"image_gemm"`` keeps its window matrices for it if they are small enough
    (``conv_compiled.KEEP_WINDOWS_BYTES``), the same numbers as building them again.

    Shapes: ``x (N, C, *S)``, ``w (C_out, C/G, *k)``, ``b (C_out,)`` -> ``(N, C_out, *O)``.
    """
    nd = w.ndim - 2
    kernel = _flip(w) if flip_kernel else w
    algorithm = algorithm or choose_algorithm(x.shape[1], w.shape[0], w.shape[2:], stride,
                                              groups, x.shape[2:], dilation)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"conv_forward: algorithm must be one of {ALGORITHMS} or None, "
                         f"received {algorithm!r}.")
    if algorithm == "fft" and (groups != 1 or any(s != 1 for s in stride)):
        raise ValueError(f"conv_forward: the FFT algorithm needs stride 1 and one group, "
                         f"received stride {stride} and groups {groups}.")
    if algorithm == "rows" and (groups != 1 or nd != 2 or any(s != 1 for s in stride)):
        raise ValueError(f"conv_forward: the rows algorithm needs a 2-D kernel, stride 1 and "
                         f"one group, received kernel {w.shape[2:]}, stride {stride} and "
                         f"groups {groups}.")
    if algorithm == "direct" and (nd > 2 or any(s != 1 for s in stride)):
        raise ValueError(f"conv_forward: the direct algorithm needs a 1-D or 2-D kernel and "
                         f"stride 1, received kernel {w.shape[2:]} and stride {stride}.")
    if algorithm == "winograd" and (w.shape[2:] != (3, 3) or groups != 1
                                    or any(s != 1 for s in stride)):
        raise ValueError(f"conv_forward: the winograd algorithm needs a 3×3 kernel, stride 1 "
                         f"and one group, received kernel {w.shape[2:]}, stride {stride} and "
                         f"groups {groups}.")
    if algorithm == "image_gemm" and (nd > 2 or groups != 1):
        raise ValueError(f"conv_forward: the image_gemm algorithm needs a 1-D or 2-D kernel "
                         f"and one group, received kernel {w.shape[2:]} and groups {groups}.")
    if epilogue != "none" and not _has_epilogue(algorithm, groups, w.shape, padding_mode):
        raise ValueError(f"conv_forward: an epilogue needs the direct algorithm (not a "
                         f"depthwise layer) or image_gemm with zero padding, received "
                         f"{algorithm!r} with padding mode {padding_mode!r}.")
    if algorithm == "depthwise" and not groups == x.shape[1] == w.shape[0]:
        raise ValueError(f"conv_forward: the depthwise algorithm needs groups = input "
                         f"channels = output channels, received groups {groups}, "
                         f"{x.shape[1]} input and {w.shape[0]} output channels.")
    mode = "constant" if padding_mode == "zeros" else padding_mode
    fft = u = windows = None
    fused = _padding_fused(algorithm, groups, w.shape, mode)
    if algorithm in ("winograd", "image_gemm") or fused:
        # compiled, in the (N, C, *S) layout: the kernels pad with zeros as they go
        pad_cache = PadCache(x.shape, pads, mode)
        padded = tuple(n + pb + pe for n, (pb, pe) in zip(x.shape[2:], pads))
        if algorithm == "winograd":
            z, u, saved = conv_winograd.forward(x, kernel, b, pads, mode, dilation)
        elif fused:                                # depthwise: ConvCache.saved is X itself
            saved = x
            out = _valid_sizes(padded, w.shape[2:], stride, dilation)
            z = conv_compiled.depthwise_forward(x, kernel, b, pads, out, dilation)
        elif mode == "constant":                   # image_gemm
            z, saved, windows = conv_compiled.image_gemm_forward(
                x, kernel, b, pads, stride, dilation, epilogue, index, keep_windows)
        else:                                      # other padding modes pad first
            z, saved, windows = conv_compiled.image_gemm_forward(
                pad_forward(x, pads, mode)[0], kernel, b, ((0, 0),) * nd, stride, dilation,
                keep_windows=keep_windows)
    elif algorithm in ("depthwise", "direct"):     # in the (N, C, *S) layout, no transposes
        saved, pad_cache = pad_forward(x, pads, mode)              # Xp (N, C, *S_padded)
        padded = saved.shape[2:]
        out = _valid_sizes(padded, w.shape[2:], stride, dilation)
        if algorithm == "depthwise":
            z = conv_direct.correlate(saved, kernel, b, out, stride, dilation)  # (N, C, *O)
        else:
            z = conv_compiled.correlate(saved, kernel, b, dilation, epilogue, index)
    else:
        xt, pad_cache = _batch_last(x, pads, mode)                 # (C, *S_padded, N)
        padded = xt.shape[1:-1]
        if algorithm == "fft":
            plan = conv_fft.make_plan(padded, w.shape[2:], dilation)
            wf = conv_fft.kernel_spectrum(kernel, plan, dilation)  # (C_out, C, *F)
            zt, saved = conv_fft.correlate(xt, wf, plan)           # (C_out, *O, N)
            z, fft = _batch_first(zt), (plan, wf)
        elif algorithm == "rows":
            zt, saved = _rows_correlate(xt, kernel, dilation)      # (C_out, *O, N)
            z = _batch_first(zt)
        else:
            z, saved = _correlate(xt, kernel, stride, dilation, groups)    # (N, C_out, *O)
    if b is not None and algorithm in ("gemm", "rows", "fft"):    # the others added it
        z += b.reshape((-1,) + (1,) * nd)
    cache = ConvCache(saved, kernel, padded, pad_cache, stride, dilation, groups,
                      flip_kernel, algorithm, fft, u, windows)
    return z, cache


def _has_epilogue(algorithm: str, groups: int, w_shape: tuple[int, ...],
                  padding_mode: str) -> bool:
    """Whether the algorithm's compiled forward applies an epilogue (the direct kernel outside
    the depthwise kernels, image_gemm with zero padding). Strides for direct, groups for
    image_gemm and 3-D kernels for both ``conv_forward`` refuses itself."""
    mode = "constant" if padding_mode == "zeros" else padding_mode
    return ((algorithm == "direct" and not _padding_fused(algorithm, groups, w_shape, mode))
            or (algorithm == "image_gemm" and mode == "constant"))


class ConvReluCache(NamedTuple):
    """What :func:`conv_relu_backward` needs: the convolution's cache; ``y``, the ReLU's
    output (its positive values are where the gradient goes through), or with the fused
    pooling the pooled output; and the pooling's positions: ``index`` from the fused kernels
    (int32, shaped as the output), or ``pool``, the pooling layer's own cache, where the
    layers ran in turn."""
    conv: ConvCache
    y: np.ndarray
    index: np.ndarray | None
    pool: MaxPoolCache | None
    sizes: tuple[int, ...]                         # Z's spatial size (before the pooling)


def conv_relu_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                      stride: tuple[int, ...], pads: Pairs, dilation: tuple[int, ...],
                      groups: int = 1, padding_mode: str = "zeros", pool2: bool = False,
                      keep: bool = False, keep_windows: bool = False
                      ) -> tuple[np.ndarray, ConvReluCache | None]:
    """``ReLU(conv(X))``, and with ``pool2`` its max pooling with kernel and stride 2: the
    values a convolution layer, a ReLU and that pooling layer give run one after another, bit
    for bit; with ``keep``, the cache for :func:`conv_relu_backward` (else None);
    ``keep_windows`` as in :func:`conv_forward`.

    Where the algorithm's compiled forward has an epilogue (``"direct"`` outside the
    depthwise kernels, ``"image_gemm"`` with zero padding), the ReLU and the pooling are
    applied to each plane of ``Z`` while it is in the cache, and the full-size ``Z`` is never
    written: one pass over the activations fewer, or two (the positions of the maxima are
    noted on the way for the backward pass). Otherwise the three run in turn.

    Shapes: ``x (N, C, *S)``, ``w (C_out, C/G, *k)`` -> ``(N, C_out, *O)`` (``pool2``: 2-D
    only, ``O`` halved, rounded down).
    """
    if pool2 and w.ndim != 4:
        raise ValueError(f"conv_relu_forward: pool2 needs a 2-D convolution, received a kernel "
                         f"of shape {w.shape}.")
    algorithm = choose_algorithm(x.shape[1], w.shape[0], w.shape[2:], stride, groups,
                                 x.shape[2:], dilation, relu_after=True)
    fused = _has_epilogue(algorithm, groups, w.shape, padding_mode)
    sizes = _valid_sizes(tuple(n + pb + pe for n, (pb, pe) in zip(x.shape[2:], pads)),
                         w.shape[2:], stride, dilation)
    index = pool = None
    if fused:
        if pool2 and keep:
            index = np.empty((x.shape[0], w.shape[0], sizes[0] // 2, sizes[1] // 2), np.int32)
        y, cache = conv_forward(x, w, b, stride, pads, dilation, groups, padding_mode,
                                algorithm=algorithm,
                                epilogue="relu_pool2" if pool2 else "relu", index=index,
                                keep_windows=keep_windows)
    else:
        z, cache = conv_forward(x, w, b, stride, pads, dilation, groups, padding_mode,
                                algorithm=algorithm, keep_windows=keep_windows)
        y, _ = relu_forward(z)
        if pool2:
            out, pool = max_pool_forward(y, (2, 2), (2, 2), (0, 0), (1, 1), keep_index=keep)
            return out, (ConvReluCache(cache, y, None, pool, sizes) if keep else None)
    return y, (ConvReluCache(cache, y, index, None, sizes) if keep else None)


def _takes_pooled(cache: ConvReluCache, dy: np.ndarray, need_dx: bool, need_dw: bool) -> bool:
    """Whether the backward kernels take dZ as a ``conv_compiled.PooledGradient`` (laid out
    by them in one pass, never written full size): image_gemm when it computes dX or dK, the
    direct kernels when they compute dK alone (their dX pads a full dZ); ``dY`` of ``Y``'s
    dtype, C-contiguous. LeNet-5's training step at batch 64, same process, Intel Xeon: 3.84 ->
    3.53 ms (``/tmp/p/abtrain.py``: no ReLU and pooling backward passes, no full-size dZ)."""
    algorithm = cache.conv.algorithm
    return ((algorithm == "image_gemm" and (need_dx or need_dw)
             or algorithm == "direct" and need_dw and not need_dx)
            and dy.dtype == cache.y.dtype and dy.flags.c_contiguous)


def conv_relu_backward(dy: np.ndarray, cache: ConvReluCache, need_dx: bool = True,
                       need_dw: bool = True, need_db: bool = True):
    """``(dx, dw, db)`` of :func:`conv_relu_forward` (each None unless asked for): ``dY`` back
    through the pooling (to the position of each maximum), the ReLU (``[y > 0]``) and the
    convolution — with the fused kernels' positions, ``dY·[Y > 0]`` put at each maximum, the
    same numbers as the layers' own backward passes."""
    if cache.index is not None and _takes_pooled(cache, dy, need_dx, need_dw):
        dz = conv_compiled.PooledGradient(dy, cache.y, cache.index, cache.sizes)
    elif cache.index is not None:
        dz = pool_compiled.max_pool_backward(relu_backward(dy, cache.y), cache.index,
                                             cache.sizes)
    elif cache.pool is not None:
        dz = relu_backward(max_pool_backward(dy, cache.pool), cache.y)
    else:
        dz = relu_backward(dy, cache.y)
    return conv_backward(dz, cache.conv, need_dx, need_dw, need_db)


def conv_backward(dz: np.ndarray, cache: ConvCache, need_dx: bool = True, need_dw: bool = True,
                  need_db: bool = True):
    """Gradients of :func:`conv_forward`, the lecture's formulas (``dz`` an array, or from
    :func:`conv_relu_backward` a ``conv_compiled.PooledGradient`` where the kernels take one):

    - ``dK = Xp ⋆ dZ``  (``dK[o, c, k] = Σ_{n,i} dZ[n, o, i] · Xp[n, c, i*s + k*d]``)
    - ``dX = unpad((dZ dilated by s, zero-padded by d*(k-1)) ⋆ rot180(K))``
    - ``dB = Σ_{n,i} dZ[n, :, i]``

    With ``flip_kernel`` the kernel gradient is flipped back onto the parameter. ``unpad`` adds
    the gradient of reflected/replicated/circular border pixels onto the pixels they copy.
    Returns ``(dx, dw, db)``; each is ``None`` unless asked for.
    """
    nd = len(dz.shape) - 2
    dx = dw = db = None
    if _padding_fused(cache.algorithm, cache.groups, cache.w.shape, cache.pad_cache.mode):
        dx, dw, db = conv_compiled.depthwise_backward(dz, cache.saved, cache.w,
                                                      cache.pad_cache.pads, cache.dilation,
                                                      need_dx, need_dw, need_db)
        if dw is not None and cache.flip_kernel:
            dw = np.ascontiguousarray(_flip(dw))
        return dx, dw, db
    summed = (cache.algorithm == "direct" and need_dw                # dB from the kernels'
              or cache.algorithm in ("image_gemm", "winograd")            # pass over dZ
              and (need_dw or need_dx))
    if need_db and not summed:
        db = dz.sum(axis=(0, *range(2, 2 + nd)))                  # (C_out,)
    if not (need_dw or need_dx):
        return dx, dw, db
    algorithm, w, padded, stride, dilation = (cache.algorithm, cache.w, cache.padded,
                                              cache.stride, cache.dilation)
    if algorithm == "winograd":                    # in the (N, C, H, W) layout, no transposes
        dx, dw, db = conv_winograd.backward(dz, cache.transformed, cache.saved,
                                            cache.pad_cache, dilation, need_dx, need_dw,
                                            need_db)
        if need_dw and cache.flip_kernel:
            dw = np.ascontiguousarray(_flip(dw))
        return dx, dw, db
    if algorithm == "image_gemm":                  # in the (N, C, *S) layout, no transposes
        zero = cache.pad_cache.mode == "constant"  # then the kernels crop dXp themselves
        dx, dw, db = conv_compiled.image_gemm_backward(
            dz, cache.saved, w, cache.pad_cache.pads if zero else ((0, 0),) * nd,
            stride, dilation, need_dx, need_dw, cache.windows, need_db)
        if need_dx and not zero:
            dx = np.ascontiguousarray(pad_backward(dx, cache.pad_cache))
        if need_dw and cache.flip_kernel:
            dw = np.ascontiguousarray(_flip(dw))
        return dx, dw, db
    if algorithm == "depthwise":                   # in the (N, C, *S) layout, no transposes
        dxp, dw = conv_direct.gradients(dz, cache.saved, w, stride, dilation, need_dx, need_dw)
    elif algorithm == "direct":                    # likewise; dB on the way, with dK
        dxp, dw, summed_db = conv_compiled.gradients(dz, cache.saved, w, dilation,
                                                     cache.groups, need_dx, need_dw, need_db)
        db = summed_db if summed else db
    elif algorithm == "rows" and need_dx:
        # dXp = (dZ zero-padded by d*(k-1)) ⋆ rot180(K), channels swapped: the forward again.
        reach = tuple((d * (k - 1),) * 2 for k, d in zip(w.shape[2:], dilation))
        dzp, _ = _batch_last(dz, reach)                            # (C_out, *(O + 2r), N)
        if need_dw:
            dzt = parallel.contiguous(dzp[(slice(None), *(slice(p, p + o) for (p, _), o
                                                            in zip(reach, dz.shape[2:])))])
    else:
        dzt, _ = _batch_last(dz)                                   # (C_out, *O, N)
    if need_dw:
        if algorithm == "fft":
            dw = conv_fft.weight_grad(dzt, cache.saved, cache.fft[0], dilation)
        elif algorithm == "rows":
            dw = _rows_weight_grad(dzt, cache.saved, w.shape, dilation)
        elif algorithm == "gemm":
            dw = _weight_grad(dzt, cache.saved, w.shape, cache.groups)
        if cache.flip_kernel:
            dw = np.ascontiguousarray(_flip(dw))
    if need_dx:
        if algorithm == "fft":
            dxp = np.moveaxis(conv_fft.input_grad(dzt, cache.fft[1], cache.fft[0]), -1, 0)
        elif algorithm == "rows":
            dxt, _ = _rows_correlate(dzp, _flip(w).swapaxes(0, 1), dilation)  # (C, *Sp, N)
            dxp = np.moveaxis(dxt, -1, 0)
        elif algorithm == "gemm":
            dxt = _input_grad(dzt, w, padded, stride, dilation, cache.groups)  # (C, *Sp, N)
            dxp = np.moveaxis(dxt, -1, 0)
        dx = np.ascontiguousarray(pad_backward(dxp, cache.pad_cache))
    return dx, dw, db


class ConvTransposeCache(NamedTuple):
    xt: np.ndarray               # the input, batch-last (C_in, *I, N)
    w: np.ndarray
    pads: Pairs
    full: tuple[int, ...]        # spatial size before cropping the padding
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int


def conv_transpose_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                           stride: tuple[int, ...], pads: Pairs,
                           output_padding: tuple[int, ...], dilation: tuple[int, ...],
                           groups: int = 1) -> tuple[np.ndarray, ConvTransposeCache]:
    """Transposed convolution: the input gradient of a convolution whose weight is ``w``.

    ``Y = crop(Σ_k scatter(Kᵀ X)) + B``: every input pixel ``X[n, c, i]`` adds
    ``X[n, c, i] · K[c, o, k]`` at output position ``i*s + k*d - p_begin``. The output size is
    ``(n - 1)*s - p_begin - p_end + d*(k-1) + output_padding + 1``.

    Shapes: ``x (N, C_in, *I)``, ``w (C_in, C_out/G, *k)`` (PyTorch's layout), ``b (C_out,)``
    -> ``(N, C_out, *O)``.
    """
    nd = w.ndim - 2
    kernel = w.shape[2:]
    full = tuple(conv_transpose_output_size(i, k, s, 0, d, op)
                 for i, k, s, d, op in zip(x.shape[2:], kernel, stride, dilation, output_padding))
    xt, _ = _batch_last(x)                                         # (C_in, *I, N)
    yt = _input_grad(xt, w, full, stride, dilation, groups)        # (C_out, *full, N)
    crop = tuple(slice(pb, f - pe) for (pb, pe), f in zip(pads, full))
    y = _batch_first(yt[(slice(None), *crop)])                     # (N, C_out, *O)
    if b is not None:
        y += b.reshape((-1,) + (1,) * nd)
    return y, ConvTransposeCache(xt, w, pads, full, stride, dilation, groups)


def conv_transpose_backward(dy: np.ndarray, cache: ConvTransposeCache, need_dx: bool = True,
                            need_dw: bool = True, need_db: bool = True):
    """Gradients of :func:`conv_transpose_forward`; the roles of the convolution swap:

    - ``dX = K ⋆ pad(dY)`` (an ordinary strided convolution of the output gradient)
    - ``dK = pad(dY) ⋆ X`` (the convolution weight gradient with ``X`` in the role of ``dZ``)
    - ``dB = Σ dY``
    """
    xt, w, pads, full, stride, dilation, groups = cache
    nd = dy.ndim - 2
    dx = dw = db = None
    if need_db:
        db = dy.sum(axis=(0, *range(2, 2 + nd)))
    if need_dx or need_dw:
        # Pad dY back to the uncropped size; positions cut by output_padding read zeros.
        back = tuple((pb, f - pb - n) for (pb, _), f, n in zip(pads, full, dy.shape[2:]))
        dyt, _ = _batch_last(dy, back)                              # (C_out, *full, N)
        # Only the first (I-1)*s + d*(k-1) + 1 positions are reached by some input pixel; the
        # rest (output_padding) would add windows beyond the input.
        reached = tuple(conv_transpose_output_size(i, k, s, 0, d)
                        for i, k, s, d in zip(xt.shape[1:-1], w.shape[2:], stride, dilation))
        dyt = dyt[(slice(None), *(slice(0, r) for r in reached))]
        dx, cols = _correlate(dyt, w, stride, dilation, groups)     # (N, C_in, *I)
        if need_dw:
            dw = _weight_grad(xt, cols, w.shape, groups)
        if not need_dx:
            dx = None
    return dx, dw, db
