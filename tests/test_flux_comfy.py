"""Flux.1 sliders in ComfyUI: a tiny comfy.model_base.Flux (dev and schnell) and a tiny real Flux CLIP (T5 + CLIP-L)
train in velocity space on the MODEL's own (patched) ModelSamplingFlux schedule.

The hand computations walk LOBA's grid the ComfyUI way: sigma from the patched model_sampling object (checked against
its own 10000-step `sigmas` table, what its samplers read), the model through BaseModel.apply_model (which returns the
denoised x - sigma * v), CFG on the denoised latents and Euler steps x' = d + sigma' (x - d) / sigma. They share
nothing with LOBA's schedule, parameterization or model-call code.
"""

from __future__ import annotations

import pytest
import torch
from support.comfy import COMFY_MARKS, require_comfyui
from support.comfy_flux import tiny_flux_clip, tiny_flux_model

from loba.config import TrainConfig
from loba.prompts import PromptPair, PromptSet
from loba.train.loop import build_network, train
from loba.train.step import SliderStep, StepPlan

require_comfyui()
pytestmark = COMFY_MARKS

PAIR = PromptPair(target="a cat", positive="a cat", neutral="an animal", unconditional="", guidance_scale=1.5,
                  resolutions=((64, 48),))
PROMPTS = PromptSet(entries=(PAIR,))
CONFIG = TrainConfig().replace(max_denoising_steps=4, timestep_spacing="trailing", leco_denoise_guidance_scale=3.0,
                               denoise_with_adapter=False, min_snr_gamma=5.0, learning_rate=3e-3, network_dim=4,
                               network_alpha=4.0, seed=1)
VARIANTS = ("dev", "dev+ModelSamplingFlux", "schnell", "dev+ModelSamplingSD3")
TOLERANCE = 1e-4  # hand (float64 around float32 model calls) vs LOBA (float32)


@pytest.fixture(scope="module")
def models(comfy):
    return {"dev": tiny_flux_model(comfy, "dev"), "schnell": tiny_flux_model(comfy, "schnell"), "clip": tiny_flux_clip()}


@pytest.fixture(scope="module")
def module(pack):
    return pack.module.nodes.comfy_backend


def variant(models, name: str):
    from comfy_extras.nodes_model_advanced import ModelSamplingFlux, ModelSamplingSD3

    model = models[name.split("+")[0]]
    with torch.inference_mode():  # as the executor runs the patch nodes
        if name.endswith("ModelSamplingFlux"):  # the resolution-dependent shift of a 1024x768 workflow
            return ModelSamplingFlux().patch(model, 1.15, 0.5, 1024, 768)[0]
        if name.endswith("ModelSamplingSD3"):
            return ModelSamplingSD3().patch(model, 3.0)[0]
    return model


def backend_of(module, model, clip, **kwargs):
    with torch.inference_mode():
        return module.ComfyBackend(model, clip, **kwargs)


