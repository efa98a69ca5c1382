"""Convolution on Tensors: argument checks, then ``ops.conv`` with the backward step recorded."""

from __future__ import annotations

from .._validate import (
    _is_int,
    as_tuple,
    check_choice,
    check_non_negative,
    check_positive,
    fmt_size,
    located,
)
from ..autograd.tensor import Tensor, needs_grad, record
from ..ops import conv as conv_ops
from ..ops.pad import check_pad_fits
from ..ops.shapes import (
    conv_output_sizes,
    conv_transpose_output_size,
    padding_pairs,
    resolve_padding,
)
from ._common import batched, layer_operands

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _check_groups(groups: int, c_in: int, c_out: int, where: str) -> int:
    if not _is_int(groups) or groups <= 0:
        raise ValueError(f"{where}: groups must be a positive int, received {groups!r}.")
    for name, count in (("input channels", c_in), ("output channels", c_out)):
        if count % groups:
            raise ValueError(
                f"{where}: {name} ({count}) must be divisible by groups ({groups})."
            )
    return groups


def _operands(nd: int, x, w, b, where: str, layout: str):
    """Tensors for ``x, w, b``, the input batched, the weight's rank checked."""
    x, w, b = layer_operands(x, w, b, where)
    if w.ndim != nd + 2:
        raise ValueError(
            f"{where} expected a {nd + 2}-D weight {layout}, received shape {w.shape}."
        )
    if 0 in w.shape[1:]:          # a 0×0 kernel would silently give a padded-input-sized output
        raise ValueError(
            f"{where} expected a weight {layout} with at least one channel per group and one "
            f"kernel entry along every axis, received shape {w.shape}."
        )
    x, unbatched = batched(x, nd, where)
    return x, w, b, unbatched


def conv_arguments(nd: int, stride, padding, dilation, padding_mode: str):
    """Check and normalise the arguments of a convolution that do not depend on the input.

    Returns ``(stride, padding, dilation)``: tuples of ``nd`` ints, and padding as
    ``(before, after)`` pairs or the name ``"valid"``/``"same"`` (resolved per input).
    """
    stride = check_positive(as_tuple(stride, nd, "stride"), "stride")
    dilation = check_positive(as_tuple(dilation, nd, "dilation"), "dilation")
    check_choice(padding_mode, PADDING_MODES, "padding_mode")
    if isinstance(padding, str):
        check_choice(padding, ("valid", "same"), "padding")
    else:
        padding = padding_pairs(padding, nd)
    return stride, padding, dilation


def conv_transpose_arguments(nd: int, stride, padding, output_padding, dilation):
    """The same for a transposed convolution: ``(stride, pads, output_padding, dilation)``.

    Padding is numeric only (it crops the output), and ``output_padding`` must be smaller than
    the stride or the dilation, as in PyTorch.
    """
    stride = check_positive(as_tuple(stride, nd, "stride"), "stride")
    dilation = check_positive(as_tuple(dilation, nd, "dilation"), "dilation")
    if isinstance(padding, str):
        raise ValueError(
            f"padding of a transposed convolution must be numeric (it crops the output), "
            f"received {padding!r}."
        )
    pads = padding_pairs(padding, nd)
    output_padding = check_non_negative(as_tuple(output_padding, nd, "output_padding"),
                                        "output_padding")
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(
            f"output_padding must be smaller than stride or dilation, received output_padding "
            f"{fmt_size(output_padding)} with stride {fmt_size(stride)} and dilation "
            f"{fmt_size(dilation)}."
        )
    return stride, pads, output_padding, dilation


def _checked(nd: int, x, w, b, stride, padding, dilation, groups, padding_mode, where: str):
    """The operands and arguments of a convolution, checked:
    ``(x, w, b, unbatched, stride, pads, dilation, groups)``."""
    x, w, b, unbatched = _operands(nd, x, w, b, where, "(C_out, C_in/groups, *kernel)")
    # The arguments depend on the shapes and on themselves only: checked once for each
    # combination a program uses (keyed by their repr, so that True is not taken for 1).
    key = (nd, x.shape, w.shape, None if b is None else b.shape,
           repr((stride, padding, dilation, groups, padding_mode)), where)
    resolved = _RESOLVED.get(key)
    if resolved is None:
        resolved = _resolve(nd, x.shape, w.shape, None if b is None else b.shape, stride,
                            padding, dilation, groups, padding_mode, where)
        if len(_RESOLVED) >= _RESOLVED_MAX:
            _RESOLVED.clear()
        _RESOLVED[key] = resolved
    return (x, w, b, unbatched, *resolved)


