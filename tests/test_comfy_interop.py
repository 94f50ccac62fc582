"""LOBA's kohya slider files load in ComfyUI's LoraLoader path and reproduce the training-time output.

A real ComfyUI in-process (tests/comfy_support.py; skipped with one loud line when none is found):
the tiny diffusers UNet that LOBA trains and a ComfyUI model holding the same weights; a slider with
random LoRA + LoCon weights is saved by LOBA and loaded by comfy.sd.load_lora_for_models (what
LoraLoaderModelOnly does) at several strengths.
"""

from __future__ import annotations

import logging

import pytest
import torch

from loba.backends.base import Conditioning
from loba.config import TrainConfig
from loba.export import save_trained_slider
from loba.prompts import PromptPair, PromptSet
from loba.train.loop import build_network

from .comfy_support import (
    COMFY_MARKS,
    comfy_adm,
    comfy_eps,
    comfy_fixture,  # noqa: F401  (registers the "comfy" fixture)
    comfy_model_from_diffusers,
    comfy_unet_config,
    diffusers_to_comfy_keys,
)
from .conftest import make_backend

pytestmark = COMFY_MARKS

KINDS = ["sd1", "sd2", "sdxl"]
# fp32 bounds. Same weights, two UNet implementations (diffusers vs ComfyUI's LDM code): measured <= 1e-6.
MODEL_TOLERANCE = 1e-4
# Hooked adapters (LOBA) vs weights merged by ComfyUI's LoRA patcher: measured <= 2e-6 (float rounding).
LORA_TOLERANCE = 1e-5
STRENGTHS = (1.0, 0.5, -1.0)


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
    backend = make_backend(tokenizer, kind)
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
def test_loba_slider_loads_exactly_through_comfy_lora_loader(comfy, tokenizer, tmp_path, caplog, kind):
    backend = make_backend(tokenizer, kind)
    base = comfy_model_from_diffusers(comfy, backend.unet)
    x, timesteps, cond = _inputs(backend)
    context, y = _comfy_side(backend, base, x, timesteps, cond)

    # LoRA on every linear layer, LoCon on the 3x3 convs, with a different rank/alpha for the convs.
    config = TrainConfig().replace(preset="all_linear_conv", network_dim=4, network_alpha=1.0, conv_dim=2, conv_alpha=3.0)
    network = build_network(backend, config)
    _randomize_adapters(network)
    kinds = {lora.kind for _, lora in network.items()}
    assert kinds == {"lora", "locon"}
    expected = {}
    with torch.no_grad(), network.attached(backend.unet):
        for strength in (0.0, *STRENGTHS):
            network.multiplier = strength
            expected[strength] = backend.predict(x, timesteps, cond)
    path = save_trained_slider(tmp_path / f"slider_{kind}.safetensors", network, backend, config,
                               PromptSet(entries=(PromptPair(target="x"),)), steps=1)

    lora_sd = comfy.utils.load_torch_file(str(path), safe_load=True)
    stems = {key.rsplit(".", 2)[0] if key.endswith(".weight") else key.rsplit(".", 1)[0] for key in lora_sd}
    assert len(stems) == len(network.names) and all(stem.startswith("lora_unet_") for stem in stems)

    # Each stem names, in ComfyUI, the very layer LOBA trained (ComfyUI's own diffusers -> LDM map).
    key_map = comfy.lora.model_lora_keys_unet(base.model, {})
    unet_config, _ = comfy_unet_config(backend.unet.config)
    to_comfy = diffusers_to_comfy_keys(comfy, unet_config, [f"{name}.weight" for name in network.names])
    wrong = {name: (backend.kohya_name(name), key_map.get(backend.kohya_name(name)))
             for name in network.names if key_map.get(backend.kohya_name(name)) != f"diffusion_model.{to_comfy[name + '.weight']}"}
    assert not wrong, f"{len(wrong)} kohya stems name another ComfyUI layer (or none), e.g. {list(wrong.items())[:3]}"

    before = {key: tensor.clone() for key, tensor in base.model.diffusion_model.state_dict().items()}
    base_out = comfy_eps(comfy, base, x, timesteps, context, y)
    assert _max_diff(base_out, expected[0.0]) <= MODEL_TOLERANCE
    diffs = {}
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
            diffs[strength] = _max_diff(got, expected[strength])
            assert diffs[strength] <= LORA_TOLERANCE, f"strength {strength}: max diff {diffs[strength]:.3g}"
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
