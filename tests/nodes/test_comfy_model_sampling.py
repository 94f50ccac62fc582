"""The MODEL trains as it is sampled: prediction type and schedule from its model_sampling object as patched.

Real ComfyUI in-process; a tiny SDXL-architecture UNet in ComfyUI objects, loaded as eps and patched by
ComfyUI's own ModelSamplingDiscrete node (v_prediction, zsnr), as a NoobAI-style v-pred workflow does. The hand
computations walk the DDIM grid in ComfyUI's sigma space through the patched object's own calculate_input /
timestep / calculate_denoised (BaseModel.apply_model's maths), so they share nothing with LOBA's schedule code.
"""

from __future__ import annotations

import pytest
import torch
from support.comfy import COMFY_MARKS, comfy_adm, require_comfyui
from support.nodes import family_model, pair, train_inputs
from support.pack import run_node

from loba.config import TrainConfig
from loba.prompts import PromptPair, PromptSet
from loba.train.loop import build_network, train
from loba.train.preview import preview_latents
from loba.train.step import SliderStep, StepPlan

require_comfyui()
pytestmark = COMFY_MARKS

PAIR = PromptPair(target="a cat", positive="a cat", neutral="an animal", unconditional="", guidance_scale=1.5,
                  resolutions=((64, 64),))
PROMPTS = PromptSet(entries=(PAIR,))
CONFIG = TrainConfig().replace(max_denoising_steps=4, timestep_spacing="trailing", leco_denoise_guidance_scale=3.0,
                               denoise_with_adapter=False, min_snr_gamma=5.0, learning_rate=1e-3, network_dim=4,
                               network_alpha=4.0, seed=1)
VARIANTS = {"eps": None, "v_prediction": ("v_prediction", False), "v_prediction+zsnr": ("v_prediction", True)}
# Hand (float64, ComfyUI sigma space) vs LOBA (float32, VP space); measured <= 2e-6 relative.
TOLERANCE = 1e-4


def patched(model, sampling: str, zsnr: bool):
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete

    with torch.inference_mode():  # as the executor runs the node
        return ModelSamplingDiscrete().patch(model, sampling, zsnr)[0]


@pytest.fixture(scope="module")
def base(comfy, tokenizer):
    return family_model(comfy, tokenizer, "sdxl")


@pytest.fixture(scope="module")
def module(pack):
    return pack.module.nodes.comfy_backend


def _backend(module, model, clip):
    with torch.inference_mode():
        return module.ComfyBackend(model, clip)


def _variant(base, name):
    model, clip = base
    return (model if VARIANTS[name] is None else patched(model, *VARIANTS[name])), clip


class ComfyHand:
    """DDIM on LOBA's grid, done the ComfyUI way: x_sigma = x0 + sigma * eps, denoised by the patched object."""

    def __init__(self, model, clip):
        self.sampling = model.get_model_object("model_sampling")
        self.model, self.clip = model, clip

    def sigma(self, t: int) -> torch.Tensor:
        return self.sampling.sigmas[t].double()

    def outputs(self, x_sigma: torch.Tensor, t: int, prompts: list[str]) -> list[torch.Tensor]:
        """The raw UNet outputs (the model's own parameterization) and ComfyUI's t, one per prompt."""
        sigma = self.sigma(t)
        assert int(self.sampling.timestep(sigma.float())) == t
        x_in = self.sampling.calculate_input(sigma, x_sigma).float()
        out = []
        with torch.inference_mode():
            for text in prompts:
                context, pooled = self.clip.encode_from_tokens(self.clip.tokenize(text), return_pooled=True)
                y = comfy_adm(self.model, pooled, 64, 64)
                unet = self.model.model.diffusion_model
                out.append(unet(x_in, torch.tensor([float(t)]), context=context, y=y).double().clone())
        return out

    def denoised(self, x_sigma, t, prompts):
        return [self.sampling.calculate_denoised(self.sigma(t), o, x_sigma) for o in self.outputs(x_sigma, t, prompts)]

    def x_t(self, noise: torch.Tensor, grid: list[int], k: int, cfg: float) -> torch.Tensor:
        x_sigma = noise.double() * (1 + self.sigma(grid[0]) ** 2).sqrt()
        for i in range(k):
            uncond, cond = self.denoised(x_sigma, grid[i], [PAIR.unconditional, PAIR.target])
            d = uncond + cfg * (cond - uncond)
            x_sigma = d + self.sigma(grid[i + 1]) * (x_sigma - d) / self.sigma(grid[i])
        return x_sigma / (1 + self.sigma(grid[k]) ** 2).sqrt()

    def sample(self, noise: torch.Tensor, grid: list[int], cfg: float) -> torch.Tensor:
        """The whole grid down to x0 (the last step lands on the denoised latent)."""
        x_t = self.x_t(noise, grid, len(grid) - 1, cfg)
        x_sigma = x_t * (1 + self.sigma(grid[-1]) ** 2).sqrt()
        uncond, cond = self.denoised(x_sigma, grid[-1], [PAIR.unconditional, PAIR.target])
        return uncond + cfg * (cond - uncond)

    def loss(self, x_t: torch.Tensor, t: int, prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
        x_sigma = x_t * (1 + self.sigma(t) ** 2).sqrt()
        target_out, neutral, positive, uncond = self.outputs(x_sigma, t, [PAIR.target, PAIR.neutral, PAIR.positive,
                                                                          PAIR.unconditional])
        target = neutral - PAIR.guidance_scale * (positive - uncond)
        snr = 1 / self.sigma(t) ** 2
        weight = min(snr, 5.0) / (snr + 1 if prediction_type == "v_prediction" else snr)
        return target, weight * ((target_out - target) ** 2).mean()  # a fresh slider predicts as the frozen model


def _plan(step, k: int) -> StepPlan:
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(7))
    return StepPlan(0, PAIR, 64, 64, k, int(step.grid[k]), noise, None)