# Checked arguments of recent convolutions: (stride, pads, dilation, groups) by shapes and
# arguments. A training step's layers check theirs once, not on every call (20-30 µs a call
# in a training loop, where the interpreter's data comes back from memory after each kernel:
# depthwise 3×3 64 ch, 32×32×32, forward + backward in a loop: ``_checked`` 0.030 -> 0.011 ms).
_RESOLVED: dict = {}
_RESOLVED_MAX = 512


def _resolve(nd: int, x_shape, w_shape, b_shape, stride, padding, dilation, groups,
             padding_mode, where: str) -> tuple:
    """``(stride, pads, dilation, groups)`` of a convolution of these shapes, checked."""
    c_out, c_per_group = w_shape[:2]
    kernel = w_shape[2:]
    groups = _check_groups(groups, x_shape[1], c_out, where)
    if x_shape[1] != c_per_group * groups:
        raise ValueError(
            f"{where} expected input with {c_per_group * groups} channels, received "
            f"{x_shape[1]} (input shape {x_shape}, weight shape {w_shape}, groups {groups})."
        )
    if b_shape is not None and b_shape != (c_out,):
        raise ValueError(f"{where} expected bias of shape ({c_out},), received {b_shape}.")
    with located(where):
        stride, padding, dilation = conv_arguments(nd, stride, padding, dilation, padding_mode)
        pads = resolve_padding(padding, x_shape[2:], kernel, stride, dilation)
        if padding_mode != "zeros":
            check_pad_fits(x_shape[2:], pads, padding_mode)
        conv_output_sizes(x_shape[2:], kernel, stride, pads, dilation)
    return stride, pads, dilation, groups


def _conv(nd: int, x, w, b, stride, padding, dilation, groups, padding_mode, flip_kernel,
          where: str | None = None) -> Tensor:
    x, w, b, unbatched, stride, pads, dilation, groups = _checked(
        nd, x, w, b, stride, padding, dilation, groups, padding_mode, where or f"conv{nd}d")
    need = needs_grad(x, w, b)
    z, cache = conv_ops.conv_forward(x.data, w.data, None if b is None else b.data, stride,
                                     pads, dilation, groups, padding_mode, flip_kernel,
                                     keep_windows=need[1])
    out = record(z, (x, w) if b is None else (x, w, b),
                 lambda dz: conv_ops.conv_backward(dz, cache, *need)[: 2 if b is None else 3])
    return out.reshape(out.shape[1:]) if unbatched else out


def conv2d_relu(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                pool2: bool = False, where: str | None = None) -> Tensor:
    """``relu(conv2d(x, ...))``, and with ``pool2`` its ``max_pool2d(..., 2)``, in one step:
    the same values and gradients bit for bit, with one or two passes over the activations
    fewer where the compiled kernels compute the convolution (see
    ``ops.conv.conv_relu_forward``). ``nn.Sequential`` runs its ``Conv2d, ReLU(, MaxPool2d(2))``
    runs this way.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> x, w = np.ones((1, 1, 4, 4), np.float32), np.ones((2, 1, 3, 3), np.float32)
        >>> w[1] = -1
        >>> F.conv2d_relu(x, w, padding=1, pool2=True).data[0, :, 0].tolist()
        [[9.0, 9.0], [0.0, 0.0]]
    """
    where = where or "conv2d_relu"
    x, w, b, unbatched, stride, pads, dilation, groups = _checked(
        2, x, w, b, stride, padding, dilation, groups, padding_mode, where)
    with located(where):
        if pool2 and any(n < 2 for n in conv_output_sizes(x.shape[2:], w.shape[2:], stride,
                                                          pads, dilation)):
            raise ValueError("a 2×2 max pooling needs a convolution output of at least 2×2.")
    need = needs_grad(x, w, b)
    y, cache = conv_ops.conv_relu_forward(x.data, w.data, None if b is None else b.data, stride,
                                          pads, dilation, groups, padding_mode, pool2,
                                          keep=any(need), keep_windows=need[1])
    out = record(y, (x, w) if b is None else (x, w, b),
                 lambda dy: conv_ops.conv_relu_backward(dy, cache, *need)[: 2 if b is None else 3])
    return out.reshape(out.shape[1:]) if unbatched else out


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
           flip_kernel=False) -> Tensor:
    """1-D convolution (cross-correlation) over ``(N, C, L)``; see :func:`conv2d`."""
    return _conv(1, x, w, b, stride, padding, dilation, groups, padding_mode, flip_kernel)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
           flip_kernel=False) -> Tensor:
    """2-D convolution (cross-correlation, as in every DL framework) with a recorded gradient.

    ``Z[n, o, i, j] = b[o] + Σ_c Σ_{u,v} Xp[n, c, i*s_h + u*d_h, j*s_w + v*d_w] · W[o, c, u, v]``

    Args:
        x: input ``(N, C, H, W)`` or one image ``(C, H, W)``; Tensor or ndarray.
        w: kernels ``(C_out, C/groups, kh, kw)``.
        b: optional bias ``(C_out,)``.
        stride, dilation: int or one per axis.
        padding: int, one per axis, ``((top, bottom), (left, right))``, ``"valid"`` or ``"same"``
            (TensorFlow's rule for any stride: output ``ceil(n / s)``, odd pixel at the end).
        groups: split channels into independent groups (``groups = C`` is depthwise).
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        flip_kernel: apply ``rot180(W)``: the mathematical convolution.

    Shape:
        ``(N, C, H, W) -> (N, C_out, H_out, W_out)`` with
        ``H_out = floor((H + p_top + p_bottom - d_h*(kh-1) - 1) / s_h) + 1``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
        >>> F.conv2d(x, np.ones((1, 1, 3, 3), np.float32)).data[0, 0]
        array([[45., 54.],
               [81., 90.]], dtype=float32)
    """
    return _conv(2, x, w, b, stride, padding, dilation, groups, padding_mode, flip_kernel)


