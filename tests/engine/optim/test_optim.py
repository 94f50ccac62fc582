import copy
import math
import sys

import pytest
import torch

from loba.config import OptimizerConfig, TrainConfig
from loba.errors import ConfigError
from loba.optim import OPTIMIZERS, SCHEDULES, Lion, build_optimizer, build_scheduler, lr_factor, validate_names

BUILTIN_OPTIMIZERS = ["adamw", "adam", "sgd", "lion"]


def _quadratic_problem():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    return param, lambda: (param**2).sum()


def _groups(param, lr=1e-2):
    return [{"params": [param], "lr": lr}]


@pytest.mark.parametrize("name", BUILTIN_OPTIMIZERS)
def test_each_optimizer_step_lowers_a_quadratic(name):
    param, loss_fn = _quadratic_problem()
    opt = build_optimizer(_groups(param), OptimizerConfig(optimizer=name, learning_rate=1e-2))
    before = loss_fn().item()
    opt.zero_grad()
    loss_fn().backward()
    opt.step()
    assert loss_fn().item() < before


def test_names_are_case_insensitive():
    param, _ = _quadratic_problem()
    assert isinstance(build_optimizer(_groups(param), OptimizerConfig(optimizer="AdamW")), torch.optim.AdamW)


def test_group_lr_is_kept_and_sgd_momentum_defaults_and_overrides():
    param, _ = _quadratic_problem()
    opt = build_optimizer(_groups(param, lr=0.5), OptimizerConfig(optimizer="sgd", learning_rate=1e-3))
    assert opt.param_groups[0]["lr"] == 0.5
    assert opt.param_groups[0]["momentum"] == 0.9
    opt = build_optimizer(_groups(param), OptimizerConfig(optimizer="sgd", optimizer_args={"momentum": 0.5}))
    assert opt.param_groups[0]["momentum"] == 0.5


def test_optimizer_args_lists_become_tuples():
    param, _ = _quadratic_problem()
    cfg = OptimizerConfig(optimizer="adamw", optimizer_args={"betas": [0.8, 0.95]})
    assert build_optimizer(_groups(param), cfg).param_groups[0]["betas"] == (0.8, 0.95)


def test_unknown_optimizer_arg_names_optimizer_args_and_the_optimizer():
    param, _ = _quadratic_problem()
    with pytest.raises(ConfigError) as info:
        build_optimizer(_groups(param), OptimizerConfig(optimizer="lion", optimizer_args={"bogus": 1}))
    assert info.value.field == "optimizer_args" and "lion" in str(info.value)


def test_lr_in_optimizer_args_is_refused():
    param, _ = _quadratic_problem()
    with pytest.raises(ConfigError, match="learning_rate"):
        build_optimizer(_groups(param), OptimizerConfig(optimizer="adamw", optimizer_args={"lr": 1.0}))


def test_lion_update_matches_hand_computation():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = Lion([param], lr=0.1, betas=(0.9, 0.99), weight_decay=0.1)
    grad = torch.tensor([0.3, -0.2, 0.0])
    for _ in range(2):
        param.grad = grad.clone()
        opt.step()
    # step 1: m=0 -> c = 0.1*g; p = p*(1-0.01) - 0.1*sign(g); m = 0.01*g
    p1 = torch.tensor([1.0 * 0.99 - 0.1, -2.0 * 0.99 + 0.1, 0.5 * 0.99])
    # step 2: c = 0.9*0.01*g + 0.1*g has the sign of g again
    p2 = p1 * 0.99 - 0.1 * torch.sign(grad)
    torch.testing.assert_close(param.detach(), p2)
    torch.testing.assert_close(opt.state[param]["exp_avg"], 0.99 * 0.01 * grad + 0.01 * grad)


def test_lion_momentum_decides_the_sign():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = Lion([param], lr=1.0, betas=(0.9, 0.0))
    param.grad = torch.tensor([1.0])
    opt.step()  # m becomes g exactly (beta2 = 0)
    param.grad = torch.tensor([-0.05])
    opt.step()  # c = 0.9*1 + 0.1*(-0.05) > 0, so it still moves down
    assert param.item() == pytest.approx(-2.0)


def test_lion_state_dict_round_trips():
    param, loss_fn = _quadratic_problem()
    opt = Lion([param], lr=0.01)
    loss_fn().backward()
    opt.step()
    clone = torch.nn.Parameter(param.detach().clone())
    opt2 = Lion([clone], lr=0.01)
    opt2.load_state_dict(opt.state_dict())
    torch.testing.assert_close(opt2.state[clone]["exp_avg"], opt.state[param]["exp_avg"])
    assert opt2.param_groups[0]["betas"] == (0.9, 0.99)


def test_unknown_optimizer_lists_registered_names():
    with pytest.raises(ConfigError) as info:
        validate_names(OptimizerConfig(optimizer="adamq"))
    assert info.value.field == "optimizer"
    assert all(name in str(info.value) for name in ["adamw", "lion", "prodigy"])


def test_unknown_schedule_lists_registered_names_also_from_a_train_config():
    with pytest.raises(ConfigError) as info:
        validate_names(TrainConfig(optimizer=OptimizerConfig(lr_scheduler="cosinus")))
    assert info.value.field == "lr_scheduler"
    assert "cosine_with_restarts" in str(info.value)


