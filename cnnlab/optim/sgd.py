"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..ops import kernels, optim_compiled
from .optimizer import Optimizer, ParamsT, check_number, required


class SGD(Optimizer):
    r"""Stochastic gradient descent, PyTorch's ``torch.optim.SGD`` rule step for step.

    For each parameter ``p`` with gradient ``g`` (negated first when ``maximize``)::

        g = g + weight_decay * p                        (if weight_decay != 0)
        b = g                                           (first step; if momentum != 0)
        b = momentum * b + (1 - dampening) * g          (later steps)
        g = g + momentum * b  if nesterov  else  b      (if momentum != 0)
        p = p - lr * g

    The momentum buffer ``b`` is kept in ``state[p]["momentum_buffer"]``.

    Args:
        params: Parameters, or param-group dicts (see :class:`Optimizer`).
        lr: learning rate, required (here or in every group), ``>= 0``.
        momentum: momentum factor ``>= 0``.
        dampening: dampening of the gradient added to the momentum buffer.
        weight_decay: L2 penalty ``>= 0`` added to the gradient.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: ascend the objective instead of descending it.

    Shape:
        ``momentum_buffer`` has the shape and dtype of its parameter.

    Example:
        >>> from cnnlab import nn, optim
        >>> w = nn.Parameter([1.0])
        >>> opt = optim.SGD([w], lr=0.1, momentum=0.9)
        >>> for _ in range(2):
        ...     opt.zero_grad()
        ...     (w * w / 2).sum().backward()      # gradient w
        ...     opt.step()
        >>> w.data.round(6)                       # 0.9, then 0.9 - 0.1·(0.9 + 0.9·1)
        array([0.72], dtype=float32)
    """

    def __init__(self, params: ParamsT, lr: float = required, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False) -> None:
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_hyper(self, hyper: dict[str, Any]) -> None:
        check_number("SGD", "lr", hyper["lr"], low=0.0)
        check_number("SGD", "momentum", hyper["momentum"], low=0.0)
        check_number("SGD", "dampening", hyper["dampening"])
        check_number("SGD", "weight_decay", hyper["weight_decay"], low=0.0)
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov=True requires momentum > 0 and dampening = 0, received "
                f"momentum={hyper['momentum']!r}, dampening={hyper['dampening']!r}."
            )

    def _hyper(self, group: dict[str, Any]) -> _Hyper:
        return _Hyper(float(group["lr"]), float(group["momentum"]), float(group["dampening"]),
                      float(group["weight_decay"]), bool(group["nesterov"]),
                      bool(group["maximize"]), kernels.use_compiled())

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any],
                group: _Hyper) -> None:
        lr, momentum, dampening, weight_decay, nesterov, maximize, compiled = group
        buf = state.get("momentum_buffer") if momentum != 0 else None
        if compiled and optim_compiled.handles(param, grad, *(() if buf is None else (buf,))):
            first = momentum != 0 and buf is None
            if first:
                buf = state["momentum_buffer"] = np.empty_like(param)
            optim_compiled.sgd(param, grad, param if buf is None else buf, lr, momentum,
                               dampening, weight_decay, nesterov, maximize, first)
            return
        g = -grad if maximize else grad
        if weight_decay != 0:
            g = g + weight_decay * param
        if momentum != 0:
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=param.dtype, copy=True)
            else:
                buf *= momentum
                buf += (1.0 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        param -= lr * g


class _Hyper(NamedTuple):
    """SGD's hyper-parameters for one step of a group, converted once."""
    lr: float
    momentum: float
    dampening: float
    weight_decay: float
    nesterov: bool
    maximize: bool
    compiled: bool                      # the compiled update runs (kernels.use_compiled())