def conv3d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
           flip_kernel=False) -> Tensor:
    """3-D convolution over ``(N, C, D, H, W)``; see :func:`conv2d`."""
    return _conv(3, x, w, b, stride, padding, dilation, groups, padding_mode, flip_kernel)


def _conv_transpose(nd: int, x, w, b, stride, padding, output_padding, groups, dilation,
                    where: str | None = None) -> Tensor:
    where = where or f"conv_transpose{nd}d"
    x, w, b, unbatched = _operands(nd, x, w, b, where, "(C_in, C_out/groups, *kernel)")
    c_in, c_out = w.shape[0], w.shape[1] * (groups if _is_int(groups) else 1)
    groups = _check_groups(groups, c_in, c_out, where)
    if x.shape[1] != c_in:
        raise ValueError(
            f"{where} expected input with {c_in} channels, received {x.shape[1]} "
            f"(input shape {x.shape}, weight shape {w.shape})."
        )
    if b is not None and b.shape != (c_out,):
        raise ValueError(f"{where} expected bias of shape ({c_out},), received {b.shape}.")
    with located(where):
        stride, pads, output_padding, dilation = conv_transpose_arguments(
            nd, stride, padding, output_padding, dilation)
        for n, k, s, p, d, op in zip(x.shape[2:], w.shape[2:], stride, pads, dilation,
                                     output_padding):
            conv_transpose_output_size(n, k, s, p, d, op)

    y, cache = conv_ops.conv_transpose_forward(x.data, w.data, None if b is None else b.data,
                                               stride, pads, output_padding, dilation, groups)
    need = needs_grad(x, w, b)
    out = record(y, (x, w) if b is None else (x, w, b),
                 lambda dy: conv_ops.conv_transpose_backward(dy, cache, *need)[
                     : 2 if b is None else 3])
    return out.reshape(out.shape[1:]) if unbatched else out


def conv_transpose1d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> Tensor:
    """1-D transposed convolution; see :func:`conv_transpose2d`."""
    return _conv_transpose(1, x, w, b, stride, padding, output_padding, groups, dilation)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> Tensor:
    """2-D transposed convolution ("deconvolution"): the gradient of conv2d w.r.t. its input.

    Each input pixel scatters ``x · W[c_in]`` onto the output at stride ``s``; ``padding``
    crops the result on each side and ``output_padding`` adds rows/columns at the end.

    Args:
        x: ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
        w: ``(C_in, C_out/groups, kh, kw)`` (PyTorch's layout).

    Shape:
        ``H_out = (H - 1)*s - 2p + d*(kh - 1) + output_padding + 1``.

    Example:
        >>> import numpy as np
        >>> from cnnlab import functional as F
        >>> F.conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), stride=2).shape
        (1, 1, 4, 4)
    """
    return _conv_transpose(2, x, w, b, stride, padding, output_padding, groups, dilation)


def conv_transpose3d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> Tensor:
    """3-D transposed convolution; see :func:`conv_transpose2d`."""
    return _conv_transpose(3, x, w, b, stride, padding, output_padding, groups, dilation)
