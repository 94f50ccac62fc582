"""LOBA's kohya slider files load in ComfyUI's LoraLoader path and reproduce the training-time output.

A real ComfyUI in-process (tests/support/comfy.py; skipped with one loud line when none is found):
the tiny diffusers UNet that LOBA trains and a ComfyUI model holding the same weights; a slider with
random LoRA + LoCon weights is saved by LOBA and loaded by comfy.sd.load_lora_for_models (what
LoraLoaderModelOnly does) at several strengths.
"""

from __future__ import annotations

import logging

import pytest
import torch
from support.backends import make_backend
from support.comfy import (
    COMFY_MARKS,
    comfy_adm,
    comfy_eps,
    comfy_model_from_diffusers,
    comfy_unet_config,
    diffusers_to_comfy_keys,
    require_comfyui,
)
from support.tiny_models import sd_alphas_cumprod, tiny_text_encoder
from torch import nn

from loba.config import TrainConfig
from loba.models.backend import Conditioning
from loba.models.diffusers_backend import DiffusersBackend
from loba.prompts import PromptPair, PromptSet
from loba.sliders.trained import save_trained_slider
from loba.train.loop import build_network

require_comfyui()
pytestmark = COMFY_MARKS

# LOBA's tiny UNets (2 levels, 1 layer per block), and UNets with the block layout of the real SD1.5 and
# SDXL at tiny width ("-layout": 4 / 3 levels, 2 layers per block, SDXL transformer depths 0/2/3).
KINDS = ["sd1", "sd2", "sdxl", "sd1-layout", "sdxl-layout"]
# fp32 bounds. Same weights, two UNet implementations (diffusers vs ComfyUI's LDM code): measured <= 1.0e-6.
MODEL_TOLERANCE = 1e-4
# LOBA's hooked adapters on diffusers vs ComfyUI's LoRA patcher merging the file into its weights:
# measured <= 1.5e-6 at strengths 1, 0.5 and -1 (float rounding of the merge plus the 1e-6 above).
LORA_TOLERANCE = 1e-5
STRENGTHS = (1.0, 0.5, -1.0)


def _layout_unet(family: str, seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    common = dict(sample_size=8, layers_per_block=2, norm_num_groups=8, attention_head_dim=8)
    if family == "sdxl":
        unet = UNet2DConditionModel(**common, block_out_channels=(32, 64, 64), cross_attention_dim=64, use_linear_projection=True,
                                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                                    transformer_layers_per_block=(1, 2, 3), addition_embed_type="text_time",
                                    addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 6 * 8)
    else:
        unet = UNet2DConditionModel(**common, block_out_channels=(32, 64, 64, 64), cross_attention_dim=32)
    with torch.no_grad():  # non-zero everywhere (diffusers zero-initializes some output layers)
        gen = torch.Generator().manual_seed(seed)
        for param in unet.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.02)
    return unet.eval()


def _backend(tokenizer, kind: str) -> DiffusersBackend:
    if not kind.endswith("-layout"):
        return make_backend(tokenizer, kind)
    family = kind.removesuffix("-layout")
    if family == "sdxl":
        encoders = [tiny_text_encoder(32), tiny_text_encoder(32, with_projection=True, seed=1)]
        return DiffusersBackend(_layout_unet(family), encoders, [tokenizer, tokenizer], sd_alphas_cumprod(), "epsilon")
    return DiffusersBackend(_layout_unet(family), [tiny_text_encoder(32)], [tokenizer], sd_alphas_cumprod(), "epsilon")


def _inputs(backend, seed: int = 0):
    """Latents, timesteps and a batch of two real prompt conditionings of `backend`."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, backend.latent_channels, 8, 8, generator=gen)
    timesteps = torch.tensor([37.0, 801.0])
    conds = backend.encode_prompts(["a photo of a cat", "an oil painting"])
    return x, timesteps, Conditioning.cat([conds["a photo of a cat"], conds["an oil painting"]])


def _comfy_side(backend, patcher, x, timesteps, cond):
    """(context, y) for ComfyUI's UNet; y built by the model's own encode_adm (SDXL) at LOBA's pixel size."""
    height, width = x.shape[-2] * backend.vae_scale_factor, x.shape[-1] * backend.vae_scale_factor
    y = None if cond.pooled is None else comfy_adm(patcher, cond.pooled, height, width)
    return cond.context, y


