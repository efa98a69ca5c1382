"""Optimisers (SGD, Adam, AdamW) and learning-rate schedules.

PyTorch trajectories step by step in float64, hand-worked steps with literal answers, schedules
against PyTorch and literal values, state_dict round trips through .npz + JSON, bad arguments.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from cnnlab import nn, optim
from cnnlab.optim import lr_scheduler

# ---------------------------------------------------------------------------- helpers


def make_model() -> nn.Module:
    """conv 3×3 → flatten → linear, float64, deterministic weights (keys as in torch)."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Flatten(), nn.Linear(48, 4))
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.data = rng.uniform(-0.3, 0.3, p.shape)
    return model


def make_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.standard_normal((5, 2, 4, 4)), rng.standard_normal((5, 4))


def loss_of(model: nn.Module, x: np.ndarray, y: np.ndarray):
    return ((model(x) - y) ** 2).mean()


def train_step(model, opt, x, y) -> None:
    opt.zero_grad()
    loss_of(model, x, y).backward()
    opt.step()


def torch_copy(model: nn.Module):
    torch = pytest.importorskip("torch")
    twin = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.Flatten(),
                               torch.nn.Linear(48, 4)).double()
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    return twin


def torch_step(twin, opt, x, y) -> None:
    opt.zero_grad()
    ((twin(x) - y) ** 2).mean().backward()
    opt.step()


def assert_same_params(model, twin, step) -> None:
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=0, atol=1e-9,
                                   err_msg=f"{name} after step {step}")


def scalar(value: float, dtype=np.float64) -> nn.Parameter:
    return nn.Parameter(np.array([value], dtype=dtype))


def step_with(opt, p, grad: float) -> float:
    p.grad = np.array([grad], dtype=p.dtype)
    opt.step()
    return float(p.data[0])


# ---------------------------------------------------------------------------- PyTorch trajectories

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.01, nesterov=True)),
    ("SGD", dict(lr=0.002, momentum=0.5, weight_decay=0.1, dampening=0.3, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.3, maximize=True)),
]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{k}" for n, k in CONFIGS])
def test_trajectory_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    model = make_model()
    twin = torch_copy(model)
    x, y = make_data()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    topt = getattr(torch.optim, name)(twin.parameters(), **kwargs)
    start = [p.data.copy() for p in model.parameters()]
    for step in range(20):
        train_step(model, opt, x, y)
        torch_step(twin, topt, tx, ty)
        assert_same_params(model, twin, step)
    assert not np.allclose(start[0], model[0].weight.data)        # it did move


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.2)),
])
def test_param_groups_with_different_lr_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    model = make_model()
    twin = torch_copy(model)
    x, y = make_data()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def groups(m):
        conv, fc = m[0], m[2]
        return [{"params": [conv.weight, conv.bias]},
                {"params": [fc.weight, fc.bias], "lr": kwargs["lr"] / 10}]

    opt = getattr(optim, name)(groups(model), **kwargs)
    topt = getattr(torch.optim, name)(groups(twin), **kwargs)
    for step in range(15):
        train_step(model, opt, x, y)
        torch_step(twin, topt, tx, ty)
        assert_same_params(model, twin, step)


@pytest.mark.parametrize("sched,kwargs", [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("CosineAnnealingLR", dict(T_max=4, eta_min=0.001)),
])
def test_trajectory_with_scheduler_matches_torch(sched, kwargs):
    torch = pytest.importorskip("torch")
    model = make_model()
    twin = torch_copy(model)
    x, y = make_data()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    topt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    schedule = getattr(lr_scheduler, sched)(opt, **kwargs)
    tschedule = getattr(torch.optim.lr_scheduler, sched)(topt, **kwargs)
    for step in range(15):
        train_step(model, opt, x, y)
        torch_step(twin, topt, tx, ty)
        schedule.step()
        tschedule.step()
        assert_same_params(model, twin, step)
        assert schedule.get_last_lr() == pytest.approx(tschedule.get_last_lr(), rel=1e-14)


