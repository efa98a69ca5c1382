"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..ops import kernels, optim_compiled
from .optimizer import Optimizer, ParamsT, check_number


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), PyTorch's ``torch.optim.Adam`` rule step for step.

    For each parameter ``p`` with gradient ``g`` (negated first when ``maximize``), at step
    ``t = 1, 2, ...`` with ``m = v = 0`` before the first step::

        g = g + weight_decay * p                    (Adam: L2 penalty in the gradient)
        p = p * (1 - lr * weight_decay)             (AdamW instead: decoupled decay)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                       (amsgrad; then v_max replaces v below)
        denom = sqrt(v) / sqrt(1 - beta2**t) + eps
        p = p - lr / (1 - beta1**t) * m / denom

    (``eps`` is added after the bias correction of ``sqrt(v)``, as in PyTorch.) The state of
    ``p`` is ``step`` (``t``), ``exp_avg`` (``m``), ``exp_avg_sq`` (``v``) and, with amsgrad,
    ``max_exp_avg_sq``.

    Args:
        params: Parameters, or param-group dicts (see :class:`Optimizer`).
        lr: learning rate ``>= 0``.
        betas: decay rates ``(beta1, beta2)`` of the moment estimates, each in ``[0, 1)``.
        eps: term ``>= 0`` added to the denominator for numerical stability.
        weight_decay: L2 penalty ``>= 0`` added to the gradient.
        amsgrad: normalise by the running maximum of ``v`` (Reddi et al., 2018).
        maximize: ascend the objective instead of descending it.

    Shape:
        ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq`` have the shape and dtype of their
        parameter.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn, optim
        >>> w = nn.Parameter([1.0, -1.0])
        >>> opt = optim.Adam([w], lr=0.1)
        >>> w.grad = np.array([2.0, 3.0], dtype=np.float32)
        >>> opt.step()                          # the first step moves by lr against sign(g)
        >>> w.data.round(6)
        array([ 0.9, -1.1], dtype=float32)
    """

    _decoupled_weight_decay = False

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_hyper(self, hyper: dict[str, Any]) -> None:
        where = self._name
        check_number(where, "lr", hyper["lr"], low=0.0)
        check_number(where, "eps", hyper["eps"], low=0.0)
        betas = hyper["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{where}: betas must be a pair (beta1, beta2), received {betas!r}.")
        for i, beta in enumerate(betas):
            check_number(where, f"betas[{i}]", beta, low=0.0, high=1.0, high_open=True)
        check_number(where, "weight_decay", hyper["weight_decay"], low=0.0)

    def _hyper(self, group: dict[str, Any]) -> _Hyper:
        beta1, beta2 = (float(b) for b in group["betas"])
        return _Hyper(float(group["lr"]), beta1, beta2, float(group["eps"]),
                      float(group["weight_decay"]), bool(group["amsgrad"]),
                      bool(group["maximize"]), kernels.use_compiled())

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any],
                group: _Hyper) -> None:
        lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, compiled = group
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = np.zeros_like(param)
        step = state["step"] = int(state["step"]) + 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        v_max = state["max_exp_avg_sq"] if amsgrad else None
        if compiled and optim_compiled.handles(param, grad, m, v,
                                               *(() if v_max is None else (v_max,))):
            optim_compiled.adam(param, grad, m, v, v_max, lr, (beta1, beta2), eps,
                                weight_decay, self._decoupled_weight_decay, maximize, step)
            return
        g = -grad if maximize else grad
        if weight_decay != 0:
            if self._decoupled_weight_decay:
                param *= 1.0 - lr * weight_decay
            else:
                g = g + weight_decay * param
        m += (1.0 - beta1) * (g - m)                  # PyTorch's lerp: beta1·m + (1 - beta1)·g
        v *= beta2
        v += (1.0 - beta2) * g * g
        if amsgrad:
            v = np.maximum(v_max, v, out=v_max)
        step_size = lr / (1.0 - beta1**step)
        denom = np.sqrt(v) / (1.0 - beta2**step) ** 0.5
        denom += eps
        param -= step_size * m / denom


class _Hyper(NamedTuple):
    """Adam's hyper-parameters for one step of a group, converted once."""
    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    amsgrad: bool
    maximize: bool
    compiled: bool                      # the compiled update runs (kernels.use_compiled())


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    The rule is :class:`Adam`'s except for weight decay, which shrinks the parameter directly
    before the moment update instead of entering the gradient (PyTorch's ``torch.optim.AdamW``)::

        p = p * (1 - lr * weight_decay)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g          (amsgrad: v_max = max(v_max, v))
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args:
        params: Parameters, or param-group dicts (see :class:`Optimizer`).
        lr: learning rate ``>= 0``.
        betas: decay rates ``(beta1, beta2)`` of the moment estimates, each in ``[0, 1)``.
        eps: term ``>= 0`` added to the denominator for numerical stability.
        weight_decay: decoupled decay rate ``>= 0`` (default ``1e-2``, as in PyTorch).
        amsgrad: normalise by the running maximum of ``v``.
        maximize: ascend the objective instead of descending it.

    Shape:
        ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq`` have the shape and dtype of their
        parameter.

    Example:
        >>> import numpy as np
        >>> from cnnlab import nn, optim
        >>> w = nn.Parameter([1.0])
        >>> opt = optim.AdamW([w], lr=0.1, weight_decay=0.1)
        >>> w.grad = np.array([2.0], dtype=np.float32)
        >>> opt.step()                          # 1 · (1 - 0.1·0.1) - 0.1
        >>> w.data.round(6)
        array([0.89], dtype=float32)
    """

    _decoupled_weight_decay = True

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
