"""``summary(model, input_shape)``: the lecture's layer table, measured by one forward pass.

Every leaf module (one with no sub-modules) is recorded as it runs: its output shape, the number
of values it produces per sample (its activation size), the parameters it owns, its
multiply-accumulates per sample, the padding it adds on each side and the receptive field of
its outputs (:mod:`cnnlab.tools.receptive_field`). Recording
temporarily replaces each leaf's ``forward`` on the instance and restores it afterwards, so the
model is left exactly as it was (evaluation mode is used during the pass, so BatchNorm statistics
are not updated and dropout draws no random numbers, then every module's mode is restored).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .._validate import _is_int, fmt_size
from ..autograd import no_grad
from ..nn import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    Dropout,
    Flatten,
    Linear,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    Module,
)
from ..ops.shapes import resolve_padding
from .receptive_field import IMAGE, Field, format_field, image_field, propagate, whole_input

_CONVS = (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)
_POOLS = (MaxPool1d, MaxPool2d, MaxPool3d, AvgPool1d, AvgPool2d, AvgPool3d)
_ADAPTIVE = (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d)
_NORMS = (BatchNorm1d, BatchNorm2d, BatchNorm3d)


@dataclass(frozen=True)
class SummaryRow:
    """One executed leaf layer.

    Attributes:
        name: the module's path as in ``state_dict`` keys (``"features.0"``; ``""`` for a model
            that is itself a leaf).
        layer: class name and the main arguments, e.g. ``"Conv2d(3→8, 5×5)"``.
        output_shape: the output's shape per sample, PyTorch layout (``(C, H, W)``, no batch).
        activation_size: values in the output per sample (the product of ``output_shape``).
        params: parameters the layer owns (0 when a module runs again: counted once).
        macs: multiply-accumulates per sample (convolutions and linear layers; 0 otherwise).
        padding: ``((before, after), ...)`` per spatial axis for sliding-window layers, else
            None (``"same"`` resolved to the pixels it adds).
        field: the receptive field of the output (:class:`~cnnlab.tools.receptive_field.Field`).
    """

    name: str
    layer: str
    output_shape: tuple[int, ...]
    activation_size: int
    params: int
    macs: int = 0
    padding: tuple[tuple[int, int], ...] | None = None
    field: Field = IMAGE


@dataclass
class Summary:
    """What :func:`summary` measured; ``str()`` renders it as the lecture's table.

    Attributes:
        model: the model's class name.
        input_shape: the input per sample, ``(C, H, W)``.
        batch_size: ``N`` of the forward pass (1 unless the caller gave ``(N, C, H, W)``).
        rows: one :class:`SummaryRow` per executed leaf layer, in execution order.
        total_params: every parameter of the model (shared parameters counted once).
        trainable_params: those with ``requires_grad``.
    """

    model: str
    input_shape: tuple[int, ...]
    batch_size: int
    rows: list[SummaryRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def total_macs(self) -> int:
        """Multiply-accumulates of one forward pass, per sample."""
        return sum(r.macs for r in self.rows)

    @property
    def input_size(self) -> int:
        """Values per input sample (the "Input" row's activation size)."""
        return math.prod(self.input_shape)

    def to_dict(self) -> dict:
        """Plain lists, ints and strings, ready for ``json.dumps``."""
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "batch_size": self.batch_size,
            "rows": [{"name": r.name, "layer": r.layer, "output_shape": list(r.output_shape),
                      "activation_size": r.activation_size, "params": r.params,
                      "macs": r.macs,
                      "padding": [list(p) for p in r.padding] if r.padding else None,
                      "receptive_field": None if r.field.whole else {
                          "size": list(r.field.size), "jump": list(r.field.jump),
                          "start": list(r.field.start)}}
                     for r in self.rows],
            "total_macs": self.total_macs,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
        }

    def _cells(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """Header and rows of the table, as text cells (the name separate from the layer)."""
        head = ("Name", "Layer", "Activation shape", "Activation size", "# Parameters", "MACs",
                "Padding", "Receptive field")
        body = [("", "Input", _channels_last(self.input_shape), f"{self.input_size:,}", "0",
                 "0", "", format_field(image_field(len(self.input_shape) - 1)))]
        for r in self.rows:
            pads = ", ".join(f"{pb}+{pe}" for pb, pe in r.padding) if r.padding else ""
            body.append((r.name, r.layer, _channels_last(r.output_shape),
                         f"{r.activation_size:,}", f"{r.params:,}", f"{r.macs:,}", pads,
                         format_field(r.field)))
        return head, body

    def _totals(self) -> list[str]:
        return [f"Total parameters: {self.total_params:,}",
                f"Trainable parameters: {self.trainable_params:,}",
                f"Non-trainable parameters: {self.non_trainable_params:,}",
                f"Multiply-accumulates per sample: {self.total_macs:,}"]

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython's plain-text view: the table, as printed."""
        printer.text(str(self))

    def _repr_html_(self) -> str:
        """The table in a notebook (Jupyter calls this to display a ``Summary``)."""
        from .._display import escape, table

        head, body = self._cells()
        caption = (f"{self.model}, input {_channels_last(self.input_shape)} "
                   f"(activation shapes H×W×C)")
        return (table(head, body, right=(False, False, False, True, True, True, False, False),
                      caption=caption)
                + "<p>" + "<br>".join(escape(t) for t in self._totals()) + "</p>")

    def __str__(self) -> str:
        """The table: layer, activation shape (H×W×C), activation size, # parameters, MACs,
        padding per side (``before+after`` per axis) and receptive field (size, ``/jump``)."""
        width = max((len(r.name) for r in self.rows), default=0)
        _, cells = self._cells()
        body = [(cells[0][1], *cells[0][2:])]
        body += [(f"{name:<{width}}  {layer}" if width else layer, *rest)
                 for name, layer, *rest in cells[1:]]
        head = ("Layer", "Activation shape", "Activation size", "# Parameters", "MACs",
                "Padding", "Receptive field")
        widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
        right = (False, False, True, True, True, False, False)

        def line(cells: Sequence[str]) -> str:
            return "   ".join(f"{c:>{w}}" if r else f"{c:<{w}}"
                              for c, w, r in zip(cells, widths, right)).rstrip()

        rule = "=" * (sum(widths) + 3 * (len(head) - 1))
        return "\n".join([
            line(head), rule, *(line(cells) for cells in body), rule, *self._totals()])


def summary(model: Module, input_shape: Sequence[int]) -> Summary:
    """Run one forward pass of zeros through ``model`` and record every leaf layer.

    Activation shapes in ``str(summary)`` are written channels last, ``H×W×C`` (``28×28×8``),
    as in the lecture; :attr:`SummaryRow.output_shape` keeps PyTorch's ``(C, H, W)`` order.
    A flat output reads as its length (``120``). The model is left unchanged (see the module
    docstring); the pass runs under ``no_grad`` in the dtype of the model's parameters.

    Args:
        model: any :class:`~cnnlab.nn.Module`.
        input_shape: ``(C, H, W)`` (a batch of one is used) or ``(N, C, H, W)``.

    Returns:
        A :class:`Summary`; ``print`` it for the table, or use ``.rows`` and ``.to_dict()``.

    Raises:
        ValueError: a layer cannot take the shape that reaches it; the message names the layer
            (its path and class) and the input shape it received. Also a malformed
            ``input_shape``.
        TypeError: ``model`` is not a Module.

    Example:
        >>> from cnnlab import models
        >>> from cnnlab.tools import summary
        >>> net = models.lenet5(in_channels=3, input_size=32, channels=(8, 16))
        >>> table = summary(net, (3, 32, 32))
        >>> table.rows[0].name, table.rows[0].output_shape, table.rows[0].params
        ('0', (8, 28, 28), 608)
        >>> print(table)
        Layer                   Activation shape   Activation size   # Parameters      MACs   Padding    Receptive field
        ================================================================================================================
        Input                   32×32×3                      3,072              0         0              1×1
        0   Conv2d(3→8, 5×5)    28×28×8                      6,272            608   470,400   0+0, 0+0   5×5
        1   ReLU                28×28×8                      6,272              0         0              5×5
        2   MaxPool2d(2×2)      14×14×8                      1,568              0         0   0+0, 0+0   6×6 /2
        3   Conv2d(8→16, 5×5)   10×10×16                     1,600          3,216   320,000   0+0, 0+0   14×14 /2
        4   ReLU                10×10×16                     1,600              0         0              14×14 /2
        5   MaxPool2d(2×2)      5×5×16                         400              0         0   0+0, 0+0   16×16 /4
        6   Flatten             400                            400              0         0              all
        7   Linear(400→120)     120                            120         48,120    48,000              all
        8   ReLU                120                            120              0         0              all
        9   Linear(120→84)      84                              84         10,164    10,080              all
        10  ReLU                84                              84              0         0              all
        11  Linear(84→10)       10                              10            850       840              all
        ================================================================================================================
        Total parameters: 62,958
        Trainable parameters: 62,958
        Non-trainable parameters: 0
        Multiply-accumulates per sample: 849,320
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary expects a cnnlab nn.Module, received {type(model).__name__}.")
    shape = _check_input_shape(input_shape)
    result = Summary(type(model).__name__, shape[1:], shape[0])
    counted: set[int] = set()
    flow = _Flow(len(shape) - 2)
    try:
        with wrapped_leaves(model, lambda name, module, forward: _recording(
                module, name, forward, result.rows, counted, flow)):
            model(np.zeros(shape, dtype=_dtype(model)))
    except ValueError as error:
        message = str(error)
        if message.startswith("layer "):
            raise                                   # located by a leaf or a Sequential
        raise ValueError(
            f"{result.model} failed on input of shape {shape}: {message}"
        ) from None
    params = list(model.parameters())
    result.total_params = sum(p.size for p in params)
    result.trainable_params = sum(p.size for p in params if p.requires_grad)
    return result


@contextmanager
def wrapped_leaves(model: Module, wrap: Callable[[str, Module, Callable], Callable]
                   ) -> Iterator[None]:
    """Within the block, every leaf module (no sub-modules) runs ``wrap(name, module, forward)``
    instead of its ``forward``, the model is in evaluation mode and no gradient is recorded;
    afterwards every ``forward`` and every module's mode are as they were."""
    leaves: dict[int, tuple[str, Module]] = {}
    for name, module in model.named_modules():
        if next(module.children(), None) is None and id(module) not in leaves:
            leaves[id(module)] = (name, module)
    modes = [(module, module.training) for module in model.modules()]
    patched: list[tuple[Module, object]] = []
    try:
        model.eval()
        for name, module in leaves.values():
            patched.append((module, module.__dict__.get("forward")))
            object.__setattr__(module, "forward", wrap(name, module, module.forward))
        with no_grad():
            yield
    finally:
        for module, original in patched:
            if original is None:
                object.__delattr__(module, "forward")
            else:
                object.__setattr__(module, "forward", original)
        for module, mode in modes:
            object.__setattr__(module, "training", mode)


def leaf_activations(model: Module, x: np.ndarray
                     ) -> list[tuple[str, Module, np.ndarray, np.ndarray]]:
    """``(name, module, input, output)`` of every leaf layer as it runs on the batch ``x``
    (evaluation mode, no gradient; a max-pool's ``(output, indices)`` gives its output)."""
    seen: list[tuple[str, Module, np.ndarray, np.ndarray]] = []

    def wrap(name, module, forward):
        def run(*args, **kwargs):
            out = forward(*args, **kwargs)
            value = out[0] if isinstance(out, (tuple, list)) else out
            seen.append((name, module, np.asarray(getattr(args[0], "data", args[0])),
                         np.asarray(getattr(value, "data", value))))
            return out
        return run

    with wrapped_leaves(model, wrap):
        model(x)
    return seen


class _Flow:
    """The receptive field of every tensor a recorded layer produced, during one pass."""

    def __init__(self, nd: int) -> None:
        self.nd = nd
        self.fields: dict[int, tuple[Field, tuple[int, ...]]] = {}
        self.keep: list[object] = []            # outputs stay alive: ids are not reused

    def field_of(self, value) -> Field:
        if id(value) in self.fields:
            return self.fields[id(value)][0]
        shape = _shape(value)
        same = [f for f, s in self.fields.values() if shape and s == shape[1:] and not f.whole]
        if same:                                # made outside any layer, e.g. x + f(x)
            return max(same, key=lambda f: f.size)
        return image_field(self.nd)

    def record(self, out, field: Field) -> None:
        shape = _shape(out)
        self.fields[id(out)] = (field, shape[1:] if shape else ())
        self.keep.append(out)


def _recording(module: Module, name: str, forward, rows: list[SummaryRow], counted: set[int],
               flow: _Flow):
    """``forward`` wrapped to append a row, or to say where a shape stopped fitting."""
    label = describe(module)

    def wrapper(*args, **kwargs):
        try:
            out = forward(*args, **kwargs)
        except (ValueError, TypeError) as error:
            where = f"{name} ({label})" if name else label
            received = _shape(args[0]) if args else None
            raise type(error)(
                f"layer {where} received input of shape {received}: {error}"
            ) from None
        shape = _shape(out) or (1,)
        in_shape = (_shape(args[0]) or (1,)) if args else (1,)
        params = 0 if id(module) in counted else sum(p.size for p in module.parameters())
        counted.add(id(module))
        pads, field = _geometry(module, in_shape[2:], flow.field_of(args[0]) if args
                                else image_field(flow.nd))
        flow.record(out[0] if isinstance(out, (tuple, list)) else out, field)
        rows.append(SummaryRow(name, label, shape[1:], math.prod(shape[1:]), params,
                               _macs(module, in_shape[1:], shape[1:]), pads, field))
        return out

    return wrapper


def _geometry(module: Module, in_sizes: tuple[int, ...], field: Field
              ) -> tuple[tuple[tuple[int, int], ...] | None, Field]:
    """Per-side padding of a sliding-window layer and the field of its output."""
    if isinstance(module, _CONVS) and not module.transposed:
        pads = resolve_padding(module.padding, in_sizes, module.kernel_size, module.stride,
                               module.dilation)
        return pads, propagate(field, module.kernel_size, module.stride, [p for p, _ in pads],
                               module.dilation)
    if isinstance(module, _POOLS):
        kernel, stride, pads, dilation = module.window(in_sizes)
        return pads, propagate(field, kernel, stride, [pb for pb, _ in pads], dilation)
    if isinstance(module, (*_ADAPTIVE, Flatten, Linear)) or (
            isinstance(module, _CONVS) and module.transposed):
        # adaptive pooling: windows of varying size (global for output 1); a transposed conv
        # spreads each input over several outputs: both reported as the whole input
        return None, whole_input()
    return None, field                          # element-wise: ReLU, BatchNorm, dropout...


def _macs(module: Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates per sample of a convolution or linear layer."""
    if isinstance(module, _CONVS):
        taps = math.prod(module.kernel_size)
        if module.transposed:
            return math.prod(in_shape) * module.out_channels // module.groups * taps
        return math.prod(out_shape) * module.in_channels // module.groups * taps
    if isinstance(module, Linear):
        return math.prod(out_shape) * module.in_features
    return 0


def describe(module: Module) -> str:
    """A layer in a few characters: ``Conv2d(3→8, 5×5, stride 2)``, ``MaxPool2d(2×2)``...

    Example:
        >>> from cnnlab import nn
        >>> from cnnlab.tools.summary import describe
        >>> describe(nn.Conv2d(16, 32, 3, stride=2, padding=1)), describe(nn.MaxPool2d(2))
        ('Conv2d(16→32, 3×3, stride 2, padding 1)', 'MaxPool2d(2×2)')
    """
    kind = type(module).__name__
    if isinstance(module, _CONVS):
        nd = len(module.kernel_size)
        parts = [f"{module.in_channels}→{module.out_channels}", fmt_size(module.kernel_size)]
        if module.stride != (1,) * nd:
            parts.append(f"stride {_size(module.stride, nd)}")
        if module.padding not in ((0,) * nd, "valid"):
            parts.append(f"padding {_size(module.padding, nd)}")
        if module.dilation != (1,) * nd:
            parts.append(f"dilation {_size(module.dilation, nd)}")
        if module.groups != 1:
            parts.append(f"groups {module.groups}")
        return f"{kind}({', '.join(parts)})"
    if isinstance(module, _POOLS):
        nd = module.nd
        parts = [_size(module.kernel_size, nd, full=True)]
        if _size(module.stride, nd) != _size(module.kernel_size, nd):
            parts.append(f"stride {_size(module.stride, nd)}")
        if _size(module.padding, nd) != "0":
            parts.append(f"padding {_size(module.padding, nd)}")
        return f"{kind}({', '.join(parts)})"
    if isinstance(module, _ADAPTIVE):
        return f"{kind}({_size(module.output_size, module.nd, full=True)})"
    if isinstance(module, Linear):
        return f"{kind}({module.in_features}→{module.out_features})"
    if isinstance(module, _NORMS):
        return f"{kind}({module.num_features})"
    if isinstance(module, Dropout):
        return f"{kind}(p={module.p})"
    if isinstance(module, Flatten):
        return kind
    extra = module.extra_repr()
    return f"{kind}({extra})" if extra and len(extra) <= 24 else kind


def _size(value, nd: int, full: bool = False) -> str:
    """``2 -> "2"`` (``"2×2"`` with ``full``), ``(2, 3) -> "2×3"``, ``(2, 2) -> "2"``."""
    if isinstance(value, str):
        return value
    values = tuple(value) if isinstance(value, Sequence) else (value,) * nd
    if not full and len(set(values)) == 1:
        return str(values[0])
    return "×".join("_" if v is None else str(v) for v in values)


def _channels_last(shape: tuple[int, ...]) -> str:
    """``(C, H, W) -> "H×W×C"`` (the lecture's order); a flat ``(F,)`` reads ``"F"``."""
    if len(shape) <= 1:
        return fmt_size(shape) or "1"
    return fmt_size((*shape[1:], shape[0]))


def _shape(value) -> tuple[int, ...] | None:
    if isinstance(value, (tuple, list)) and value:
        value = value[0]                # e.g. (output, indices) of a max-pool
    shape = getattr(value, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else None


def _dtype(model: Module) -> np.dtype:
    for p in model.parameters():
        if np.issubdtype(p.dtype, np.floating):
            return p.dtype
    return np.dtype(np.float32)


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    if (isinstance(input_shape, Sequence) and not isinstance(input_shape, str)
            and len(input_shape) in (3, 4) and all(_is_int(v) and v > 0 for v in input_shape)):
        shape = tuple(int(v) for v in input_shape)
        return shape if len(shape) == 4 else (1, *shape)
    raise ValueError(
        f"summary: input_shape must be (C, H, W) or (N, C, H, W) with positive ints, received "
        f"{input_shape!r}."
    )
