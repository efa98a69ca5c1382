"""Depthwise convolution, computed directly: one multiply-add pass per kernel tap.

In a depthwise layer (``groups = C_in = C_out``) each output channel reads one input channel, so
im2col + GEMM degenerates into ``C`` matrix-vector products over a copied window matrix ``k``
times the input's size. Here each tap ``t`` (a multi-index into the kernel) instead adds one
scaled, shifted view of the input, with no window matrix at all (``win_t`` is the strided
view of ``Xp`` that tap ``t`` reads for every output):

- forward ``Z[c] = Σ_t K[c, 0, t] · Xp[c, win_t]``
- ``dK[c, 0, t] = Σ_{i,n} Xp[c, win_t] · dZ[c]``   (the lecture's ``dK = X ⋆ dZ``, tap by tap)
- ``dXp[c, win_t] += K[c, 0, t] · dZ[c]``          (the same sum as ``(dZ dilated, padded) ⋆
  rot180(K)``, scattered tap by tap)

With stride 1 (most depthwise layers) every image's padded channels are one flat row, each tap
is a shift along it, and the passes run over long contiguous ranges in blocks spread over the
cores (``_FlatPlan``; forward, dK and dX each 3-4× faster than per-channel passes, see
benchmarks/RESULTS.md). Strided layers loop over the taps with the windows as strided views.
The layout is the usual ``(N, C, *S)``: no transposes to a batch-last layout.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from . import parallel

# Flat passes run in blocks of 8,192 positions (for every image at once): measured on
# 32×64×34×34, 2 threads, forward/dK/dX 7.4/10.0/6.8 ms with 4,096, 5.3/6.1/5.4 with 8,192,
# 6.1/7.1/6.6 with 16,384 (fewer blocks than threads × 4 leave a thread idle at the end).
_BLOCK = 8192


def _windows(kernel: tuple[int, ...], out: tuple[int, ...], stride: tuple[int, ...],
             dilation: tuple[int, ...]):
    """``(tap, index)``: each kernel tap and the slices of ``Xp (N, C, *Sp)`` it reads."""
    for tap in itertools.product(*(range(k) for k in kernel)):
        yield tap, (slice(None), slice(None),
                    *(slice(t * d, t * d + (o - 1) * s + 1, s)
                      for t, o, s, d in zip(tap, out, stride, dilation)))


def _per_channel(w: np.ndarray, tap: tuple[int, ...]) -> np.ndarray:
    """``K[:, 0, tap]`` shaped ``(C, 1, ..., 1)`` to scale a ``(n, C, *O)`` block."""
    return w[(slice(None), 0, *tap)].reshape((-1,) + (1,) * len(tap))


def _blocks(n: int, per_image: int) -> list[slice]:
    """Batch ranges whose data stays in the CPU cache through all taps (about 256 KiB of
    float32). For 3×3 on 32×64×32×32, against passes over the whole batch: forward 23.6 ->
    18.8 ms, dK 12.7 -> 8.8 ms, dX 25.7 -> 22.7 ms."""
    step = max(1, (1 << 16) // max(per_image, 1))                  # 65,536 values
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def correlate(xp: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: tuple[int, ...],
              stride: tuple[int, ...], dilation: tuple[int, ...]) -> np.ndarray:
    """Forward: ``Xp (N, C, *Sp)``, ``K (C, 1, *k)``, ``B (C,)`` or None -> ``Z (N, C, *O)``."""
    if _unit(stride):
        plan = _FlatPlan(xp.shape, w, dilation)
        full = np.empty_like(xp)
        plan.gather(xp.reshape(len(xp), -1), plan.offsets, full.reshape(len(full), -1),
                    plan.length)
        z = np.empty((xp.shape[0], xp.shape[1], *out), dtype=xp.dtype)
        if b is None:
            parallel.copyto(z, full[plan.valid(out)])
        else:                                        # the bias added on the way out
            parallel.add_into(z, full[plan.valid(out)], b.reshape((-1,) + (1,) * len(out)))
        return z
    z = np.zeros((xp.shape[0], xp.shape[1], *out), dtype=xp.dtype)
    for block in _blocks(len(z), z[0].size):
        zb, xb = z[block], xp[block]
        term = np.empty_like(zb)
        for tap, window in _windows(w.shape[2:], out, stride, dilation):
            zb += np.multiply(xb[window], _per_channel(w, tap), out=term)
    if b is not None:
        z += b.reshape((-1,) + (1,) * len(out))
    return z


def gradients(dz: np.ndarray, xp: np.ndarray, w: np.ndarray, stride: tuple[int, ...],
              dilation: tuple[int, ...], need_dx: bool, need_dw: bool
              ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(dXp, dK)`` from ``dZ (N, C, *O)``, the saved ``Xp (N, C, *Sp)`` and ``K (C, 1, *k)``:

    - ``dK[c, 0, t] = Σ_{n,i} Xp[n, c, win_t(i)] · dZ[n, c, i]``  (``dK = Xp ⋆ dZ``, tap by tap)
    - ``dXp[n, c, win_t(i)] += K[c, 0, t] · dZ[n, c, i]``  (the same sum as ``(dZ dilated,
      padded) ⋆ rot180(K)``); either is ``None`` unless asked for.
    """
    dxp = dw = None
    if _unit(stride):
        plan = _FlatPlan(xp.shape, w, dilation)
        spread = plan.spread(dz, front=plan.reach)       # shared by both gradients
        if need_dw:
            dw = plan.weight_grad(xp.reshape(len(xp), -1), spread[:, plan.reach:], w.shape)
        if need_dx:
            dxp = np.empty_like(xp)
            back = [plan.reach - offset for offset in plan.offsets]
            plan.gather(spread, back, dxp.reshape(len(dxp), -1), plan.plane)
        return dxp, dw
    windows = list(_windows(w.shape[2:], dz.shape[2:], stride, dilation))
    if need_dw:
        dw = np.zeros(w.shape, dtype=dz.dtype)
        axes = "abc"[:dz.ndim - 2]                      # the output positions
        spec = f"nz{axes},nz{axes}->z"                  # e.g. "nzab,nzab->z" in 2-D
        for block in _blocks(len(dz), dz[0].size):
            dzb, xb = dz[block], xp[block]
            for tap, window in windows:
                dw[(slice(None), 0, *tap)] += np.einsum(spec, xb[window], dzb)
    if need_dx:
        dxp = np.zeros_like(xp)
        for block in _blocks(len(dz), dxp[0].size):
            dzb, dxb = dz[block], dxp[block]
            term = np.empty_like(dzb)
            for tap, window in windows:
                dxb[window] += np.multiply(dzb, _per_channel(w, tap), out=term)
    return dxp, dw