# ---------------------------------------------------------------------------- hand-worked steps
# Each case is f(p) = p²/2 (gradient p) or a gradient set by hand, on one float64 scalar.


def quadratic_steps(opt, p, n):
    values = []
    for _ in range(n):
        values.append(step_with(opt, p, float(p.data[0])))
    return values


def test_sgd_plain_hand_worked():
    p = scalar(1.0)
    # p ← p - 0.1 p = 0.9 p
    assert quadratic_steps(optim.SGD([p], lr=0.1), p, 2) == pytest.approx([0.9, 0.81])


def test_sgd_momentum_two_steps_hand_worked():
    p = scalar(1.0)
    # step 1: b = g = 1, p = 1 - 0.1·1 = 0.9
    # step 2: g = 0.9, b = 0.9·1 + 0.9 = 1.8, p = 0.9 - 0.1·1.8 = 0.72
    assert quadratic_steps(optim.SGD([p], lr=0.1, momentum=0.9), p, 2) == pytest.approx(
        [0.9, 0.72], abs=1e-15)


def test_sgd_nesterov_two_steps_hand_worked():
    p = scalar(1.0)
    # step 1: b = 1, d = 1 + 0.9·1 = 1.9, p = 1 - 0.19 = 0.81
    # step 2: g = 0.81, b = 0.9 + 0.81 = 1.71, d = 0.81 + 0.9·1.71 = 2.349, p = 0.5751
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    assert quadratic_steps(opt, p, 2) == pytest.approx([0.81, 0.5751], abs=1e-15)


def test_sgd_dampening_and_weight_decay_hand_worked():
    p = scalar(2.0)
    opt = optim.SGD([p], lr=0.1, momentum=0.5, dampening=0.5, weight_decay=0.5)
    # step 1: g = 1 + 0.5·2 = 2; b = g = 2 (no dampening at the first step); p = 2 - 0.2 = 1.8
    assert step_with(opt, p, 1.0) == pytest.approx(1.8, abs=1e-15)
    # step 2: g = 1 + 0.5·1.8 = 1.9; b = 0.5·2 + 0.5·1.9 = 1.95; p = 1.8 - 0.195 = 1.605
    assert step_with(opt, p, 1.0) == pytest.approx(1.605, abs=1e-15)


def test_sgd_maximize_goes_uphill():
    p = scalar(1.0)
    assert step_with(optim.SGD([p], lr=0.1, maximize=True), p, 2.0) == pytest.approx(1.2)


def test_adam_constant_gradient_moves_by_exactly_lr():
    # with a constant g the bias-corrected m̂ = g and v̂ = g², so each step is lr·g/(|g| + eps)
    p = scalar(1.0)
    opt = optim.Adam([p], lr=0.1)
    assert [step_with(opt, p, 2.0) for _ in range(3)] == pytest.approx([0.9, 0.8, 0.7],
                                                                        abs=1e-8)
    assert opt.state[p]["step"] == 3
    # m = 2·(1 - 0.9³), v = 4·(1 - 0.999³)
    np.testing.assert_allclose(opt.state[p]["exp_avg"], [2 * (1 - 0.9**3)], rtol=1e-14)
    np.testing.assert_allclose(opt.state[p]["exp_avg_sq"], [4 * (1 - 0.999**3)], rtol=1e-12)


def test_adam_two_steps_with_sign_change_hand_worked():
    p = scalar(0.0)
    opt = optim.Adam([p], lr=0.1, eps=0.0)
    # step 1: m = 0.1, v = 0.001, m̂ = 1, v̂ = 1: p = -0.1
    assert step_with(opt, p, 1.0) == pytest.approx(-0.1, abs=1e-15)
    # step 2: g = -1, m = 0.09 - 0.1 = -0.01, m̂ = -0.01/0.19 = -1/19,
    #         v = 0.000999 + 0.001 = 0.001999 = 1 - 0.999², v̂ = 1: p = -0.1 + 0.1/19
    assert step_with(opt, p, -1.0) == pytest.approx(-0.1 + 0.1 / 19, abs=1e-14)


