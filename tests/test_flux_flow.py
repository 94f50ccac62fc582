"""Flow matching in the engine, against hand computations: x_t, the objectives' targets in velocity space, the
partial denoise as Euler steps on the sigma table, min-SNR's flow analogue and the loss, the trajectory cache,
previews, the timestep range and sigma = 1. The model is a fake tiny flow backend (support/flow_models.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from support.flow_models import TinyFlowBackend

from loba.config import TrainConfig
from loba.config.train_config import LossConfig
from loba.diffusion.sampler import cfg_ddim
from loba.diffusion.schedule import NoiseSchedule
from loba.errors import ConfigError
from loba.models.backend import Conditioning
from loba.models.flux_schedule import flux_shift, flux_sigmas, image_seq_len
from loba.objectives.actions import OBJECTIVES, TargetContext
from loba.objectives.losses import compute_loss
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.train.loop import build_network
from loba.train.preview import preview_latents
from loba.train.run import RunRequest, run_training
from loba.train.step import SliderStep

CONFIG = TrainConfig().replace(max_denoising_steps=5, seed=3, network_dim=2, learning_rate=1e-2)


@pytest.fixture
def backend():
    return TinyFlowBackend()


def erase_pair(**changes) -> PromptPair:
    fields = dict(target="a red circle", positive="red", unconditional="", neutral="a circle", action="erase",
                  guidance_scale=2.0, resolutions=((32, 32),), batch_size=2)
    return PromptPair(**{**fields, **changes})


def sigma_by_hand(t: int, mu: float, n: int = 1000) -> float:
    base = (t + 1) / n
    return math.exp(mu) / (math.exp(mu) + (1 / base - 1))


# -- the schedule -----------------------------------------------------------------------------------------
def test_the_sigma_table_is_fluxs_shifted_one_ending_in_pure_noise():
    mu = flux_shift(image_seq_len(1024, 1024))
    assert image_seq_len(1024, 1024) == 4096 and mu == pytest.approx(1.15)
    assert flux_shift(image_seq_len(256, 256)) == pytest.approx(0.5) and flux_shift(image_seq_len(512, 512)) == pytest.approx(0.63)
    sigmas = flux_sigmas(mu)
    for t in (0, 1, 250, 600, 998):
        assert float(sigmas[t]) == pytest.approx(sigma_by_hand(t, mu), rel=1e-12)
    assert float(sigmas[-1]) == 1.0 and bool((sigmas.diff() > 0).all())
    assert torch.equal(flux_sigmas(0.0), torch.arange(1, 1001, dtype=torch.float64) / 1000)  # schnell: no shift


def test_the_shift_matches_diffusers_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    assert flux_shift(1234) == pytest.approx(calculate_shift(1234))
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
    base = torch.arange(1, 1001, dtype=torch.float64) / 1000
    assert torch.allclose(flux_sigmas(0.8)[:-1], scheduler.time_shift(0.8, 1.0, base)[:-1].double(), rtol=1e-12)


def test_x_t_and_the_velocity_by_hand(backend):
    schedule = backend.noise_schedule()
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 4, 4, generator=gen), torch.randn(2, 4, 4, 4, generator=gen)
    t = torch.tensor([100, 900])
    a, s = schedule.coefficients(t, x0)
    sigma = flux_sigmas(1.15)[t].float().view(-1, 1, 1, 1)
    assert torch.allclose(a, 1 - sigma) and torch.allclose(s, sigma)
    x_t = (1 - sigma) * x0 + sigma * eps
    u = eps - x0
    assert torch.allclose(schedule.to_x0(u, x_t, t), x0, atol=1e-5)
    assert torch.allclose(schedule.to_epsilon(u, x_t, t), eps, atol=1e-5)
    assert torch.allclose(schedule.from_epsilon(eps, x_t, t), u, atol=1e-4)
    # SNR: a^2 / s^2, the variance-preserving alpha_bar of the same SNR
    assert torch.allclose(schedule.snr(t), ((1 - sigma) ** 2 / sigma**2).flatten(), rtol=1e-5)


# -- the targets ----------------------------------------------------------------------------------------------
def _teachers(prompts, x_t, t, schedule):
    """eps predictions per prompt and the same predictions as velocities at x_t."""
    gen = torch.Generator().manual_seed(5)
    eps = {p: torch.randn(x_t.shape, generator=gen) for p in prompts}
    return eps, {p: schedule.from_epsilon(e, x_t, t) for p, e in eps.items()}


@pytest.mark.parametrize("action", ["erase", "enhance", "reattach"])
def test_each_objective_combines_velocities_as_it_combines_eps(backend, action):
    schedule = backend.noise_schedule()
    x_t = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([700])
    if action == "reattach":
        pair = SimpleNamespace(target="caption", positive="redirect", schedule="constant", ramp=0.0)
        prompts = ("caption", "redirect")
    else:
        pair = erase_pair(action=action, guidance_scale=3.0)
        prompts = ("a circle", "red", "")
    eps, velocity = _teachers(prompts, x_t, t, schedule)
    context = TargetContext(progress=0.5, timestep=700)
    combine = OBJECTIVES.get(action).combine
    in_velocity = combine(pair, velocity, context)
    assert torch.allclose(in_velocity, schedule.from_epsilon(combine(pair, eps, context), x_t, t), atol=1e-4)
    if action == "reattach":  # constant schedule: lambda 1, the redirect's own velocity
        assert torch.allclose(in_velocity, velocity["redirect"])
    else:
        sign = -1 if action == "erase" else 1
        hand = velocity["a circle"] + sign * 3.0 * (velocity["red"] - velocity[""])
        assert torch.allclose(in_velocity, hand)


# -- the partial denoise ----------------------------------------------------------------------------------------
def euler_by_hand(backend, x, grid, cond_pair, cfg, steps):
    sigmas = backend.noise_schedule().sigmas
    for i in range(steps):
        t = grid[i]
        ts = torch.full((2 * x.shape[0],), t)
        uncond, cond = backend.predict(torch.cat([x, x]), ts, cond_pair).chunk(2)
        u = uncond + cfg * (cond - uncond)
        sigma_next = float(sigmas[grid[i + 1]]) if i + 1 < len(grid) else 0.0
        x = x + (sigma_next - float(sigmas[t])) * u
    return x


def test_the_partial_denoise_is_euler_on_the_sigma_table(backend):
    schedule = backend.noise_schedule()
    grid = schedule.ddim_grid(6, "trailing").tolist()
    assert grid[0] == 999 and float(schedule.sigmas[grid[0]]) == 1.0
    x = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    cond_pair = Conditioning.cat([backend.encode_prompts([""])[""], backend.encode_prompts(["a red circle"])["a red circle"]])
    predict = lambda x_pair, t: backend.predict(x_pair, torch.full((x_pair.shape[0],), t), cond_pair)  # noqa: E731
    for steps in (1, 3, 6):  # partial, and all the way to x0 (sigma 0)
        (ours,) = cfg_ddim(predict, x, schedule, grid, 4.0, steps=steps)
        assert torch.allclose(ours, euler_by_hand(backend, x, grid, cond_pair, 4.0, steps), atol=1e-5)


def test_the_steps_x_t_teachers_and_target_by_hand(backend):
    prompts = PromptSet((erase_pair(),), (AnchorPrompt("a blue square"),))
    config = CONFIG.replace(timestep_spacing="trailing", leco_denoise_guidance_scale=3.0)
    network = build_network(backend, config)
    step = SliderStep(backend, network, prompts, config, backend.encode_prompts(prompts.all_prompts()))
    with backend.training_session(), network.attached(backend.model):
        plan = step.plan(torch.Generator().manual_seed(4))
        network.multiplier = 1.0
        emb = backend.encode_prompts(["", "a red circle"])
        cond_pair = Conditioning.cat([emb[""].repeat(2), emb["a red circle"].repeat(2)])
        x_t = step.denoise(plan)
        assert torch.allclose(x_t, euler_by_hand(backend, plan.noise, step.grid.tolist(), cond_pair, 3.0, plan.k), atol=1e-5)
        teacher = step.teachers(plan, x_t)
        network.multiplier = 0.0
        ts = torch.full((2,), plan.timestep)
        frozen = {p: backend.predict(x_t, ts, backend.encode_prompts([p])[p].repeat(2)) for p in ("a circle", "red", "")}
        assert all(torch.allclose(teacher[p], frozen[p], atol=1e-6) for p in frozen)
        target = step.target(plan, teacher)
        assert torch.allclose(target, frozen["a circle"] - 2.0 * (frozen["red"] - frozen[""]), atol=1e-6)
        result = step.run(plan)
        student = step.student(plan, x_t)[0]
    assert result.main.item() == pytest.approx(float(((student.detach() - target) ** 2).mean()), rel=1e-5)


# -- min-SNR and the loss ----------------------------------------------------------------------------------------
def test_min_snr_flow_weights_the_velocity_loss_exactly_as_eps_min_snr(backend):
    schedule = backend.noise_schedule()
    gen = torch.Generator().manual_seed(3)
    x_t = torch.randn(3, 4, 4, 4, generator=gen)
    eps_pred, eps_target = torch.randn(x_t.shape, generator=gen), torch.randn(x_t.shape, generator=gen)
    t = torch.tensor([50, 500, 950])
    u_pred, u_target = schedule.from_epsilon(eps_pred, x_t, t), schedule.from_epsilon(eps_target, x_t, t)
    gamma = 5.0
    loss = compute_loss(u_pred, u_target, cfg=LossConfig(min_snr_gamma=gamma), timesteps=t, schedule=schedule)
    snr = schedule.snr(t)
    eps_weight = torch.clamp(snr, max=gamma) / snr  # epsilon's min-SNR (Hang et al.)
    eps_loss = (((eps_pred - eps_target) ** 2).mean(dim=(1, 2, 3)) * eps_weight).mean()
    assert float(loss) == pytest.approx(float(eps_loss), rel=1e-4)
    plain = compute_loss(u_pred, u_target, cfg=LossConfig(), timesteps=t, schedule=schedule)
    assert float(plain) == pytest.approx(float(((u_pred - u_target) ** 2).mean()), rel=1e-6)


def test_sigma_one_is_finite_everywhere_but_refuses_eps_to_velocity(backend):
    schedule = backend.noise_schedule()
    assert schedule.zero_terminal_snr  # sigma = 1: a = 0, pure noise
    t = torch.tensor([999])
    x, u = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    assert torch.equal(schedule.to_epsilon(u, x, t), x) and torch.allclose(schedule.to_x0(u, x, t), x - u)
    assert torch.allclose(schedule.ddim_step(u, x, 999, 500), x + (float(schedule.sigmas[500]) - 1) * u, atol=1e-6)
    loss = compute_loss(u, x, cfg=LossConfig(min_snr_gamma=5.0), timesteps=t, schedule=schedule)
    assert float(loss) == 0.0  # the weight's limit at snr = 0, not 0/0
    with pytest.raises(ValueError, match="flow"):
        schedule.from_epsilon(x, x, t)
    with pytest.raises(ValueError, match="ascending"):
        NoiseSchedule.flow(flux_sigmas(1.15).flip(0))


# -- spacing, the cache, previews, a whole run ------------------------------------------------------------------
def test_the_timestep_range_and_spacings_on_the_sigma_table(backend):
    prompts = PromptSet((erase_pair(),), ())
    encoded = backend.encode_prompts(prompts.all_prompts())
    trailing = SliderStep(backend, None, prompts, CONFIG.replace(timestep_spacing="trailing"), encoded)
    assert trailing.grid.tolist()[0] == 999 and 0 in trailing.allowed_k  # trains on the pure noise too
    leading = SliderStep(backend, None, prompts, CONFIG, encoded)
    assert 0 not in leading.allowed_k  # LECO's: never at t = 999
    ranged = SliderStep(backend, None, prompts, CONFIG.replace(min_timestep=300, max_timestep=800), encoded)
    assert ranged.allowed_k and all(300 <= int(ranged.grid[k]) < 800 for k in ranged.allowed_k)
    with pytest.raises(ConfigError, match="min_timestep"):
        SliderStep(backend, None, prompts, CONFIG.replace(min_timestep=990, max_timestep=995), encoded)
    plan = trailing.plan(torch.Generator().manual_seed(0))
    plan.k, plan.timestep = 0, 999
    assert torch.equal(trailing.denoise(plan), plan.noise)  # at sigma = 1 the noise IS x_t


def test_the_trajectory_cache_gives_the_fresh_euler_x_t(backend):
    prompts = PromptSet((erase_pair(),), ())
    config = CONFIG.replace(denoise_with_adapter=False)
    encoded = backend.encode_prompts(prompts.all_prompts())
    null = SimpleNamespace(multiplier=0.0)
    fresh = SliderStep(backend, null, prompts, config, encoded)
    cached = SliderStep(backend, null, prompts, config.replace(trajectory_cache=1, trajectory_refresh_every=100), encoded)
    plan = cached.plan(torch.Generator().manual_seed(1))
    assert torch.allclose(cached.denoise(plan), fresh.denoise(plan), atol=1e-5)  # the pool: this plan's noise
    for k in cached.allowed_k:  # every other k of the pair: read from it, the same as a fresh Euler run
        other = type(plan)(**{**plan.__dict__, "k": k, "timestep": int(cached.grid[k])})
        assert torch.allclose(cached.denoise(other), fresh.denoise(other), atol=1e-5)


def test_previews_are_euler_runs_per_weight(backend):
    network = build_network(backend, CONFIG)
    emb = backend.encode_prompts(["", "a red circle"])
    with network.attached(backend.model):
        latents = preview_latents(backend, network, emb["a red circle"], emb[""], (0.0,), 32, 32, steps=4, cfg=2.0,
                                  seed=7, spacing="trailing")
        noise = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(7))
        grid = backend.noise_schedule().ddim_grid(4, "trailing").tolist()
        network.multiplier = 0.0
        hand = euler_by_hand(backend, noise, grid, Conditioning.cat([emb[""], emb["a red circle"]]), 2.0, 4)
    assert torch.allclose(latents, hand, atol=1e-5)


def test_a_flow_run_lowers_the_loss_and_saves_a_kohya_flux_file(backend, tmp_path):
    from loba.sliders.kohya import load_slider

    prompts = PromptSet((erase_pair(batch_size=1),), ())
    config = CONFIG.replace(max_train_steps=30, timestep_spacing="trailing", min_snr_gamma=5.0, learning_rate=3e-2)
    before = {k: v.clone() for k, v in backend.model.state_dict().items()}
    result = run_training(RunRequest(prompts, config, backend=backend))
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert all(math.isfinite(v) for v in result.losses) and last < first
    assert all(torch.equal(before[k], v) for k, v in backend.model.state_dict().items())
    saved = load_slider(result.save(tmp_path / "flow.safetensors"))
    assert set(saved.module_stems()) == {"lora_unet_double_blocks_0_img_attn_qkv"}
