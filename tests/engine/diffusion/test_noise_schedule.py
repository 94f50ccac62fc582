"""Epsilon/v conversions and the DDIM step agree with each other."""

import torch
from support.tiny_models import sd_alphas_cumprod

from loba.diffusion.schedule import NoiseSchedule


def test_grid_matches_sd_ddim_leading_spacing():
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                              set_alpha_to_one=False, clip_sample=False)
    scheduler.set_timesteps(40)
    grid = NoiseSchedule(sd_alphas_cumprod()).ddim_grid(40)
    assert torch.equal(grid, scheduler.timesteps.long())


def test_v_and_eps_parameterizations_describe_the_same_prediction():
    gen = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(3, 4, 8, 8, generator=gen), torch.randn(3, 4, 8, 8, generator=gen)
    t = torch.tensor([10, 500, 990])
    eps_schedule = NoiseSchedule(sd_alphas_cumprod(), "epsilon")
    v_schedule = NoiseSchedule(sd_alphas_cumprod(), "v_prediction")
    a, s = eps_schedule.coefficients(t, x0)
    x_t = a * x0 + s * eps
    v = a * eps - s * x0
    assert torch.allclose(v_schedule.to_epsilon(v, x_t, t), eps, atol=1e-5)
    assert torch.allclose(v_schedule.to_x0(v, x_t, t), x0, atol=1e-4)
    assert torch.allclose(eps_schedule.to_x0(eps, x_t, t), x0, atol=1e-3)
    assert torch.allclose(v_schedule.from_epsilon(eps, x_t, t), v, atol=1e-5)


def test_ddim_step_is_the_same_in_both_parameterizations():
    gen = torch.Generator().manual_seed(2)
    x_t, eps = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 4, 8, 8, generator=gen)
    eps_schedule = NoiseSchedule(sd_alphas_cumprod(), "epsilon")
    v_schedule = NoiseSchedule(sd_alphas_cumprod(), "v_prediction")
    v = v_schedule.from_epsilon(eps, x_t, torch.tensor([701, 701]))
    assert torch.allclose(eps_schedule.ddim_step(eps, x_t, 701, 676), v_schedule.ddim_step(v, x_t, 701, 676), atol=1e-5)


def test_snr_uses_the_real_timestep():
    schedule = NoiseSchedule(sd_alphas_cumprod())
    ac = sd_alphas_cumprod()
    assert torch.allclose(schedule.snr(torch.tensor([0, 999])), (ac[[0, 999]] / (1 - ac[[0, 999]])).float())
    assert schedule.snr(torch.tensor([0])) > schedule.snr(torch.tensor([999]))
