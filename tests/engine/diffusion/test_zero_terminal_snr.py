"""Timestep spacings as diffusers spaces them, and the schedule maths where alpha_bar = 0 (zero terminal SNR)."""

import pytest
import torch
from support.backends import make_backend
from support.tiny_models import SD_BETA_END, SD_BETA_START, sd_alphas_cumprod

from loba.config import TrainConfig
from loba.diffusion.schedule import NoiseSchedule
from loba.diffusion.spacing import TIMESTEP_SPACINGS
from loba.errors import ConfigError, UnsupportedModelError
from loba.objectives.losses import min_snr_weight
from loba.prompts import PromptPair, PromptSet
from loba.train.loop import build_network
from loba.train.step import SliderStep


def diffusers_zsnr_alphas_cumprod() -> torch.Tensor:
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(beta_start=SD_BETA_START, beta_end=SD_BETA_END, beta_schedule="scaled_linear",
                              rescale_betas_zero_snr=True)
    return scheduler.alphas_cumprod.double()


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 3, 7, 25, 40, 333])
def test_grids_are_diffusers_ddim_grids(spacing, steps):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(beta_start=SD_BETA_START, beta_end=SD_BETA_END, beta_schedule="scaled_linear", steps_offset=1,
                              set_alpha_to_one=False, clip_sample=False, timestep_spacing=spacing)
    scheduler.set_timesteps(steps)
    assert NoiseSchedule(sd_alphas_cumprod()).ddim_grid(steps, spacing).tolist() == scheduler.timesteps.tolist()


def test_only_leading_keeps_leco_first_index():
    assert TIMESTEP_SPACINGS.get("leading").first_trained_index == 1
    assert all(TIMESTEP_SPACINGS.get(name).first_trained_index == 0 for name in ("trailing", "linspace"))
    with pytest.raises(ConfigError, match="timestep_spacing.*leading, trailing, linspace"):
        NoiseSchedule(sd_alphas_cumprod()).ddim_grid(10, "karras")


def test_epsilon_on_a_zero_terminal_snr_schedule_is_refused():
    zsnr = diffusers_zsnr_alphas_cumprod()
    assert float(zsnr[-1]) == 0.0
    with pytest.raises(UnsupportedModelError, match="epsilon.*zero-terminal-SNR.*v_prediction"):
        NoiseSchedule(zsnr, "epsilon")
    assert NoiseSchedule(zsnr, "v_prediction").zero_terminal_snr and not NoiseSchedule(sd_alphas_cumprod()).zero_terminal_snr


def test_v_prediction_maths_stay_finite_at_alpha_bar_zero():
    schedule = NoiseSchedule(diffusers_zsnr_alphas_cumprod(), "v_prediction")
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 4, 8, 8, generator=gen)
    t = torch.tensor([999, 999])
    x_t, v = eps, -x0  # a = 0, s = 1: x_t = eps and v = a*eps - s*x0
    assert torch.equal(schedule.to_x0(v, x_t, t), x0) and torch.equal(schedule.to_epsilon(v, x_t, t), eps)
    stepped = schedule.ddim_step(v, x_t, 999, 749)
    a, s = schedule.coefficients(torch.tensor([749]), x_t)
    assert torch.isfinite(stepped).all() and torch.allclose(stepped, a * x0 + s * eps, atol=1e-6)
    with pytest.raises(ValueError, match="alpha_bar = 0"):
        schedule.from_epsilon(eps, x_t, t)
    snr = schedule.snr(torch.tensor([999, 0]))
    assert float(snr[0]) == 0.0
    assert min_snr_weight(snr, 5.0, "v_prediction")[0] == 0.0 and min_snr_weight(snr, 5.0, "epsilon")[0] == 1.0


def test_a_trailing_run_trains_at_t_999_on_the_noise_itself(tokenizer):
    backend = make_backend(tokenizer, "sd2", "v_prediction")
    backend._alphas_cumprod = diffusers_zsnr_alphas_cumprod()
    prompts = PromptSet(entries=(PromptPair(target="a cat", positive="a cat", resolutions=((64, 64),)),))
    config = TrainConfig().replace(max_denoising_steps=4, timestep_spacing="trailing", trajectory_cache=2, min_snr_gamma=5.0)
    network = build_network(backend, config)
    step = SliderStep(backend, network, prompts, config, backend.encode_prompts(prompts.all_prompts()))
    assert step.grid.tolist() == [999, 749, 499, 249] and step.allowed_k == [0, 1, 2, 3]
    gen = torch.Generator().manual_seed(0)
    plans = [step.plan(gen) for _ in range(12)]
    plan = next(p for p in plans if p.k == 0)
    with backend.training_session(), network.attached(backend.unet):
        assert torch.equal(step.denoise(plan), plan.noise) and step.cache.trajectories_made == 0
        result = step.run(plan)
    assert result.timestep == 999 and torch.isfinite(result.loss)


def test_leading_stays_as_it_was(tokenizer):
    backend = make_backend(tokenizer, "sd1")
    prompts = PromptSet(entries=(PromptPair(target="a cat", positive="a cat", resolutions=((64, 64),)),))
    config = TrainConfig().replace(max_denoising_steps=40)
    assert config.sampling.timestep_spacing == "leading"
    step = SliderStep(backend, build_network(backend, config), prompts, config, backend.encode_prompts(prompts.all_prompts()))
    assert step.allowed_k == list(range(1, 40)) and int(step.grid[1]) == 951