def test_adam_eps_is_added_after_bias_correction():
    p = scalar(0.0)
    opt = optim.Adam([p], lr=1.0, eps=1.0)
    # step 1 with g = 1: m̂ = 1, v̂ = 1, p = -1/(sqrt(1) + 1) = -0.5 (not -1/(sqrt(v) + eps)/..)
    assert step_with(opt, p, 1.0) == pytest.approx(-0.5, abs=1e-15)


def test_amsgrad_divides_by_the_largest_second_moment():
    # betas (0, 0): m = g, v = g², no bias correction; amsgrad keeps max g² = 4
    p, q = scalar(0.0), scalar(0.0)
    plain = optim.Adam([p], lr=0.1, betas=(0.0, 0.0), eps=0.0)
    ams = optim.Adam([q], lr=0.1, betas=(0.0, 0.0), eps=0.0, amsgrad=True)
    assert [step_with(plain, p, g) for g in (2.0, 1.0)] == pytest.approx([-0.1, -0.2])
    assert [step_with(ams, q, g) for g in (2.0, 1.0)] == pytest.approx([-0.1, -0.15])


def test_adam_weight_decay_is_l2_in_the_gradient_adamw_is_decoupled():
    p, q = scalar(1.0), scalar(1.0)
    adam = optim.Adam([p], lr=0.1, betas=(0.0, 0.0), eps=0.0, weight_decay=1.0)
    adamw = optim.AdamW([q], lr=0.1, betas=(0.0, 0.0), eps=0.0, weight_decay=1.0)
    # Adam: g = -0.5 + 1·1 = 0.5 > 0, the step follows sign(g): 1 - 0.1 = 0.9
    assert step_with(adam, p, -0.5) == pytest.approx(0.9, abs=1e-15)
    # AdamW: p = 1·(1 - 0.1·1) = 0.9, then the step follows sign(-0.5): 0.9 + 0.1 = 1.0
    assert step_with(adamw, q, -0.5) == pytest.approx(1.0, abs=1e-15)


def test_adamw_default_weight_decay_is_1e_2():
    q = scalar(1.0)
    opt = optim.AdamW([q], lr=0.1)
    assert opt.defaults["weight_decay"] == 0.01
    assert step_with(opt, q, 2.0) == pytest.approx(1.0 * (1 - 0.1 * 0.01) - 0.1, abs=1e-8)


# ---------------------------------------------------------------------------- mechanics


@pytest.mark.parametrize("factory", [
    lambda ps: optim.SGD(ps, lr=np.float64(0.1), momentum=np.float64(0.9), nesterov=True,
                         weight_decay=np.float64(0.01)),
    lambda ps: optim.Adam(ps, lr=np.float64(0.1), betas=(np.float64(0.9), np.float64(0.99)),
                          weight_decay=np.float64(0.01), amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=np.float64(0.1), weight_decay=np.float64(0.01)),
], ids=["SGD", "Adam", "AdamW"])
def test_float32_stays_float32_and_updates_in_place(factory):
    p = nn.Parameter(np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32))
    array = p.data
    opt = factory([p])
    for _ in range(3):
        p.grad = np.array([[0.1, 0.2], [-0.3, 0.4]], dtype=np.float32)
        opt.step()
    assert p.data is array and p.data.dtype == np.float32
    assert not np.array_equal(array, [[1.0, -2.0], [0.5, 3.0]])
    for value in opt.state[p].values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32, value.dtype


def test_parameters_without_grad_are_skipped():
    p, q = scalar(1.0), scalar(1.0)
    opt = optim.Adam([p, q], lr=0.1)
    p.grad = np.array([1.0])
    opt.step()
    assert q.data[0] == 1.0 and q not in opt.state
    assert p.data[0] == pytest.approx(0.9)


def test_gradient_of_the_wrong_shape_is_reported():
    p = nn.Parameter(np.zeros((2, 3)))
    p.grad = np.zeros(3)
    with pytest.raises(ValueError, match=r"Adam.step: a parameter of shape \(2, 3\) has a "
                                         r"gradient of shape \(3,\)"):
        optim.Adam([p]).step()