class FluxHand:
    def __init__(self, model, clip, guidance):
        self.sampling = model.get_model_object("model_sampling")
        self.model, self.clip, self.guidance = model, clip, guidance

    def sigma(self, t: int) -> float:
        units = float(getattr(self.sampling, "multiplier", 1.0))
        sigma = float(self.sampling.sigma(torch.tensor((t + 1) / 1000 * units, dtype=torch.float64)))
        table = self.sampling.sigmas  # the sampler's table: sigma((i + 1) / len) in the same units
        assert abs(float(table[(t + 1) * len(table) // 1000 - 1]) - sigma) < 1e-6
        return sigma

    def velocities(self, x: torch.Tensor, t: int, prompts: list[str]) -> list[torch.Tensor]:
        sigma, out = self.sigma(t), []
        with torch.inference_mode():
            for text in prompts:
                context, pooled = self.clip.encode_from_tokens(self.clip.tokenize(text), return_pooled=True)
                d = self.model.model.apply_model(x.float(), torch.tensor([sigma]), c_crossattn=context, y=pooled,
                                                 guidance=torch.tensor([self.guidance])).double()
                out.append(((x - d) / sigma).clone())
        return out

    def x_t(self, noise: torch.Tensor, grid: list[int], k: int, cfg: float) -> torch.Tensor:
        x = noise.double()  # grid[0] = 999: sigma = 1, pure noise
        for i in range(k):
            uncond, cond = self.velocities(x, grid[i], [PAIR.unconditional, PAIR.target])
            sigma = self.sigma(grid[i])
            du, dc = x - sigma * uncond, x - sigma * cond
            d = du + cfg * (dc - du)
            x = d + self.sigma(grid[i + 1]) * (x - d) / sigma
        return x

    def loss(self, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        target_out, neutral, positive, uncond = self.velocities(x_t, t, [PAIR.target, PAIR.neutral, PAIR.positive,
                                                                        PAIR.unconditional])
        target = neutral - PAIR.guidance_scale * (positive - uncond)
        sigma = self.sigma(t)
        snr = ((1 - sigma) / sigma) ** 2
        weight = 5.0 / max(snr, 5.0) * (1 - sigma) ** 2  # min-SNR of eps carried to velocity (parameterizations.py)
        return target, weight * ((target_out - target) ** 2).mean()  # a fresh slider predicts as the frozen model


def _plan(step, k: int) -> StepPlan:
    noise = torch.randn(1, 16, 8, 6, generator=torch.Generator().manual_seed(7))
    return StepPlan(0, PAIR, 64, 48, k, int(step.grid[k]), noise, None)


def _close(ours: torch.Tensor, hand: torch.Tensor) -> bool:
    return float((ours.double() - hand).abs().max()) <= TOLERANCE * max(1.0, float(hand.abs().max()))


@pytest.mark.parametrize("name", VARIANTS)
def test_family_and_schedule_are_the_patched_flow_ones(models, module, name):
    model = variant(models, name)
    backend = backend_of(module, model, models["clip"])
    schedule = backend.noise_schedule()
    hand = FluxHand(model, models["clip"], 3.5)
    assert backend.family == "flux" and backend.prediction_type == "flow" and backend.latent_channels == 16
    assert backend.guidance == (None if name == "schnell" else 3.5)
    assert backend.native_resolution == 1024
    for t in (0, 249, 500, 998, 999):
        assert abs(float(schedule.sigmas[t]) - hand.sigma(t)) < 1e-9
    if name == "schnell":  # shift 1: sigma = t
        torch.testing.assert_close(schedule.sigmas, torch.arange(1, 1001, dtype=torch.float64) / 1000)
    if name != "dev":  # the patch changed the schedule (a shift other than dev's 1.15)
        base = backend_of(module, models["dev"], models["clip"]).noise_schedule()
        assert float((schedule.sigmas - base.sigmas).abs().max()) > 1e-3


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("k", [0, 2])
def test_x_t_target_and_loss_equal_a_hand_computation_in_velocity_space(models, module, name, k):
    model = variant(models, name)
    backend = backend_of(module, model, models["clip"])
    hand = FluxHand(model, models["clip"], 3.5)
    network = build_network(backend, CONFIG)
    with torch.inference_mode():
        embeddings = backend.encode_prompts(PROMPTS.all_prompts())
    with torch.inference_mode(False), backend.training_session(), network.attached(backend.denoiser()):
        step = SliderStep(backend, network, PROMPTS, CONFIG, embeddings)
        assert step.grid.tolist() == [999, 749, 499, 249]
        plan = _plan(step, k)
        x_t = step.denoise(plan)
        target = step.target(plan, step.teachers(plan, x_t))
        loss = step.run(plan).loss
    hand_x_t = hand.x_t(plan.noise, step.grid.tolist(), k, CONFIG.sampling.leco_denoise_guidance_scale)
    hand_target, hand_loss = hand.loss(hand_x_t, plan.timestep)
    assert _close(x_t, hand_x_t) and _close(target, hand_target)
    # At k = 0 (t = 999, sigma = 1) min-SNR's flow weight (1 - sigma)^2 is 0: pure noise says nothing of x0.
    assert torch.isfinite(loss) and abs(float(loss.detach()) - float(hand_loss)) <= TOLERANCE * float(hand_loss) + 1e-12
    if k:
        assert float(hand_loss) > 1e-6


def test_guidance_reaches_flux_dev(models, module):
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(2))
    outs = []
    for guidance in (1.0, 3.5):
        backend = backend_of(module, models["dev"], models["clip"], guidance=guidance)
        with torch.inference_mode():
            cond = backend.encode_prompts(["a cat"])["a cat"]
        with torch.no_grad(), backend.training_session():
            outs.append(backend.predict(x, torch.tensor([500]), cond).clone())
    assert float((outs[0] - outs[1]).abs().max()) > 1e-4


@pytest.mark.parametrize("name, checkpointed", [("dev", True), ("schnell", False)])
def test_a_short_run_lowers_the_loss(models, module, name, checkpointed):
    backend = backend_of(module, models[name], models["clip"])
    network = build_network(backend, CONFIG)

    def fixed_loss() -> float:  # the same noise at every grid point, before and after training
        with torch.inference_mode():
            embeddings = backend.encode_prompts(PROMPTS.all_prompts())
        with torch.inference_mode(False), torch.no_grad(), backend.training_session(), network.attached(backend.denoiser()):
            step = SliderStep(backend, network, PROMPTS, CONFIG, embeddings)
            return sum(float(step.run(_plan(step, k)).loss.detach()) for k in step.allowed_k)

    before = fixed_loss()
    with torch.inference_mode():
        result = train(backend, PROMPTS, CONFIG.replace(max_train_steps=16, gradient_checkpointing=checkpointed), network=network)
    after = fixed_loss()
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert not backend.gradient_checkpointing(), "checkpointing removed after the run"
    assert after < 0.9 * before, (before, after)


def test_gradient_checkpointing_gives_the_same_gradients_on_flux(models, module):
    backend = backend_of(module, models["dev"], models["clip"])
    network = build_network(backend, CONFIG)
    x = torch.randn(1, 16, 8, 6, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        cond = backend.encode_prompts(["a cat"])["a cat"]
    grads = []
    for enabled in (False, True):
        with torch.inference_mode(False), backend.training_session(), network.attached(backend.denoiser()):
            backend.set_gradient_checkpointing(enabled)
            try:
                network.zero_grad()
                for p in network.parameters():  # a fresh LoRA's up matrices are 0: give every factor a gradient
                    torch.nn.init.normal_(p, std=0.01, generator=torch.Generator().manual_seed(0)) if enabled is False else None
                backend.predict(x, torch.tensor([600]), cond).square().mean().backward()
                grads.append([p.grad.clone() for p in network.parameters()])
            finally:
                backend.set_gradient_checkpointing(False)
    assert all(torch.allclose(a, b, atol=1e-7, rtol=1e-5) for a, b in zip(*grads))
    assert any(float(g.abs().max()) > 0 for g in grads[0])


@pytest.mark.parametrize("patch", ["eps", "edm"])
def test_a_flux_model_patched_to_another_sampling_is_refused(models, module, pack, patch):
    from comfy_extras.nodes_model_advanced import ModelSamplingContinuousEDM, ModelSamplingDiscrete

    with torch.inference_mode():
        model = (ModelSamplingDiscrete().patch(models["dev"], "eps", False)[0] if patch == "eps" else
                 ModelSamplingContinuousEDM().patch(models["dev"], "edm", 120.0, 0.002)[0])
    with pytest.raises(pack.module.loba.errors.UnsupportedModelError, match="this Flux MODEL samples as .*trains as flow"):
        backend_of(module, model, models["clip"])


def test_prompts_of_different_t5_lengths_are_padded_as_comfyui_pads_them(models, module):
    clip, long = models["clip"], " ".join(["a very long description of a cat"] * 60)  # past T5's 256-token minimum
    backend = backend_of(module, models["dev"], clip)
    with torch.inference_mode():
        conds = backend.encode_prompts(["a cat", long])
        length = conds[long].context.shape[1]
        padded, pooled = clip.encode_from_tokens(clip.tokenize("a cat", tokenizer_options={"t5xxl_min_length": length}),
                                                 return_pooled=True)
    assert length > 256 and conds["a cat"].context.shape[1] == length
    assert torch.equal(conds["a cat"].context, padded) and torch.equal(conds["a cat"].pooled, pooled)