def _unit(stride: tuple[int, ...]) -> bool:
    return all(s == 1 for s in stride)


class _FlatPlan:
    """Stride 1: every image's padded channels ``(C, *Sp)`` as one flat row of ``P`` values.

    In that row, tap ``t`` of output position ``q`` reads position ``q + offset[t]`` (the tap's
    multi-index times the dilation, in flat steps), for every channel at once. So each tap is a
    product of two contiguous ranges, ``row[offset:offset + length] · plane[t]``, where
    ``plane[t][q] = K[channel of q, 0, t]`` — long 1-D passes that NumPy vectorises well, unlike
    per-channel weights broadcast over short rows (2-3× slower, measured). Positions that are
    not outputs (the last ``k-1`` columns of each row, the padding rows) are computed and
    dropped in the forward pass, and hold zeros in ``dZ`` for the backward passes.
    """

    def __init__(self, shape: tuple[int, ...], w: np.ndarray, dilation: tuple[int, ...]):
        n, c, *padded = shape
        steps = [math.prod(padded[i + 1:]) for i in range(len(padded))]
        self.shape, self.n, self.plane = shape, n, math.prod(shape[1:])
        self.offsets = [sum(t * d * st for t, d, st in zip(tap, dilation, steps))
                        for tap in itertools.product(*(range(k) for k in w.shape[2:]))]
        self.reach = max(self.offsets)                              # the last tap's offset
        self.length = self.plane - self.reach                       # positions every tap reads
        # plane[t] = K[c, 0, t] repeated over channel c's positions: (taps, P)
        self.planes = np.repeat(w.reshape(c, -1).T, math.prod(padded), axis=1)

    def valid(self, out: tuple[int, ...]) -> tuple[slice, ...]:
        """The output positions ``(N, C, *O)`` inside a ``(N, C, *Sp)`` array."""
        return (slice(None), slice(None), *(slice(0, o) for o in out))

    def spread(self, dz: np.ndarray, front: int = 0) -> np.ndarray:
        """``dZ (N, C, *O)`` placed at its positions of a zero ``(N, front + P)`` array."""
        flat = np.zeros((self.n, front + self.plane), dtype=dz.dtype)
        parallel.copyto(flat[:, front:].reshape(self.shape)[self.valid(dz.shape[2:])], dz)
        return flat

    def gather(self, src: np.ndarray, offsets: list[int], out: np.ndarray, stop: int) -> None:
        """``out[:, q] = Σ_t src[:, q + offsets[t]] · planes[t, q]`` for ``q < stop``."""
        def block(q0: int, q1: int) -> None:
            acc, term = out[:, q0:q1], np.empty((self.n, q1 - q0), dtype=out.dtype)
            for t, offset in enumerate(offsets):
                window = src[:, q0 + offset:q1 + offset]
                if t == 0:
                    np.multiply(window, self.planes[t, q0:q1], out=acc)
                else:
                    acc += np.multiply(window, self.planes[t, q0:q1], out=term)
        parallel.run_blocks(block, parallel.split(stop, _BLOCK))

    def weight_grad(self, xf: np.ndarray, dzf: np.ndarray, w_shape: tuple[int, ...]
                    ) -> np.ndarray:
        """``dK[c, 0, t] = Σ_{n, q in channel c} Xp[n, q + offset[t]] · dZ[n, q]``."""
        sums = np.empty((len(self.offsets), self.plane), dtype=dzf.dtype)   # Σ_n, per q
        sums[:, self.length:] = 0

        def block(q0: int, q1: int) -> None:
            term = np.empty((self.n, q1 - q0), dtype=dzf.dtype)
            for t, offset in enumerate(self.offsets):
                np.multiply(xf[:, q0 + offset:q1 + offset], dzf[:, q0:q1], out=term)
                np.sum(term, axis=0, out=sums[t, q0:q1])
        parallel.run_blocks(block, parallel.split(self.length, _BLOCK))
        per_channel = sums.reshape(len(self.offsets), w_shape[0], -1).sum(axis=2)  # (taps, C)
        return np.ascontiguousarray(per_channel.T).reshape(w_shape)
