"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay."""

from __future__ import annotations

from typing import Any

import numpy as np

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

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        lr, momentum = float(group["lr"]), float(group["momentum"])
        weight_decay, dampening = float(group["weight_decay"]), float(group["dampening"])
        g = -grad if group["maximize"] else grad
        if weight_decay != 0:
            g = g + weight_decay * param
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=param.dtype, copy=True)
            else:
                buf *= momentum
                buf += (1.0 - dampening) * g
            g = g + momentum * buf if group["nesterov"] else buf
        param -= lr * g