def _close(ours: torch.Tensor, hand: torch.Tensor) -> bool:
    return float((ours.double() - hand).abs().max()) <= TOLERANCE * max(1.0, float(hand.abs().max()))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_prediction_type_and_schedule_are_the_patched_ones(base, module, name):
    model, clip = _variant(base, name)
    backend = _backend(module, model, clip)
    sampling = model.get_model_object("model_sampling")
    assert backend.prediction_type == ("epsilon" if name == "eps" else "v_prediction")
    assert model.model.model_type.name == "EPS"  # what the checkpoint says; the patch decides
    torch.testing.assert_close(backend.alphas_cumprod(), 1 / (1 + sampling.sigmas.double() ** 2))
    terminal = float(backend.alphas_cumprod()[-1])
    assert (terminal < 1e-7) == name.endswith("zsnr")  # ComfyUI's zsnr leaves 4.9e-8, SD's schedule 4.7e-3


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("k", [0, 2])
def test_x_t_target_and_loss_equal_a_hand_computation(base, module, name, k):
    model, clip = _variant(base, name)
    backend = _backend(module, model, clip)
    hand = ComfyHand(model, clip)
    network = build_network(backend, CONFIG)
    with torch.inference_mode():
        embeddings = backend.encode_prompts(PROMPTS.all_prompts())
    with torch.inference_mode(False), backend.training_session(), network.attached(backend.denoiser()):
        step = SliderStep(backend, network, PROMPTS, CONFIG, embeddings)
        assert step.grid.tolist() == [999, 749, 499, 249] and step.allowed_k == [0, 1, 2, 3]
        plan = _plan(step, k)
        x_t = step.denoise(plan)
        target = step.target(plan, step.teachers(plan, x_t))
        loss = step.run(plan).loss
    hand_x_t = hand.x_t(plan.noise, step.grid.tolist(), k, CONFIG.sampling.leco_denoise_guidance_scale)
    hand_target, hand_loss = hand.loss(hand_x_t, plan.timestep, backend.prediction_type)
    assert _close(x_t, hand_x_t) and _close(target, hand_target)
    assert torch.isfinite(loss) and abs(float(loss.detach()) - float(hand_loss)) <= TOLERANCE * float(hand_loss)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_short_run_lowers_the_loss_and_reaches_t_999(base, module, name):
    model, clip = _variant(base, name)
    backend = _backend(module, model, clip)
    network = build_network(backend, CONFIG)

    def fixed_loss() -> float:  # the same noise at every grid point, before and after training
        with torch.inference_mode():
            embeddings = backend.encode_prompts(PROMPTS.all_prompts())
        with torch.inference_mode(False), torch.no_grad(), backend.training_session(), network.attached(backend.denoiser()):
            step = SliderStep(backend, network, PROMPTS, CONFIG, embeddings)
            return sum(float(step.run(_plan(step, k)).loss.detach()) for k in step.allowed_k)

    before = fixed_loss()
    with torch.inference_mode():
        result = train(backend, PROMPTS, CONFIG.replace(max_train_steps=16), network=network)
    after = fixed_loss()
    timesteps = {r.timestep for r in result.reports}
    assert 999 in timesteps, timesteps
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert after < 0.9 * before, (before, after)  # measured 0.82 (eps), 0.67 (v), 0.68 (v + zsnr)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_previews_sample_in_the_models_parameterization_and_spacing(base, module, name):
    model, clip = _variant(base, name)
    backend = _backend(module, model, clip)
    network = build_network(backend, CONFIG)
    with torch.inference_mode():
        conds = backend.encode_prompts([PAIR.target, PAIR.unconditional])
    with torch.inference_mode(False), backend.training_session():
        ours = preview_latents(backend, network, conds[PAIR.target], conds[PAIR.unconditional], [0.0], 64, 64, steps=4,
                               cfg=3.0, seed=11, spacing="trailing")
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(11))
    assert _close(ours, ComfyHand(model, clip).sample(noise, [999, 749, 499, 249], 3.0))


