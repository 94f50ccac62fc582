"""What upstream nodes put on a MODEL is in the model Train Slider trains, or training is refused by name.

- A LoRA loaded before Train Slider (LoraLoaderModelOnly's weight patches) is trained on: the slider
  equals the one trained on a model with that LoRA baked into its weights.
- FreeU (an output_block_patch in transformer_options) reaches the trainer's forward: its prediction equals
  ComfyUI's sampler path (comfy.samplers.calc_cond_batch) on the patched model.
- What only the sampler applies (RescaleCFG's CFG function, a model function wrapper) is refused, naming it.
"""

from __future__ import annotations

import importlib
import uuid

import pytest
import torch
from support.comfy import COMFY_MARKS, comfy_model_from_diffusers, require_comfyui
from support.comfy_clip import comfy_clip, tiny_clip_encoders
from support.pack import import_pack
from support.tiny_models import tiny_unet

from loba.config import TrainConfig
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.train.loop import train

require_comfyui()
pytestmark = COMFY_MARKS

PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="a red circle", neutral="a circle",
                                        unconditional="a circle", resolutions=((64, 64),)),),
                    anchors=(AnchorPrompt("a blue square"),))
CONFIG = TrainConfig().replace(max_train_steps=2, max_denoising_steps=3, learning_rate=1e-2, seed=5)
# Measured: LoRA vs baked slider 0.0 (the same merged float32 weights); FreeU trainer vs sampler 1.2e-6 (the
# sampler goes through x0 = x - sigma * eps and back).
TOLERANCE = 1e-5


def _backend(patcher, clip):
    module = importlib.import_module(f"{import_pack().__name__}.nodes.comfy_backend")
    with torch.inference_mode():
        return module.ComfyBackend(patcher, clip)


@pytest.fixture(scope="module")
def parts(comfy):
    unet = tiny_unet("sd1", seed=3)
    return unet, comfy_model_from_diffusers(comfy, unet), comfy_clip(tiny_clip_encoders("sd1"))


def _random_lora(comfy, patcher) -> dict:
    """A kohya LoRA on every attention projection of the UNet, random and large enough to matter."""
    keys = comfy.lora.model_lora_keys_unet(patcher.model, {})
    weights = dict(patcher.model.diffusion_model.named_parameters())
    gen, lora = torch.Generator().manual_seed(7), {}
    for stem, key in keys.items():
        name = key[len("diffusion_model."):]
        if not stem.startswith("lora_unet_") or "attn" not in stem or weights[name].ndim != 2:
            continue
        out_features, in_features = weights[name].shape
        lora[f"{stem}.lora_down.weight"] = torch.randn(4, in_features, generator=gen) * 0.3
        lora[f"{stem}.lora_up.weight"] = torch.randn(out_features, 4, generator=gen) * 0.3
        lora[f"{stem}.alpha"] = torch.tensor(4.0)
    assert len(lora) >= 3 * 8
    return lora


def _trained(backend) -> dict:
    with torch.inference_mode():
        result = train(backend, PROMPTS, CONFIG)
    return {k: v.detach().clone() for k, v in result.network.state_dict().items()}


def test_an_upstream_lora_is_trained_on_as_if_it_were_baked_in(comfy, parts):
    unet, base, clip = parts
    with torch.inference_mode():
        own = {k: v.clone() for k, v in base.model.diffusion_model.state_dict().items()}
        loaded, _ = comfy.sd.load_lora_for_models(base, None, _random_lora(comfy, base), 1.0, 0)  # LoraLoaderModelOnly
        comfy.model_management.load_models_gpu([loaded], force_full_load=True)
        merged = {k: v.clone() for k, v in loaded.model.diffusion_model.state_dict().items()}
        baked = comfy_model_from_diffusers(comfy, unet)
        baked.model.diffusion_model.load_state_dict(merged)
        comfy.model_management.load_models_gpu([base], force_full_load=True)  # the shared UNet holds no LoRA now
    assert any(not torch.equal(own[k], merged[k]) for k in own)
    on_lora, on_baked, on_base = _trained(_backend(loaded, clip)), _trained(_backend(baked, clip)), _trained(_backend(base, clip))
    assert on_lora.keys() == on_baked.keys()
    assert max((on_lora[k] - on_baked[k]).abs().max().item() for k in on_lora) <= TOLERANCE
    assert max((on_lora[k] - on_base[k]).abs().max().item() for k in on_lora) > 1e-4  # the LoRA mattered
    with torch.inference_mode():  # training on the base left its weights alone
        assert all(torch.equal(own[k], v) for k, v in base.model.diffusion_model.state_dict().items())


def _sampler_eps(comfy, patcher, x_t, t, context) -> torch.Tensor:
    """The model output as ComfyUI's sampler computes it (calc_cond_batch with the patcher's model_options)."""
    import comfy.conds
    import comfy.samplers

    with torch.inference_mode():
        comfy.model_management.load_models_gpu([patcher])
        sigma = patcher.get_model_object("model_sampling").sigma(t.float())
        x_in = x_t * (1 + sigma**2).sqrt().view(-1, 1, 1, 1)
        patcher.model.current_patcher = patcher  # as the sampler sets it
        conds = [[{"model_conds": {"c_crossattn": comfy.conds.CONDCrossAttn(context)}, "uuid": uuid.uuid4()}]]
        denoised = comfy.samplers.calc_cond_batch(patcher.model, conds, x_in, sigma, patcher.model_options)[0]
        return ((x_in - denoised) / sigma.view(-1, 1, 1, 1)).clone()


def test_freeu_reaches_the_trainers_forward_as_it_reaches_the_sampler(comfy, parts):
    from comfy_extras.nodes_freelunch import FreeU_V2

    _, base, clip = parts
    freeu = FreeU_V2().patch(base, b1=1.3, b2=1.4, s1=0.9, s2=0.2)[0]
    plain_backend, freeu_backend = _backend(base, clip), _backend(freeu, clip)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([600])
    with torch.inference_mode():
        cond = freeu_backend.encode_prompts(["a red circle"])["a red circle"]
    with torch.no_grad(), freeu_backend.training_session():
        trained_on = freeu_backend.predict(x, t, cond).float().clone()
    with torch.no_grad(), plain_backend.training_session():
        plain = plain_backend.predict(x, t, cond).float().clone()
    sampled = _sampler_eps(comfy, freeu, x, t, cond.context)
    assert (trained_on - sampled).abs().max() <= TOLERANCE
    assert (trained_on - plain).abs().max() > 1e-3  # FreeU changed this model's output


def test_what_only_the_sampler_applies_is_refused_by_name(comfy, parts):
    from comfy_extras.nodes_model_advanced import RescaleCFG

    _, base, clip = parts
    rescaled = RescaleCFG().patch(base, 0.7)[0]
    with pytest.raises(Exception, match="CFG function.*rescale_cfg from comfy_extras.nodes_model_advanced.*before that node"):
        _backend(rescaled, clip)
    wrapped = base.clone()
    wrapped.set_model_unet_function_wrapper(lambda apply_model, args: apply_model(args["input"], args["timestep"], **args["c"]))
    with pytest.raises(Exception, match="model function wrapper"):
        _backend(wrapped, clip)