def _randomize_adapters(network, seed: int = 0, scale: float = 0.05) -> None:
    """Non-zero random down and up weights on every adapter (fresh ones are a no-op)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for param in network.parameters():
            param.copy_(torch.randn_like(param) * scale)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("kind", KINDS)
def test_comfy_model_reproduces_the_diffusers_unet(comfy, tokenizer, kind):
    backend = _backend(tokenizer, kind)
    patcher = comfy_model_from_diffusers(comfy, backend.unet)
    x, timesteps, cond = _inputs(backend)
    with torch.no_grad():
        expected = backend.predict(x, timesteps, cond)
    context, y = _comfy_side(backend, patcher, x, timesteps, cond)
    if kind == "sdxl":
        assert y is not None and y.shape == (2, backend.unet.config.projection_class_embeddings_input_dim)
    got = comfy_eps(comfy, patcher, x, timesteps, context, y)
    assert got.shape == expected.shape
    assert _max_diff(got, expected) <= MODEL_TOLERANCE


@pytest.mark.parametrize("kind", KINDS)
def test_every_kohya_stem_names_the_same_comfy_layer(comfy, tokenizer, kind):
    """All Linear/Conv2d layers, targeted by a preset or not: LOBA's kohya stem resolves, through ComfyUI's
    lora key map, to the ComfyUI weight that holds that layer (ComfyUI's own diffusers -> LDM key map)."""
    backend = _backend(tokenizer, kind)
    patcher = comfy_model_from_diffusers(comfy, backend.unet)
    key_map = comfy.lora.model_lora_keys_unet(patcher.model, {})
    names = [name for name, module in backend.unet.named_modules() if isinstance(module, (nn.Linear, nn.Conv2d))]
    unet_config, _ = comfy_unet_config(backend.unet.config)
    to_comfy = diffusers_to_comfy_keys(comfy, unet_config, [f"{name}.weight" for name in names])
    stems = {name: backend.kohya_name(name) for name in names}
    assert len(set(stems.values())) == len(names)
    # SDXL files use LDM names, SD1/SD2 files diffusers names (what kohya's sd-scripts writes).
    ldm_names = {stem.startswith(("lora_unet_input_blocks_", "lora_unet_middle_block_", "lora_unet_output_blocks_"))
                 for name, stem in stems.items() if "blocks" in name or "mid_block" in name}
    assert ldm_names == {kind.startswith("sdxl")}
    if kind == "sdxl-layout":  # stems of the real SDXL base (same block layout)
        known = {"down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k": "input_blocks_4_1_transformer_blocks_0_attn2_to_k",
                 "up_blocks.0.upsamplers.0.conv": "output_blocks_2_2_conv",
                 "up_blocks.1.resnets.2.conv_shortcut": "output_blocks_5_0_skip_connection"}
        assert {name: stems[name] for name in known} == {name: f"lora_unet_{stem}" for name, stem in known.items()}
    wrong = {name: (stem, key_map.get(stem)) for name, stem in stems.items()
             if key_map.get(stem) != f"diffusion_model.{to_comfy[name + '.weight']}"}
    assert not wrong, f"{len(wrong)} of {len(names)} kohya stems name another ComfyUI layer (or none), e.g. {list(wrong.items())[:3]}"


def _random_locon_slider(backend, x, timesteps, cond):
    """LoRA on every linear layer, LoCon on the 3x3 convs (other rank/alpha), random; with LOBA's own
    outputs at every strength, the reference the ComfyUI side must reproduce."""
    config = TrainConfig().replace(preset="all_linear_conv", network_dim=4, network_alpha=1.0, conv_dim=2, conv_alpha=3.0)
    network = build_network(backend, config)
    _randomize_adapters(network)
    assert {lora.kind for _, lora in network.items()} == {"lora", "locon"}
    expected = {}
    with torch.no_grad(), network.attached(backend.unet):
        for strength in (0.0, *STRENGTHS):
            network.multiplier = strength
            expected[strength] = backend.predict(x, timesteps, cond)
    return network, config, expected


@pytest.mark.parametrize("kind", KINDS)
def test_loba_slider_loads_exactly_through_comfy_lora_loader(comfy, tokenizer, tmp_path, caplog, kind):
    backend = _backend(tokenizer, kind)
    base = comfy_model_from_diffusers(comfy, backend.unet)
    x, timesteps, cond = _inputs(backend)
    context, y = _comfy_side(backend, base, x, timesteps, cond)

    network, config, expected = _random_locon_slider(backend, x, timesteps, cond)
    path = save_trained_slider(tmp_path / f"slider_{kind}.safetensors", network, backend, config,
                               PromptSet(entries=(PromptPair(target="x"),)), steps=1)

    lora_sd = comfy.utils.load_torch_file(str(path), safe_load=True)
    stems = {key.rsplit(".", 2)[0] if key.endswith(".weight") else key.rsplit(".", 1)[0] for key in lora_sd}
    assert len(stems) == len(network.names) and all(stem.startswith("lora_unet_") for stem in stems)

    # Every stem is a layer ComfyUI knows (which layer exactly: test_every_kohya_stem_names_the_same_comfy_layer).
    key_map = comfy.lora.model_lora_keys_unet(base.model, {})
    assert not sorted(stems - key_map.keys())

    before = {key: tensor.clone() for key, tensor in base.model.diffusion_model.state_dict().items()}
    base_out = comfy_eps(comfy, base, x, timesteps, context, y)
    assert _max_diff(base_out, expected[0.0]) <= MODEL_TOLERANCE
    try:
        for strength in STRENGTHS:
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                with torch.inference_mode():
                    patched, clip = comfy.sd.load_lora_for_models(base, None, lora_sd, strength, 0)
            not_loaded = [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage().lower()]
            assert not not_loaded, f"ComfyUI ignored part of the file: {not_loaded[:5]}"
            assert clip is None and len(patched.patches) == len(network.names)
            got = comfy_eps(comfy, patched, x, timesteps, context, y)
            diff = _max_diff(got, expected[strength])
            assert diff <= LORA_TOLERANCE, f"strength {strength}: max diff {diff:.3g} from LOBA's output at multiplier {strength}"
            assert _max_diff(got, base_out) > 1e-3, "the slider does not change the ComfyUI output"
        assert _max_diff(expected[1.0], expected[0.0]) > 1e-3

        # Loading the base model again takes the patches out of the shared weights, bit for bit.
        again = comfy_eps(comfy, base, x, timesteps, context, y)
        assert torch.equal(again, base_out)
        after = base.model.diffusion_model.state_dict()
        assert set(after) == set(before)
        changed = [key for key, tensor in before.items() if not torch.equal(after[key], tensor)]
        assert not changed, f"base ModelPatcher weights changed: {changed[:5]}"
        assert not base.patches
    finally:
        comfy.model_management.unload_all_models()