def test_sgd_without_momentum_keeps_no_state():
    p = scalar(1.0)
    opt = optim.SGD([p], lr=0.1)
    step_with(opt, p, 1.0)
    assert opt.state == {} and opt.state_dict()["state"] == {}


def test_zero_grad_sets_none_or_zeros():
    p = scalar(1.0)
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.array([3.0])
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, [0.0])
    opt.zero_grad()
    assert p.grad is None


def test_step_calls_the_closure_and_returns_its_loss():
    p = scalar(3.0)
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 9.0 and p.data[0] == pytest.approx(3.0 - 0.1 * 6.0)


def test_param_groups_with_different_lr_and_inherited_defaults():
    p, q = scalar(1.0), scalar(1.0)
    opt = optim.SGD([{"params": [p]}, {"params": q, "lr": 0.01}], lr=0.1, momentum=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert [g["momentum"] for g in opt.param_groups] == [0.5, 0.5]
    p.grad, q.grad = np.array([1.0]), np.array([1.0])
    opt.step()
    assert (p.data[0], q.data[0]) == pytest.approx((0.9, 0.99))
    r = scalar(1.0)
    opt.add_param_group({"params": [r], "momentum": 0.0})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["momentum"] == 0.0


def test_sgd_lr_may_come_from_every_group():
    p, q = scalar(1.0), scalar(1.0)
    opt = optim.SGD([{"params": [p], "lr": 0.1}, {"params": [q], "lr": 0.2}])
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.2]


def test_repr_lists_each_group():
    text = repr(optim.SGD([scalar(1.0)], lr=0.1, momentum=0.9))
    assert text.startswith("SGD (\nParameter Group 0\n") and "    momentum: 0.9" in text


# ---------------------------------------------------------------------------- state_dict


def save_and_load(state: dict) -> dict:
    """What a checkpoint does: arrays to .npz, groups to JSON, no pickle."""
    buffer = io.BytesIO()
    np.savez(buffer, **{f"{i}.{name}": v for i, s in state["state"].items()
                        for name, v in s.items()})
    groups_json = json.dumps(state["param_groups"])
    buffer.seek(0)
    restored: dict = {}
    with np.load(buffer, allow_pickle=False) as arrays:
        for key in arrays.files:
            index, name = key.split(".", 1)
            restored.setdefault(index, {})[name] = arrays[key]   # digit-string index
    return {"state": restored, "param_groups": json.loads(groups_json)}