@pytest.mark.parametrize("sampling, named", [("lcm", "lcm"), ("x0", "x0"), ("img_to_img", "img_to_img")])
def test_sampling_types_loba_cannot_train_are_refused(base, module, pack, sampling, named):
    model, clip = base
    error = pack.module.loba.errors.UnsupportedModelError
    with pytest.raises(error, match=f"samples as {named}.*ModelSamplingDiscrete's sampling to eps or v_prediction"):
        _backend(module, patched(model, sampling, False), clip)


def test_flow_and_edm_sampling_are_refused(base, module, pack):
    from comfy_extras.nodes_model_advanced import ModelSamplingContinuousEDM, ModelSamplingSD3

    model, clip = base
    error = pack.module.loba.errors.UnsupportedModelError
    with torch.inference_mode():
        flow = ModelSamplingSD3().patch(model, 3.0)[0]
        edm = ModelSamplingContinuousEDM().patch(model, "v_prediction", 120.0, 0.002)[0]
    with pytest.raises(error, match=r"flow \(CONST\) on ModelSamplingDiscreteFlow"):
        _backend(module, flow, clip)
    with pytest.raises(error, match="v_prediction on ModelSamplingContinuousEDM"):
        _backend(module, edm, clip)


def test_eps_with_zsnr_is_refused_by_the_train_node_before_any_model_work(base, pack):
    model, clip = base
    calls = []
    unet = model.model.diffusion_model
    hook = unet.register_forward_pre_hook(lambda *args: calls.append("unet"))
    encode = clip.encode_from_tokens
    clip.encode_from_tokens = lambda *a, **k: calls.append("clip") or encode(*a, **k)
    try:
        with pytest.raises(ValueError, match=r"LOBA Train Slider, input 'model': .*eps with zsnr.*v_prediction") as info:
            run_node(pack.nodes["LOBA_TrainSlider"], model=patched(model, "eps", True), clip=clip, prompts=pair(pack),
                     **train_inputs())
    finally:
        hook.remove()
        del clip.encode_from_tokens
    assert "undefined" in str(info.value) and calls == []


def test_the_toy_world_through_model_sampling_discrete_eps_trains_bit_identically(toy, module):
    prompts = PromptSet(entries=(PromptPair(target="a red circle", positive="a red circle", neutral="a circle",
                                            unconditional="a circle", resolutions=((64, 64),)),))
    config = TrainConfig().replace(max_train_steps=3, max_denoising_steps=4, learning_rate=1e-2, seed=5)
    sliders = []
    for model in (toy.model, patched(toy.model, "eps", False)):
        with torch.inference_mode():
            sliders.append(train(_backend(module, model, toy.clip), prompts, config).network.module_state())
    assert sliders[0].keys() == sliders[1].keys()
    assert all(torch.equal(sliders[0][m][key], sliders[1][m][key]) for m in sliders[0] for key in sliders[0][m])
    assert any(sliders[0][m]["lora_up.weight"].abs().max() > 0 for m in sliders[0])  # it trained
