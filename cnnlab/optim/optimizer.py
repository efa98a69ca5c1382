"""``Optimizer``: parameter groups, per-parameter state and a plain-data ``state_dict``.

The bookkeeping is PyTorch's: ``param_groups`` is a list of dicts, each with its ``"params"``
and its own hyper-parameters (which learning-rate schedulers change); ``state[p]`` holds the
arrays an update rule carries from one step to the next (momentum buffers, moment estimates).
A subclass writes only ``_update``, the rule for one parameter, and ``_check_hyper``.

Updates work in place on ``p.data`` with Python-float coefficients, so a float32 parameter
stays float32; no graph is recorded because the rules act on the arrays, not on Tensors.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor


class _RequiredParameter:
    """The default of a hyper-parameter every group must set (``SGD``'s ``lr``)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class of the optimisers: parameter groups, state, ``step``, ``state_dict``.

    Args:
        params: an iterable of Parameters, or a list of param-group dicts such as
            ``[{"params": model.features.parameters()}, {"params": [w], "lr": 0.01}]``;
            a group's missing hyper-parameters come from ``defaults``.
        defaults: the hyper-parameters of the optimiser (``{"lr": 0.1, "momentum": 0.9}``).

    Shape:
        Every state array has the shape and dtype of its parameter.

    Example:
        >>> from cnnlab import nn, optim
        >>> w, b = nn.Parameter([1.0, 2.0]), nn.Parameter([0.0])
        >>> opt = optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.01}], lr=0.1)
        >>> [group["lr"] for group in opt.param_groups]
        [0.1, 0.01]
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        self._check_hyper(self.defaults)
        if hasattr(params, "named_parameters") and hasattr(params, "state_dict"):
            raise TypeError(
                f"{self._name}: params must be an iterable of Parameters, received the module "
                f"{type(params).__name__} itself; pass model.parameters()."
            )
        if isinstance(params, (Tensor, np.ndarray)):
            raise TypeError(
                f"{self._name}: params must be an iterable of Parameters or of param-group "
                f"dicts, received a single {type(params).__name__}; wrap it in a list."
            )
        if isinstance(params, dict):
            raise TypeError(
                f"{self._name}: params must be an iterable of Parameters or a list of "
                f"param-group dicts, received a single dict; wrap it in a list."
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{self._name}: params must be an ordered collection (a list), received a set, "
                "whose order changes between runs."
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: params is empty; there is nothing to optimise.")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (``{"params": [...], "lr": ...}``); unset hyper-parameters take defaults.

        A parameter may belong to one group only; ``params`` must be ordered (not a set), since
        ``state_dict`` numbers parameters by their position.
        """
        if not isinstance(param_group, dict):
            raise TypeError(
                f"{self._name}: a param group must be a dict, received "
                f"{type(param_group).__name__}."
            )
        if "params" not in param_group:
            raise ValueError(
                f"{self._name}: a param group must have a 'params' entry, received keys "
                f"{sorted(param_group)}."
            )
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{self._name}: params must be an ordered collection (a list), received a set, "
                "whose order changes between runs."
            )
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{self._name}: params must hold Parameters (Tensors), received an element "
                    f"of type {type(p).__name__}."
                )
            if not p.is_leaf:
                raise ValueError(
                    f"{self._name}: can only optimise leaf Tensors (Parameters), received a "
                    f"Tensor of shape {p.shape} computed from others."
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{self._name}: a param group lists the same parameter twice.")
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError(
                f"{self._name}: some parameters appear in more than one parameter group."
            )
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(
                    f"{self._name}: parameter group {len(self.param_groups)} does not set the "
                    f"required hyper-parameter {name!r}; pass {name}=... to {self._name} or "
                    f"put it in the group."
                )
            group.setdefault(name, default)
        self._check_hyper(group)
        self.param_groups.append(group)

    # ------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``p.grad = None`` (default) or zero arrays."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad = np.zeros_like(p.grad)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; parameters with ``grad None`` are skipped.

        Args:
            closure: optional function that recomputes the loss (zero_grad, forward, backward)
                and returns it; it is called first and its value returned, as in PyTorch.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            hyper = self._hyper(group)
            for p in group["params"]:
                grad, data = p.grad, p.data
                if grad is None:
                    continue
                if np.shape(grad) != data.shape:
                    raise ValueError(
                        f"{self._name}.step: a parameter of shape {data.shape} has a gradient "
                        f"of shape {np.shape(grad)}."
                    )
                state = self.state.setdefault(p, {})
                self._update(data, grad, state, hyper)
                if not state:                   # a rule without memory keeps no entry
                    del self.state[p]
        return loss

    def _hyper(self, group: dict[str, Any]) -> Any:
        """What :meth:`_update` receives as ``group`` for each parameter of ``group`` in this
        step: the group itself, or a form of its hyper-parameters a subclass converts once
        per step instead of once per parameter."""
        return group

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        """Apply the rule to one parameter array, in place; ``state`` is its own dict."""
        raise NotImplementedError(f"{self._name} must implement _update().")

    def _check_hyper(self, hyper: dict[str, Any]) -> None:
        """Raise for invalid hyper-parameters (values that are ``required`` are skipped)."""

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state as plain data: NumPy arrays and JSON scalars, no objects.

        Format::

            {"state": {0: {"momentum_buffer": ndarray}, 2: {...}, ...},
             "param_groups": [{"lr": 0.1, "momentum": 0.9, ..., "params": [0, 1]},
                              {"lr": 0.01, ..., "params": [2]}]}

        Parameters are numbered by their position in the concatenated ``params`` of all
        groups, in order (PyTorch's numbering). ``"state"`` maps that index to the parameter's
        state, name -> array copy (``"step"`` is a 0-d int64 array); parameters without state
        (no step taken yet) are absent. ``"param_groups"`` holds each group's hyper-parameters as
        Python bool/int/float/str/None or lists of them (``betas`` becomes a list) and the
        indices of its parameters, so ``json.dumps(sd["param_groups"])`` works. A checkpoint
        can store the arrays with ``np.savez(f, **{f"{i}.{k}": v ...})`` and the groups as JSON,
        and rebuild this dict (integer or digit-string indices) for ``load_state_dict``.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            plain = {k: _plain(v) for k, v in group.items() if k != "params"}
            plain["params"] = []
            for p in group["params"]:
                index[id(p)] = len(index)
                plain["params"].append(index[id(p)])
            groups.append(plain)
        state = {
            index[id(p)]: {k: np.array(v, copy=True) for k, v in s.items()}
            for p, s in self.state.items() if id(p) in index and s
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` gave: group hyper-parameters and per-parameter arrays.

        The groups must have the same sizes as this optimiser's; arrays are copied and cast to
        their parameter's dtype, ``"step"`` becomes a Python int, lists in groups become tuples.
        """
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            received = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError(
                f"{self._name}.load_state_dict expected a dict with keys 'state' and "
                f"'param_groups' (from Optimizer.state_dict()), received {received}."
            )
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{self._name}.load_state_dict: the state has {len(saved_groups)} parameter "
                f"groups, this optimizer has {len(self.param_groups)}."
            )
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{self._name}.load_state_dict: parameter group {i} of the state has "
                    f"{len(saved['params'])} parameters, this optimizer's group {i} has "
                    f"{len(group['params'])}."
                )
            missing = [k for k in self.defaults if k not in saved]
            if missing:
                raise ValueError(
                    f"{self._name}.load_state_dict: parameter group {i} of the state lacks "
                    f"{missing} (was it saved from another optimizer?)."
                )
        params_of = {
            int(index): p
            for saved, group in zip(saved_groups, self.param_groups)
            for index, p in zip(saved["params"], group["params"])
        }
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, values in state_dict["state"].items():
            if int(key) not in params_of:
                raise ValueError(
                    f"{self._name}.load_state_dict: the state has an entry for parameter {key}, "
                    f"which no saved parameter group lists."
                )
            p = params_of[int(key)]
            new_state[p] = {name: _restore(name, value, p, key, self._name)
                            for name, value in values.items()}
        restored_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            restored = {name: tuple(value) if isinstance(value, list) else value
                        for name, value in saved.items() if name != "params"}
            restored["params"] = group["params"]
            self._check_hyper(restored)
            restored_groups.append(restored)
        self.param_groups[:] = restored_groups
        self.state = new_state

    # ------------------------------------------------------------ display
    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"


def _plain(value: Any) -> Any:
    """A hyper-parameter as JSON data: NumPy scalars -> Python numbers, tuples -> lists."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _restore(name: str, value: Any, p: Tensor, index: Any, where: str) -> Any:
    if name == "step":
        return int(np.asarray(value))
    array = np.asarray(value)
    if array.shape != p.shape:
        raise ValueError(
            f"{where}.load_state_dict: state {name!r} of parameter {index} has shape "
            f"{array.shape}, the parameter has shape {p.shape}."
        )
    return array.astype(p.dtype, copy=True)


def check_number(where: str, name: str, value: Any, low: float | None = None,
                 high: float | None = None, high_open: bool = False) -> None:
    """``low <= value`` (and ``value <= high``, or ``< high`` when ``high_open``), else raise."""
    if value is required:
        return
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be a number, received {value!r}.")
    too_low = low is not None and not value >= low
    too_high = high is not None and not (value < high if high_open else value <= high)
    if too_low or too_high or value != value:
        if high is None:
            expected = f">= {low:g}"
        elif low is None:
            expected = f"{'<' if high_open else '<='} {high:g}"
        else:
            expected = f"in [{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{where}: {name} must be {expected}, received {value!r}.")