@pytest.mark.parametrize("factory", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.9), amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1),
], ids=["SGD", "Adam", "AdamW"])
def test_state_dict_round_trip_continues_identically(factory):
    x, y = make_data()
    straight = make_model()
    opt = factory(straight.parameters())
    for _ in range(8):
        train_step(straight, opt, x, y)

    first = make_model()
    opt = factory(first.parameters())
    for _ in range(4):
        train_step(first, opt, x, y)
    saved = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for s in saved["state"].values() for v in s.values())
    weights = first.state_dict()
    for _ in range(2):                  # later steps must not leak into the saved copy
        train_step(first, opt, x, y)

    resumed = make_model()
    resumed.load_state_dict(weights)
    opt = factory(resumed.parameters())
    opt.load_state_dict(save_and_load(saved))
    for _ in range(4):
        train_step(resumed, opt, x, y)
    for p, q in zip(straight.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_format():
    p, q = scalar(1.0), nn.Parameter(np.zeros((2, 3), dtype=np.float32))
    opt = optim.Adam([{"params": [p]}, {"params": [q], "lr": np.float64(0.5)}], lr=0.1)
    lr_scheduler.StepLR(opt, step_size=2)
    p.grad = np.array([1.0])
    opt.step()
    state = opt.state_dict()
    assert list(state["state"]) == [0]
    assert state["state"][0]["step"].shape == () and int(state["state"][0]["step"]) == 1
    assert state["param_groups"] == [
        {"lr": 0.1, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
         "maximize": False, "initial_lr": 0.1, "params": [0]},
        {"lr": 0.5, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
         "maximize": False, "initial_lr": 0.5, "params": [1]},
    ]
    assert type(state["param_groups"][1]["lr"]) is float
    opt.load_state_dict(json.loads(json.dumps(state, default=lambda a: a.tolist())))
    assert opt.param_groups[0]["betas"] == (0.9, 0.999) and opt.state[p]["step"] == 1
    assert opt.state[p]["exp_avg"].dtype == np.float64


def test_load_state_dict_mismatches_are_reported():
    p, q = scalar(1.0), scalar(2.0)
    opt = optim.SGD([p, q], lr=0.1, momentum=0.9)
    step_with(opt, p, 1.0)
    state = opt.state_dict()
    with pytest.raises(ValueError, match="the state has 1 parameter groups, this optimizer has 2"):
        optim.SGD([{"params": [p]}, {"params": [q]}], lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="group 0 of the state has 2 parameters, this "
                                         "optimizer's group 0 has 1"):
        optim.SGD([p], lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match=r"'momentum_buffer' of parameter 0 has shape \(1,\), "
                                         r"the parameter has shape \(2, 2\)"):
        optim.SGD([nn.Parameter(np.zeros((2, 2))), q], lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match=r"lacks \['betas', 'eps', 'amsgrad'\] \(was it saved "
                                         r"from another optimizer\?\)"):
        optim.Adam([p, q]).load_state_dict(state)
    with pytest.raises(ValueError, match="expected a dict with keys 'state' and 'param_groups'"):
        optim.SGD([p, q], lr=0.1).load_state_dict({"momentum_buffer": 1})


# ---------------------------------------------------------------------------- schedules


def lr_sequence(schedule, epochs: int) -> list[list[float]]:
    values = []
    for _ in range(epochs):
        values.append(schedule.get_last_lr())
        schedule.optimizer.step()
        schedule.step()
    return values


def two_group_optimizer(sgd_class, parameter):
    a, b = parameter(np.array([1.0])), parameter(np.array([2.0]))
    return sgd_class([{"params": [a]}, {"params": [b], "lr": 0.03}], lr=0.2)


SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5), 7),
    ("StepLR", dict(step_size=1), 7),
    ("CosineAnnealingLR", dict(T_max=7), 7),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01), 5),
    ("CosineAnnealingLR", dict(T_max=1, eta_min=0.01), 4),
    ("ExponentialLR", dict(gamma=0.9), 7),
    ("LinearLR", dict(), 5),
    ("LinearLR", dict(start_factor=0.25, end_factor=0.5, total_iters=4), 4),
]