@pytest.mark.parametrize("name, module, hint", [("prodigy", "prodigyopt", "pip install prodigyopt"),
                                                ("adamw8bit", "bitsandbytes", "pip install bitsandbytes")])
def test_missing_optional_package_gives_the_install_hint(monkeypatch, name, module, hint):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    param, _ = _quadratic_problem()
    with pytest.raises(ConfigError, match=hint) as info:
        build_optimizer(_groups(param), OptimizerConfig(optimizer=name))
    assert info.value.field == "optimizer"


def test_registered_optimizer_and_schedule_become_buildable(monkeypatch):
    monkeypatch.setattr(OPTIMIZERS, "_items", dict(OPTIMIZERS._items))
    monkeypatch.setattr(SCHEDULES, "_items", dict(SCHEDULES._items))
    OPTIMIZERS.register("plainsgd", lambda groups, lr, weight_decay, **kw: torch.optim.SGD(groups, lr=lr, **kw))
    SCHEDULES.register("half", lambda step, total, cycles: 0.5)
    cfg = OptimizerConfig(optimizer="PlainSGD", lr_scheduler="half", learning_rate=0.2)
    validate_names(cfg)
    param, _ = _quadratic_problem()
    opt = build_optimizer(_groups(param, lr=0.2), cfg)
    build_scheduler(opt, cfg, total_steps=10)
    assert type(opt) is torch.optim.SGD and opt.param_groups[0]["lr"] == pytest.approx(0.1)


def _curve(schedule, total=10, warmup=0, cycles=1):
    cfg = OptimizerConfig(lr_scheduler=schedule, lr_warmup_steps=warmup, lr_scheduler_num_cycles=cycles)
    return [lr_factor(step, cfg, total) for step in range(total + 1)]


def test_warmup_ramps_linearly_never_zero_then_holds():
    curve = _curve("warmup", total=10, warmup=4)
    assert curve[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert curve[5:] == pytest.approx([1.0] * 6)
    assert _curve("constant_with_warmup", warmup=4) == curve


def test_linear_ends_at_zero_after_warmup():
    curve = _curve("linear", total=12, warmup=2)
    assert curve[2] == pytest.approx(1.0)
    assert curve[7] == pytest.approx(0.5)
    assert curve[12] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(curve[2:], curve[3:]))


def test_cosine_is_half_way_at_the_middle_and_ends_at_zero():
    curve = _curve("cosine", total=10)
    assert curve[0] == pytest.approx(1.0)
    assert curve[5] == pytest.approx(0.5)
    assert curve[10] == pytest.approx(0.0, abs=1e-12)


def test_cosine_with_restarts_restarts_num_cycles_times():
    curve = _curve("cosine_with_restarts", total=12, cycles=3)
    assert [curve[i] for i in (0, 4, 8)] == pytest.approx([1.0, 1.0, 1.0])
    assert [curve[i] for i in (2, 6, 10)] == pytest.approx([0.5, 0.5, 0.5])
    assert curve[3] < 0.5 and curve[12] == 0.0
    assert 0 <= min(curve) and max(curve) <= 1


def test_scheduler_applies_factors_to_each_group():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    cfg = OptimizerConfig(optimizer="sgd", lr_scheduler="cosine", lr_warmup_steps=1, learning_rate=1.0)
    opt = build_optimizer([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.1}], cfg)
    sched = build_scheduler(opt, cfg, total_steps=5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 0.05])
    for _ in range(3):
        opt.step()
        sched.step()
    expected = 0.5 * (1 + math.cos(math.pi * 2 / 4))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([expected, 0.1 * expected])


def _train(opt, sched, param, steps):
    for _ in range(steps):
        opt.zero_grad()
        ((param - 0.3) ** 2).sum().backward()
        opt.step()
        sched.step()


@pytest.mark.parametrize("name", BUILTIN_OPTIMIZERS)
def test_optimizer_and_scheduler_state_dicts_resume_identically(name):
    cfg = OptimizerConfig(optimizer=name, lr_scheduler="cosine_with_restarts", lr_warmup_steps=3,
                          lr_scheduler_num_cycles=2, learning_rate=0.05, weight_decay=0.01)
    total = 20
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = build_optimizer(_groups(param, lr=0.05), cfg)
    sched = build_scheduler(opt, cfg, total)
    _train(opt, sched, param, 7)
    # deepcopy: state_dict() shares the live state tensors, as a checkpoint on disk would not
    saved = copy.deepcopy((param.detach(), opt.state_dict(), sched.state_dict()))
    _train(opt, sched, param, total - 7)

    resumed = torch.nn.Parameter(saved[0].clone())
    opt2 = build_optimizer(_groups(resumed, lr=0.05), cfg)
    sched2 = build_scheduler(opt2, cfg, total)
    opt2.load_state_dict(saved[1])
    sched2.load_state_dict(saved[2])
    _train(opt2, sched2, resumed, total - 7)
    assert torch.equal(resumed.detach(), param.detach())
    assert sched2.get_last_lr() == sched.get_last_lr()
