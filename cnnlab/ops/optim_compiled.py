"""The optimisers' update rules as one compiled loop per parameter (numba).

NumPy applies SGD with momentum to a parameter in five passes (``buf *= m``, ``(1 - d)·g``,
``buf += ...``, ``lr·buf``, ``p -= ...``) and Adam in a dozen, each a call that allocates its
result; a network of small layers (LeNet-5: ten parameter arrays, 61,706 values) pays for the
calls, not for the arithmetic. One loop reads each value once and writes it once.

The arithmetic is :mod:`cnnlab.optim`'s, term for term, in the parameter's precision (the
hyper-parameters rounded to it first, as NumPy does with a Python float); the kernels may fuse a
multiply and an add (float rounding, as everywhere in the compiled path).
"""

from __future__ import annotations

import numpy as np

from .kernels import FLOATS, jit


def handles(param: np.ndarray, *others: np.ndarray) -> bool:
    """Whether the loops update this parameter: C-contiguous float32 or float64 arrays of one
    dtype and shape (anything else keeps the NumPy rule)."""
    return (param.dtype in FLOATS and param.flags.c_contiguous and param.flags.writeable
            and all(a.dtype == param.dtype and a.shape == param.shape and a.flags.c_contiguous
                    for a in others))


@jit
def _sgd(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    """SGD's rule (``optim.SGD``) on flat arrays: ``p`` and ``buf`` updated in place."""
    t = p.dtype.type
    rate, m, keep, decay = t(lr), t(momentum), t(1.0 - dampening), t(weight_decay)
    sign = t(-1.0) if maximize else t(1.0)
    for i in range(np.uint64(p.size)):
        d = sign * g[i]
        if decay != 0:
            d = d + decay * p[i]
        if m != 0:
            b = d if first else m * buf[i] + keep * d
            buf[i] = b
            d = d + m * b if nesterov else b
        p[i] = p[i] - rate * d


def sgd(param: np.ndarray, grad: np.ndarray, buf: np.ndarray, lr: float, momentum: float,
        dampening: float, weight_decay: float, nesterov: bool, maximize: bool,
        first: bool) -> None:
    """One SGD step of ``param`` (and of its momentum buffer ``buf``, written whole when
    ``first``), in place."""
    _sgd(param.reshape(-1), grad.reshape(-1), buf.reshape(-1), lr, momentum, dampening,
         weight_decay, nesterov, maximize, first)


@jit(divides=True)
def _adam(p, g, m, v, v_max, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
          maximize, step):
    """Adam's rule (``optim.Adam``, ``optim.AdamW`` when ``decoupled``) on flat arrays at
    step ``step``: ``p``, ``m``, ``v`` (and ``v_max`` with amsgrad) updated in place."""
    t = p.dtype.type
    keep1, b2, keep2 = t(1.0 - beta1), t(beta2), t(1.0 - beta2)
    step_size = t(lr / (1.0 - beta1 ** step))
    root = t((1.0 - beta2 ** step) ** 0.5)
    shrink, decay, floor = t(1.0 - lr * weight_decay), t(weight_decay), t(eps)
    sign = t(-1.0) if maximize else t(1.0)
    for i in range(np.uint64(p.size)):
        d = sign * g[i]
        if decay != 0:
            if decoupled:
                p[i] = p[i] * shrink
            else:
                d = d + decay * p[i]
        m[i] = m[i] + keep1 * (d - m[i])
        w = b2 * v[i] + keep2 * d * d
        v[i] = w
        if amsgrad:
            most = v_max[i]
            if w != w or most != most:             # NaN wins, as in np.maximum
                most = w + most
            elif w > most:
                most = w
            v_max[i] = most
            w = most
        p[i] = p[i] - step_size * m[i] / (np.sqrt(w) / root + floor)


def adam(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray,
         v_max: np.ndarray | None, lr: float, betas: tuple[float, float], eps: float,
         weight_decay: float, decoupled: bool, maximize: bool, step: int) -> None:
    """One Adam step of ``param`` and its moments (``v_max`` None without amsgrad), in
    place."""
    _adam(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
          (v if v_max is None else v_max).reshape(-1), lr, betas[0], betas[1], eps,
          weight_decay, decoupled, v_max is not None, maximize, step)
