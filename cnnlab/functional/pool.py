"""Pooling on Tensors: argument checks, then ``ops.pool`` with the backward step recorded.

Arguments, defaults and semantics are ``torch.nn.functional``'s: ``stride`` defaults to
``kernel_size``, padding is at most half the kernel, ``ceil_mode`` may add a last partial window,
and input may be batched ``(N, C, *S)`` or one unbatched sample ``(C, *S)``.

Beyond PyTorch, as ONNX models need (opt-in: forms PyTorch refuses, so its behaviour and errors
stay): ``padding`` as explicit per-side pairs ``((before, after), ...)`` of any size, or
``"same"`` (TensorFlow's rule, as for convolutions) / ``"valid"``; and average pooling with a
``dilation`` keyword.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._validate import (
    _is_int,
    as_tuple,
    check_choice,
    check_float_array,
    check_non_negative,
    check_positive,
    fmt_size,
)
from ..autograd.tensor import Tensor, as_tensor, needs_grad, record
from ..ops import pool as pool_ops
from ..ops.shapes import padding_pairs, pool_output_size, resolve_padding
from ._common import batched

IntOrTuple = int | Sequence[int]


def _pool_geometry(nd: int, kernel_size: IntOrTuple, stride: IntOrTuple | None,
                   padding, dilation: IntOrTuple, where: str):
    """Normalise ``kernel_size, stride, padding, dilation`` to tuples, with PyTorch's rules.

    ``padding`` comes back as one int per axis (PyTorch's forms, at most half the kernel), or
    as given when it is an ONNX form: ``"same"``/``"valid"`` or per-side pairs (any size).
    """
    try:
        kernel = check_positive(as_tuple(kernel_size, nd, "kernel_size"), "kernel_size")
        if stride is None or (isinstance(stride, Sequence) and len(stride) == 0):
            stride = kernel                     # torch: None (or an empty tuple) -> kernel_size
        else:
            stride = check_positive(as_tuple(stride, nd, "stride"), "stride")
        dilation = check_positive(as_tuple(dilation, nd, "dilation"), "dilation")
        if isinstance(padding, str):
            check_choice(padding, ("valid", "same"), "padding")
            return kernel, stride, padding, dilation
        if _is_pairs(padding, nd):
            return kernel, stride, padding_pairs(padding, nd), dilation
        padding = check_non_negative(as_tuple(padding, nd, "padding"), "padding")
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: {error}") from None
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(
            f"{where}: padding must be at most half of kernel_size (padding <= kernel_size // 2),"
            f" received padding {fmt_size(padding)} with kernel_size {fmt_size(kernel)}; "
            f"per-side pairs ((before, after), ...) lift the limit, as ONNX does."
        )
    return kernel, stride, padding, dilation


def _is_pairs(padding, nd: int) -> bool:
    return (isinstance(padding, Sequence) and len(padding) == nd
            and all(isinstance(p, Sequence) and not isinstance(p, str) for p in padding))


def pool_pads(padding, in_sizes, kernel, stride, dilation) -> tuple[tuple[int, int], ...]:
    """The per-side padding of a pooling window for input sizes ``in_sizes``: ints, pairs,
    ``"valid"`` or ``"same"`` (TensorFlow's rule: output ``ceil(n / s)``)."""
    if isinstance(padding, str) or _is_pairs(padding, len(in_sizes)):
        return resolve_padding(padding, in_sizes, kernel, stride, dilation)
    return tuple((p, p) for p in padding)


def _pooling_input(nd: int, x, where: str) -> tuple[Tensor, bool]:
    x = as_tensor(x)
    check_float_array(x.data, f"{where} input")
    x, unbatched = batched(x, nd, where)
    if 0 in x.shape[2:]:
        raise ValueError(
            f"{where} expected non-empty spatial dimensions, received input shape {x.shape}."
        )
    return x, unbatched


def _check_fits(x: Tensor, kernel, stride, padding, dilation, ceil_mode: bool,
                where: str) -> None:
    """Every axis must give at least one window (``ops.shapes.pool_output_size`` decides)."""
    for axis, (n, k, s, p, d) in enumerate(zip(x.shape[2:], kernel, stride, padding, dilation)):
        try:
            pool_output_size(n, k, s, p, d, ceil_mode)
        except ValueError as error:
            raise ValueError(
                f"{where}: {str(error).rstrip('.')} along spatial axis {axis} of input shape "
                f"{x.shape}."
            ) from None


def _max_pool(nd: int, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
              where: str | None = None):
    where = where or f"max_pool{nd}d"
    kernel, stride, padding, dilation = _pool_geometry(nd, kernel_size, stride, padding,
                                                       dilation, where)
    x, unbatched = _pooling_input(nd, x, where)
    padding = pool_pads(padding, x.shape[2:], kernel, stride, dilation)
    _check_fits(x, kernel, stride, padding, dilation, bool(ceil_mode), where)
    (need_dx,) = needs_grad(x)
    y, cache = pool_ops.max_pool_forward(x.data, kernel, stride, padding, dilation,
                                         bool(ceil_mode), keep_index=need_dx or return_indices)
    out = record(y, (x,), lambda dy: (pool_ops.max_pool_backward(dy, cache),))
    if unbatched:
        out = out.reshape(out.shape[1:])
    if not return_indices:
        return out
    indices = pool_ops.max_pool_indices(cache)                           # (N, C, *O) int64
    return out, indices[0] if unbatched else indices


def _avg_pool(nd: int, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override, where: str | None = None, dilation: IntOrTuple = 1) -> Tensor:
    where = where or f"avg_pool{nd}d"
    kernel, stride, padding, dilation = _pool_geometry(nd, kernel_size, stride, padding,
                                                       dilation, where)
    if divisor_override is not None and (not _is_int(divisor_override) or divisor_override == 0):
        raise ValueError(
            f"{where}: divisor_override must be a non-zero int or None, received "
            f"{divisor_override!r}."
        )
    x, unbatched = _pooling_input(nd, x, where)
    padding = pool_pads(padding, x.shape[2:], kernel, stride, dilation)
    _check_fits(x, kernel, stride, padding, dilation, bool(ceil_mode), where)
    y, cache = pool_ops.avg_pool_forward(x.data, kernel, stride, padding, bool(ceil_mode),
                                         bool(count_include_pad), divisor_override, dilation)
    out = record(y, (x,), lambda dy: (pool_ops.avg_pool_backward(dy, cache),))
    return out.reshape(out.shape[1:]) if unbatched else out


def _output_size(nd: int, output_size, where: str) -> tuple[int | None, ...]:
    if _is_int(output_size):
        sizes = (output_size,) * nd
    elif isinstance(output_size, Sequence) and not isinstance(output_size, str):
        sizes = tuple(output_size)
    else:
        sizes = ()
    if len(sizes) != nd or not all(s is None or (_is_int(s) and s >= 0) for s in sizes):
        raise ValueError(
            f"{where}: output_size must be a non-negative int or a tuple of {nd} non-negative "
            f"ints or None, received {output_size!r}."
        )
    return sizes


def _adaptive_avg_pool(nd: int, x, output_size, where: str | None = None) -> Tensor:
    where = where or f"adaptive_avg_pool{nd}d"
    sizes = _output_size(nd, output_size, where)
    x, unbatched = _pooling_input(nd, x, where)
    y, cache = pool_ops.adaptive_avg_pool_forward(x.data, sizes)
    out = record(y, (x,), lambda dy: (pool_ops.adaptive_avg_pool_backward(dy, cache),))
    return out.reshape(out.shape[1:]) if unbatched else out


# ----------------------------------------------------------------------------- max pooling

def max_pool1d(x, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """1-D max pooling over ``(N, C, L)`` or ``(C, L)``; see :func:`max_pool2d`."""
    return _max_pool(1, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(x, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """2-D max pooling: the largest value of every (dilated) window; its gradient flows only there.

    ``Y[n, c, i, j] = max_{u,v} Xp[n, c, i*s_h + u*d_h, j*s_w + v*d_w]``, where ``Xp`` is the
    input padded with -inf (padding never wins).

    Args:
        x: ``(N, C, H, W)`` or one sample ``(C, H, W)``; Tensor or ndarray.
        kernel_size: window size, int or ``(kh, kw)``.
        stride: window step; ``None`` (the default) means ``kernel_size``.
        padding: implicit -inf padding on both sides, at most ``kernel_size // 2``; or (ONNX's
            forms) per-side pairs ``((top, bottom), (left, right))`` of any size, ``"same"``
            or ``"valid"``.
        dilation: spacing between window elements.
        ceil_mode: round the output size up, adding a last partial window when the input does
            not divide evenly (a window starting in the right padding is dropped).
        return_indices: also return, as an int64 ndarray shaped like the output, the flat index
            of each maximum in its ``(H, W)`` input plane (PyTorch's convention).

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``,
        ``H_out = floor((H + 2p - d*(kh - 1) - 1) / s) + 1`` (``ceil`` with ``ceil_mode``).

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> x = np.array([[1, 3, 2, 1], [2, 9, 1, 1], [1, 3, 2, 3], [5, 6, 1, 2]], np.float32)
        >>> F.max_pool2d(x[None], 2).data[0]
        array([[9., 2.],
               [6., 3.]], dtype=float32)
    """
    return _max_pool(2, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(x, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """3-D max pooling over ``(N, C, D, H, W)`` or ``(C, D, H, W)``; see :func:`max_pool2d`."""
    return _max_pool(3, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


# ----------------------------------------------------------------------------- average pooling

def avg_pool1d(x, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, *, dilation: IntOrTuple = 1) -> Tensor:
    """1-D average pooling over ``(N, C, L)`` or ``(C, L)``; see :func:`avg_pool2d`."""
    return _avg_pool(1, x, kernel_size, stride, padding, ceil_mode, count_include_pad, None,
                     dilation=dilation)


def avg_pool2d(x, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None, *, dilation: IntOrTuple = 1) -> Tensor:
    """2-D average pooling: the mean of every window, zero padding included or not.

    ``Y[n, c, i, j] = Σ_{u,v} Xp[n, c, i*s_h + u, j*s_w + v] / D[i, j]`` with ``Xp`` zero-padded.
    ``D`` counts the window's positions inside the padded input (``count_include_pad=True``)
    or inside the real input (``False``); the part of a ``ceil_mode`` window past the padding is
    never counted. ``divisor_override`` replaces ``D`` by a constant.

    Args:
        x: ``(N, C, H, W)`` or one sample ``(C, H, W)``; Tensor or ndarray.
        kernel_size: window size, int or ``(kh, kw)``.
        stride: window step; ``None`` (the default) means ``kernel_size``.
        padding: implicit zero padding on both sides, at most ``kernel_size // 2``; or (ONNX's
            forms) per-side pairs ``((top, bottom), (left, right))`` of any size, ``"same"``
            or ``"valid"``.
        ceil_mode: round the output size up (see :func:`max_pool2d`).
        count_include_pad: whether padded zeros count in the divisor.
        divisor_override: a non-zero int used as the divisor of every window.
        dilation: (keyword only; ONNX's, PyTorch has none) spacing between window elements.

    Shape:
        ``(N, C, H, W) -> (N, C, H_out, W_out)``,
        ``H_out = floor((H + 2p - kh) / s) + 1`` (``ceil`` with ``ceil_mode``).

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
        >>> F.avg_pool2d(x, 2).data[0]
        array([[ 2.5,  4.5],
               [10.5, 12.5]], dtype=float32)
    """
    return _avg_pool(2, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, dilation=dilation)


def avg_pool3d(x, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None, *, dilation: IntOrTuple = 1) -> Tensor:
    """3-D average pooling over ``(N, C, D, H, W)`` or ``(C, D, H, W)``; see :func:`avg_pool2d`."""
    return _avg_pool(3, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, dilation=dilation)


# ----------------------------------------------------------------------------- adaptive

def adaptive_avg_pool1d(x, output_size: int | Sequence[int | None]) -> Tensor:
    """1-D adaptive average pooling over ``(N, C, L)`` or ``(C, L)``; see
    :func:`adaptive_avg_pool2d`."""
    return _adaptive_avg_pool(1, x, output_size)


def adaptive_avg_pool2d(x, output_size: int | Sequence[int | None]) -> Tensor:
    """Average pooling to a fixed output size, whatever the input size (PyTorch's bins).

    Output row ``i`` of an axis of size ``n`` pooled to ``m`` averages input positions
    ``floor(i*n/m) .. ceil((i+1)*n/m) - 1``; the bins may overlap when ``n`` is not a multiple
    of ``m``. ``output_size=1`` is global average pooling.

    Args:
        x: ``(N, C, H, W)`` or one sample ``(C, H, W)``; Tensor or ndarray.
        output_size: ``m`` or ``(m_h, m_w)``; ``None`` keeps that axis' input size.

    Shape:
        ``(N, C, H, W) -> (N, C, m_h, m_w)``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.adaptive_avg_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 1).data.ravel()
        array([7.5])
    """
    return _adaptive_avg_pool(2, x, output_size)


def adaptive_avg_pool3d(x, output_size: int | Sequence[int | None]) -> Tensor:
    """3-D adaptive average pooling over ``(N, C, D, H, W)`` or ``(C, D, H, W)``; see
    :func:`adaptive_avg_pool2d`."""
    return _adaptive_avg_pool(3, x, output_size)

