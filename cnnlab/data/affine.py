"""Affine warps of image batches, with torchvision's conventions (the maths of ``RandomAffine``).

An output pixel at row ``i``, column ``j`` has centred coordinates ``p = (j - (W-1)/2,
i - (H-1)/2)``. It takes the input's value at ``M·(p, 1) + ((W-1)/2, (H-1)/2)``, where ``M``
(2×3) is the *inverse* of the forward map ``C·T·R·S·Sh·C⁻¹`` (rotation ``R`` by ``angle``
degrees clockwise, scale ``S``, shears ``Sh``, translation ``T``, all about the centre ``C``).
This is ``torchvision.transforms.functional.affine`` on tensors: its ``_get_inverse_affine_matrix``
and ``grid_sample(..., padding_mode="zeros", align_corners=False)``; pixels that come from
outside the image get ``fill`` (torchvision's mask rule: nearest takes ``fill`` where the
source is outside, bilinear blends ``mask·(v - fill) + fill``).
"""

from __future__ import annotations

import numpy as np


def inverse_affine_matrix(angle, translate, scale, shear, center=(0.0, 0.0)) -> np.ndarray:
    """``M`` (``(..., 2, 3)``) for angles (degrees, clockwise), translations ``(tx, ty)`` in
    pixels, scales, shears ``(sx, sy)`` in degrees and a centre offset ``(cx, cy)`` from the
    image centre; each argument a number or an array over the batch ``(B,)``.

    With ``a, b, c, d`` the rotation-scale-shear matrix without scale,
    ``RSS = [[a, b], [c, d]]`` (det 1), ``M = [[d, -b], [-c, a]] / s`` plus the translation
    that keeps the centre: ``M[:, 2] = C - M[:, :2]·(C + T)``.

    Example:
        >>> inverse_affine_matrix(90.0, (0, 0), 1.0, (0, 0)).round(6) + 0.0
        array([[ 0.,  1.,  0.],
               [-1.,  0.,  0.]])
    """
    rot, sx, sy = np.radians(angle), np.radians(shear[0]), np.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = np.cos(rot - sy) / np.cos(sy)
    b = -a * np.tan(sx) - np.sin(rot)
    c = np.sin(rot - sy) / np.cos(sy)
    d = np.cos(rot) - c * np.tan(sx)
    m00, m01, m10, m11 = d / scale, -b / scale, -c / scale, a / scale
    m02 = cx - m00 * (cx + tx) - m01 * (cy + ty)
    m12 = cy - m10 * (cx + tx) - m11 * (cy + ty)
    rows = [np.broadcast_arrays(m00, m01, m02), np.broadcast_arrays(m10, m11, m12)]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2).astype(np.float64)


def warp_affine(x: np.ndarray, matrices: np.ndarray, interpolation: str = "nearest",
                fill: np.ndarray | float = 0.0) -> np.ndarray:
    """Resample each image ``x[b]`` through its inverse map ``matrices[b]`` (see module doc).

    Shapes: ``x (B, C, H, W)``, ``matrices (B, 2, 3)``, ``fill`` a number or ``(C,)``
    -> ``(B, C, H, W)`` in ``x``'s dtype.
    """
    batch, channels, height, width = x.shape
    yc, xc = np.mgrid[0:height, 0:width].astype(np.float64)
    xc -= (width - 1) / 2
    yc -= (height - 1) / 2
    m = matrices[:, :, :, None, None]                                   # (B, 2, 3, 1, 1)
    src_x = m[:, 0, 0] * xc + m[:, 0, 1] * yc + m[:, 0, 2] + (width - 1) / 2     # (B, H, W)
    src_y = m[:, 1, 0] * xc + m[:, 1, 1] * yc + m[:, 1, 2] + (height - 1) / 2
    fill = np.broadcast_to(np.asarray(fill, np.float64).reshape(-1), (channels,))
    fill = fill[None, :, None, None]                                     # (1, C, 1, 1)
    images = np.arange(batch)[:, None, None]

    def gather(ix: np.ndarray, iy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values at integer positions ``(B, C, H, W)``, 0 outside, and the inside ``(B, H, W)``."""
        inside = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
        ix, iy = np.clip(ix, 0, width - 1), np.clip(iy, 0, height - 1)
        values = x[images, :, iy, ix]                                    # (B, H, W, C)
        return np.moveaxis(values, -1, 1) * inside[:, None], inside

    if interpolation == "nearest":
        # grid_sample's nearest rounds half to even, as np.rint does
        values, inside = gather(np.rint(src_x).astype(np.int64), np.rint(src_y).astype(np.int64))
        out = np.where(inside[:, None], values, fill.astype(x.dtype))     # no float64 detour
    else:
        x0, y0 = np.floor(src_x), np.floor(src_y)
        wx, wy = src_x - x0, src_y - y0                                  # (B, H, W)
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        value = np.zeros((batch, channels, height, width))
        mask = np.zeros((batch, 1, height, width))
        for dx, dy, weight in ((0, 0, (1 - wx) * (1 - wy)), (1, 0, wx * (1 - wy)),
                               (0, 1, (1 - wx) * wy), (1, 1, wx * wy)):
            v, inside = gather(x0 + dx, y0 + dy)
            value += weight[:, None] * v
            mask += (weight * inside)[:, None]
        out = mask * (value - fill) + fill
    return out.astype(x.dtype, copy=False)