@pytest.mark.parametrize("name,kwargs,period", SCHEDULES)
def test_schedule_matches_torch_for_three_periods(name, kwargs, period):
    torch = pytest.importorskip("torch")
    mine = two_group_optimizer(optim.SGD, nn.Parameter)
    twin = two_group_optimizer(torch.optim.SGD,
                               lambda a: torch.nn.Parameter(torch.from_numpy(a)))
    ours = getattr(lr_scheduler, name)(mine, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(twin, **kwargs)
    epochs = 3 * period + 2
    np.testing.assert_allclose(lr_sequence(ours, epochs), lr_sequence(theirs, epochs),
                               rtol=1e-15, atol=0)
    assert ours.last_epoch == theirs.last_epoch == epochs


def sgd(lr=1.0):
    return optim.SGD([scalar(1.0)], lr=lr)


def first_group(schedule, epochs):
    return [lrs[0] for lrs in lr_sequence(schedule, epochs)]


def test_step_lr_literal_values():
    schedule = lr_scheduler.StepLR(sgd(), step_size=2, gamma=0.5)
    assert first_group(schedule, 7) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_cosine_literal_values_and_periodicity():
    schedule = lr_scheduler.CosineAnnealingLR(sgd(), T_max=4)
    r = math.sqrt(2) / 4
    assert first_group(schedule, 9) == pytest.approx(
        [1.0, 0.5 + r, 0.5, 0.5 - r, 0.0, 0.5 - r, 0.5, 0.5 + r, 1.0], abs=1e-15)


def test_cosine_equals_the_closed_form_far_beyond_t_max():
    t_max, eta_min, base = 6, 0.05, 0.4
    schedule = lr_scheduler.CosineAnnealingLR(sgd(base), T_max=t_max, eta_min=eta_min)
    closed = [eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2
              for t in range(5 * t_max)]
    assert first_group(schedule, 5 * t_max) == pytest.approx(closed, abs=1e-14)


def test_exponential_and_linear_literal_values():
    assert first_group(lr_scheduler.ExponentialLR(sgd(), gamma=0.5), 4) == [1, 0.5, 0.25, 0.125]
    linear = lr_scheduler.LinearLR(sgd(), start_factor=0.5, end_factor=1.0, total_iters=4)
    assert first_group(linear, 6) == pytest.approx([0.5, 0.625, 0.75, 0.875, 1.0, 1.0])


def test_scheduler_sets_initial_lr_and_composes_with_outside_changes():
    opt = sgd(1.0)
    schedule = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    assert opt.param_groups[0]["initial_lr"] == 1.0 and schedule.base_lrs == [1.0]
    schedule.step()
    opt.param_groups[0]["lr"] = 0.1             # changed by hand: the decay applies to it
    schedule.step()
    assert schedule.get_last_lr() == [0.05]


@pytest.mark.parametrize("name,kwargs", [
    ("StepLR", dict(step_size=2, gamma=0.3)),
    ("CosineAnnealingLR", dict(T_max=3, eta_min=0.1)),
    ("LinearLR", dict(start_factor=0.2, total_iters=5)),
])
def test_scheduler_state_dict_round_trip(name, kwargs):
    def fresh():
        opt = optim.SGD([scalar(1.0)], lr=1.0, momentum=0.9)
        return opt, getattr(lr_scheduler, name)(opt, **kwargs)

    opt, schedule = fresh()
    straight = first_group(schedule, 10)
    opt, schedule = fresh()
    first_group(schedule, 4)
    saved_opt = json.dumps(opt.state_dict()["param_groups"])
    saved = json.dumps(schedule.state_dict())
    opt, schedule = fresh()
    state = opt.state_dict()
    state["param_groups"] = json.loads(saved_opt)
    opt.load_state_dict(state)
    schedule.load_state_dict(json.loads(saved))
    assert schedule.last_epoch == 4
    assert straight[4:] == first_group(schedule, 6)


def test_scheduler_resume_with_last_epoch():
    opt = sgd(1.0)
    with pytest.raises(ValueError, match=r"last_epoch=3 resumes a schedule, but "
                                         r"param_groups\[0\] has no 'initial_lr'"):
        lr_scheduler.StepLR(opt, step_size=2, last_epoch=3)
    opt.param_groups[0]["initial_lr"] = 1.0
    assert lr_scheduler.ExponentialLR(opt, gamma=0.5, last_epoch=3).last_epoch == 4


# ---------------------------------------------------------------------------- bad arguments

P = scalar(1.0)

BAD = [
    (lambda: optim.SGD([P], lr=-0.1), ValueError, r"SGD: lr must be >= 0, received -0\.1\."),
    (lambda: optim.SGD([P]), ValueError,
     "SGD: parameter group 0 does not set the required hyper-parameter 'lr'"),
    (lambda: optim.SGD([P], lr="0.1"), TypeError, "SGD: lr must be a number, received '0.1'"),
    (lambda: optim.SGD([P], lr=float("nan")), ValueError, "SGD: lr must be >= 0, received nan"),
    (lambda: optim.SGD([P], lr=0.1, momentum=-0.5), ValueError,
     r"SGD: momentum must be >= 0, received -0\.5\."),
    (lambda: optim.SGD([P], lr=0.1, weight_decay=-1), ValueError,
     "SGD: weight_decay must be >= 0, received -1."),
    (lambda: optim.SGD([P], lr=0.1, nesterov=True), ValueError,
     "SGD: nesterov=True requires momentum > 0 and dampening = 0, received momentum=0.0, "
     "dampening=0.0."),
    (lambda: optim.SGD([P], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "requires momentum > 0 and dampening = 0, received momentum=0.9, dampening=0.1"),
    (lambda: optim.SGD([{"params": [P], "lr": -1.0}], lr=0.1), ValueError,
     "SGD: lr must be >= 0, received -1.0"),
    (lambda: optim.Adam([P], lr=-1e-3), ValueError, r"Adam: lr must be >= 0, received -0\.001"),
    (lambda: optim.Adam([P], eps=-1e-8), ValueError, "Adam: eps must be >= 0, received -1e-08"),
    (lambda: optim.Adam([P], betas=(1.0, 0.999)), ValueError,
     r"Adam: betas\[0\] must be in \[0, 1\), received 1\.0\."),
    (lambda: optim.AdamW([P], betas=(0.9, -0.1)), ValueError,
     r"AdamW: betas\[1\] must be in \[0, 1\), received -0\.1\."),
    (lambda: optim.Adam([P], betas=0.9), TypeError,
     r"Adam: betas must be a pair \(beta1, beta2\), received 0\.9\."),
    (lambda: optim.AdamW([P], weight_decay=-0.01), ValueError,
     "AdamW: weight_decay must be >= 0, received -0.01"),
    (lambda: optim.SGD([], lr=0.1), ValueError, "SGD: params is empty"),
    (lambda: optim.SGD(P, lr=0.1), TypeError,
     "SGD: params must be an iterable of Parameters or of param-group dicts, received a single "
     "Parameter; wrap it in a list."),
    (lambda: optim.SGD([np.zeros(3)], lr=0.1), TypeError,
     "SGD: params must hold Parameters \\(Tensors\\), received an element of type ndarray."),
    (lambda: optim.SGD([P * 2], lr=0.1), ValueError, "SGD: can only optimise leaf Tensors"),
    (lambda: optim.SGD({P}, lr=0.1), TypeError,
     r"SGD: params must be an ordered collection \(a list\), received a set"),
    (lambda: optim.SGD([P, P], lr=0.1), ValueError, "lists the same parameter twice"),
    (lambda: optim.SGD([{"params": [P]}, {"params": [P]}], lr=0.1), ValueError,
     "some parameters appear in more than one parameter group"),
    (lambda: optim.SGD([{"lr": 0.1}], lr=0.1), ValueError,
     r"a param group must have a 'params' entry, received keys \['lr'\]"),
    (lambda: lr_scheduler.StepLR("sgd", step_size=2), TypeError,
     "StepLR: optimizer must be a cnnlab.optim.Optimizer, received str."),
    (lambda: lr_scheduler.StepLR(sgd(), step_size=0), ValueError,
     "StepLR: step_size must be a positive int, received 0."),
    (lambda: lr_scheduler.CosineAnnealingLR(sgd(), T_max=2.5), ValueError,
     "CosineAnnealingLR: T_max must be a positive int, received 2.5."),
    (lambda: lr_scheduler.CosineAnnealingLR(sgd(), T_max=3, eta_min=-1.0), ValueError,
     "CosineAnnealingLR: eta_min must be >= 0, received -1.0."),
    (lambda: lr_scheduler.LinearLR(sgd(), start_factor=0.0), ValueError,
     r"LinearLR: start_factor must be in \(0, 1\], received 0\.0\."),
    (lambda: lr_scheduler.LinearLR(sgd(), end_factor=1.5), ValueError,
     r"LinearLR: end_factor must be in \[0, 1\], received 1\.5\."),
    (lambda: lr_scheduler.ExponentialLR(sgd(), gamma=-0.5), ValueError,
     "ExponentialLR: gamma must be >= 0, received -0.5."),
    (lambda: lr_scheduler.StepLR(sgd(), step_size=2, last_epoch=-2), ValueError,
     "StepLR: last_epoch must be an int >= -1, received -2."),
]


@pytest.mark.parametrize("make,error,message", BAD, ids=[m for _, _, m in BAD])
def test_bad_arguments_are_reported(make, error, message):
    with pytest.raises(error, match=message):
        make()
