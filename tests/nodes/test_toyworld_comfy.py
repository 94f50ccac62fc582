"""The toy-world file loads into ComfyUI's own MODEL / CLIP / VAE and computes what the diffusers modules compute.

A real ComfyUI in-process (tests/support/comfy.py; skipped with one loud line when none is found). Random
components are saved as the toy weight file, loaded by `load_toy_components` (diffusers) and by
nodes/toyworld_comfy.py (ComfyUI, under torch.inference_mode() as the executor builds models), and
compared in fp32 on the same inputs. Max abs diffs measured on CPU (torch 2.15, ComfyUI 0.3.64): eps 1.4e-6,
CLIP 1.3e-6, VAE decode 8.0e-6 raw / 4.0e-6 in IMAGE space, encode 2.5e-7.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
import torch
from support.comfy import COMFY_MARKS, comfy_eps, require_comfyui
from support.pack import import_pack
from support.toy_models import random_components

from loba.toyworld.files import load_toy_components, read_toy_info, save_toy_checkpoint
from loba.toyworld.model import IMAGE_SIZE, LATENT_SIZE

require_comfyui()
pytestmark = COMFY_MARKS

TOLERANCE = 1e-4  # fp32, two implementations of the same weights
SCALING_FACTOR = 0.4321
PROMPTS = ["a red circle on a blue background", "", "a small green triangle, large (shiny)"]


def _import_loader():
    # The pack's module as ComfyUI loads it (ComfyUI's own top-level `nodes` module shadows ours).
    return importlib.import_module(f"{import_pack().__name__}.nodes.toyworld_comfy")


@pytest.fixture(scope="module")
def toy(comfy, tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("toyworld-comfy")
    components = random_components(seed=1, tokenizer_folder=root / "tokenizer")
    components.scaling_factor = SCALING_FACTOR
    path = save_toy_checkpoint(root / "toy.safetensors", components, {"seed": 1})
    loader = _import_loader()
    with torch.inference_mode():
        model, clip, vae = loader.load_toyworld_comfy(path, dtype=torch.float32)
    return SimpleNamespace(path=path, loader=loader, reference=load_toy_components(path), model=model, clip=clip, vae=vae)


def _max_diff(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape
    return (actual.float() - expected.float()).abs().max().item()


def test_eps_prediction_matches_the_diffusers_unet(comfy, toy):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=generator)
    timesteps = torch.tensor([10.0, 900.0])
    context = torch.randn(2, 77, 64, generator=generator)
    eps = comfy_eps(comfy, toy.model, x, timesteps, context)
    with torch.no_grad():
        expected = toy.reference.unet(x, timesteps, encoder_hidden_states=context).sample
    assert expected.abs().max() > 0.1
    assert _max_diff(eps, expected) <= TOLERANCE


def test_model_config_schedule_and_latent_scale(toy):
    import comfy.model_sampling
    from diffusers import DDIMScheduler

    model = toy.model.model
    assert model.latent_format.scale_factor == SCALING_FACTOR
    assert model.latent_format.taesd_decoder_name is None  # no SD TAESD previews of toy latents
    sampling = toy.model.get_model_object("model_sampling")
    assert isinstance(sampling, comfy.model_sampling.EPS)
    scheduler = DDIMScheduler(**read_toy_info(toy.path)["configs"]["scheduler"])
    sigmas = ((1 - scheduler.alphas_cumprod) / scheduler.alphas_cumprod).sqrt()
    # Same schedule; diffusers accumulates alphas_cumprod in float32 (measured 1.3e-5 relative), ComfyUI in float64.
    assert torch.allclose(sampling.sigmas.float(), sigmas, rtol=1e-4, atol=0)
    config = model.model_config.unet_config
    assert (config["model_channels"], config["channel_mult"], config["context_dim"], config["num_heads"]) == (64, [1, 2, 2], 64, 8)


def test_clip_matches_the_diffusers_text_encoder(toy):
    tokenizer, encoder = toy.reference.tokenizer, toy.reference.text_encoder
    for prompt in PROMPTS:
        with torch.inference_mode():
            tokens = toy.clip.tokenize(prompt)
            cond = toy.clip.encode_from_tokens(tokens)
        ids = tokenizer(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        # The parentheses are ComfyUI's weight syntax: compare a prompt without them token for token.
        if "(" not in prompt:
            assert [token for token, _ in tokens["l"][0]] == ids[0].tolist()
            with torch.no_grad():
                expected = encoder(ids).last_hidden_state
            assert _max_diff(cond, expected) <= TOLERANCE, prompt
        assert cond.shape == (1, 77, 64) and torch.isfinite(cond).all()


def test_vae_decode_matches_in_image_space(toy):
    latents = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        image = toy.vae.decode(latents)
        raw = toy.vae.first_stage_model.decode(latents)
    with torch.no_grad():
        expected = toy.reference.vae.decode(latents).sample
    assert _max_diff(raw, expected) <= TOLERANCE
    # ComfyUI's IMAGE is [B, H, W, C] in [0, 1]; diffusers decodes to [B, C, H, W] in [-1, 1].
    expected_image = ((expected + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    assert image.shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert ((expected > -1) & (expected < 1)).float().mean() > 0.5, "mostly clamped: the image comparison would be weak"
    assert _max_diff(image, expected_image) <= TOLERANCE


def test_vae_encode_matches_the_latent_mode(toy):
    pixels = torch.rand(2, IMAGE_SIZE, IMAGE_SIZE, 3, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        latents = toy.vae.encode(pixels)
    with torch.no_grad():
        expected = toy.reference.vae.encode(pixels.permute(0, 3, 1, 2) * 2 - 1).latent_dist.mode()
    assert _max_diff(latents, expected) <= TOLERANCE


def test_comfy_sampler_runs_end_to_end(toy):
    import comfy.sample

    with torch.inference_mode():
        positive = toy.clip.encode_from_tokens_scheduled(toy.clip.tokenize(PROMPTS[0]))
        negative = toy.clip.encode_from_tokens_scheduled(toy.clip.tokenize(""))
        empty = torch.zeros(1, 4, LATENT_SIZE, LATENT_SIZE)
        noise = comfy.sample.prepare_noise(empty, 0)
        samples = comfy.sample.sample(toy.model, noise, 2, 5.0, "euler", "normal", positive, negative, empty,
                                      disable_pbar=True, seed=0)
        image = toy.vae.decode(samples)
    assert samples.shape == empty.shape and torch.isfinite(samples).all()
    assert image.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3) and torch.isfinite(image).all()


def test_default_dtypes_load_and_run(toy):
    with torch.inference_mode():
        model, clip, vae = toy.loader.load_toyworld_comfy(toy.path)
        cond = clip.encode_from_tokens(clip.tokenize(PROMPTS[0]))
        image = vae.decode(torch.zeros(1, 4, LATENT_SIZE, LATENT_SIZE))
    assert torch.isfinite(cond).all() and torch.isfinite(image).all()
    assert model.model.latent_format.scale_factor == SCALING_FACTOR


def test_missing_tensor_fails_loudly(toy, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    LobaError = importlib.import_module(f"{import_pack().__name__}.loba.errors").LobaError  # the pack's own engine

    with safe_open(str(toy.path), framework="pt") as handle:
        metadata = handle.metadata()
    state = load_file(str(toy.path))
    state.pop("first_stage_model.decoder.conv_out.bias")
    broken = tmp_path / "broken.safetensors"
    save_file(state, str(broken), metadata=metadata)
    with torch.inference_mode(), pytest.raises(LobaError, match="conv_out.bias"):
        toy.loader.load_toyworld_comfy(broken, dtype=torch.float32)


def test_the_shipped_weights_load_both_ways_with_equal_predictions(comfy):
    """The committed model itself (not only its architecture): ComfyUI's UNet and CLIP agree with diffusers'."""
    from loba.toyworld.files import DEFAULT_WEIGHTS

    reference = load_toy_components(DEFAULT_WEIGHTS)
    with torch.inference_mode():
        model, clip, _ = _import_loader().load_toyworld_comfy(DEFAULT_WEIGHTS, dtype=torch.float32)
        tokens = clip.tokenize("a large blue triangle on a dark background")
        cond = clip.encode_from_tokens(tokens).float().clone()
    ids = reference.tokenizer(["a large blue triangle on a dark background"], padding="max_length", max_length=77,
                              return_tensors="pt").input_ids
    with torch.no_grad():
        expected_cond = reference.text_encoder(ids)[0]
    assert _max_diff(cond, expected_cond) <= TOLERANCE
    x = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(3))
    timesteps = torch.tensor([20.0, 800.0])
    eps = comfy_eps(comfy, model, x, timesteps, expected_cond.repeat(2, 1, 1))
    with torch.no_grad():
        expected = reference.unet(x, timesteps, encoder_hidden_states=expected_cond.repeat(2, 1, 1)).sample
    assert _max_diff(eps, expected) <= TOLERANCE
