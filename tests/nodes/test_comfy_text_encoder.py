"""Text-encoder sliders in ComfyUI: LOBA's lora_te / lora_te1 / lora_te2 keys load through ComfyUI's LoraLoader
(comfy.sd.load_lora_for_models, every key consumed) and, at CLIP strength s, ComfyUI's CLIP encodes exactly what
LOBA's adapters at multiplier s encode; the ComfyUI backend trains them and leaves the CLIP object bit-identical.

One tiny random CLIP stack in both hosts (tests/support/comfy_clip.py), SD1 (clip_l) and SDXL (clip_l + clip_g).
"""

from __future__ import annotations

import importlib
import logging

import pytest
import torch
from support.comfy import COMFY_MARKS, comfy_model_from_diffusers, require_comfyui
from support.comfy_clip import comfy_clip, tiny_clip_encoders, tiny_clip_tokenizers
from support.pack import import_pack
from support.tiny_models import sd_alphas_cumprod, tiny_unet

from loba.adapters.text_encoder import adapter_root, kohya_namer
from loba.config import TrainConfig
from loba.models.diffusers_backend import DiffusersBackend
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.sliders.trained import save_trained_slider
from loba.train.loop import build_network, train

require_comfyui()
pytestmark = COMFY_MARKS

TOLERANCE = 1e-5  # two CLIP implementations, same weights (fp32): the plain encodings agree to <= 1.6e-6
TEXTS = ("a red circle", "a blue square, (bright:1.2)")
PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="red", guidance_scale=6.0, resolutions=((64, 64),)),),
                    anchors=(AnchorPrompt("a blue square"),))


def _comfy_backend(patcher, clip):
    return importlib.import_module(f"{import_pack().__name__}.nodes.comfy_backend").ComfyBackend(patcher, clip)


@pytest.fixture(scope="module", params=["sd1", "sdxl"])
def stack(request, comfy, tmp_path_factory):
    family = request.param
    encoders = tiny_clip_encoders(family)
    unet = tiny_unet(family)
    diffusers = DiffusersBackend(unet, encoders, tiny_clip_tokenizers(family, tmp_path_factory.mktemp("tok")), sd_alphas_cumprod())
    return family, diffusers, comfy_model_from_diffusers(comfy, unet), comfy_clip(encoders)


def _random(network, seed=0, scale=0.05):
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for param in network.parameters():
            param.copy_(torch.randn_like(param) * scale)


def _clip_state(clip) -> dict:
    return {key: tensor.clone() for key, tensor in clip.cond_stage_model.state_dict().items()}


def _assert_same_state(clip, before: dict) -> None:
    after = clip.cond_stage_model.state_dict()
    assert set(after) == set(before)
    changed = [key for key, tensor in before.items() if not torch.equal(after[key], tensor)]
    assert not changed, f"CLIP weights changed: {changed[:5]}"
    assert all(not p.requires_grad or p.grad is None for p in clip.cond_stage_model.parameters())


def test_text_encoder_slider_loads_through_comfy_lora_loader(comfy, stack, tmp_path, caplog):
    family, diffusers, patcher, clip = stack
    config = TrainConfig().replace(train_text_encoder="alongside", network_dim=2, network_alpha=1.0)
    network = build_network(diffusers, config)
    _random(network)
    expected = {}
    with torch.no_grad(), network.attached(adapter_root(diffusers, network.names)):
        for strength in (0.0, 1.0, -0.5):
            network.multiplier = strength
            expected[strength] = diffusers.encode_prompts([TEXTS[0]])[TEXTS[0]]
    path = save_trained_slider(tmp_path / "te.safetensors", network, diffusers, config, PROMPTS, steps=1)
    lora = comfy.utils.load_torch_file(str(path), safe_load=True)
    prefixes = {key.split("_text_model")[0] for key in lora if key.startswith("lora_te")}
    assert prefixes == ({"lora_te1", "lora_te2"} if family == "sdxl" else {"lora_te"})
    before = _clip_state(clip)
    try:
        for strength in (1.0, -0.5):
            caplog.clear()
            with caplog.at_level(logging.WARNING), torch.inference_mode():
                patched, patched_clip = comfy.sd.load_lora_for_models(patcher, clip, lora, 1.0, strength)
            not_loaded = [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage().lower()]
            assert not not_loaded, f"ComfyUI ignored part of the file: {not_loaded[:5]}"
            assert len(patched.patches) + len(patched_clip.patcher.patches) == len(network.names)
            with torch.inference_mode():
                cond, pooled = patched_clip.encode_from_tokens(patched_clip.tokenize(TEXTS[0]), return_pooled=True)
            assert (cond - expected[strength].context).abs().max() <= TOLERANCE
            assert (cond - expected[0.0].context).abs().max() > 1e-3, "the text-encoder LoRA changes nothing"
            if family == "sdxl":
                assert (pooled - expected[strength].pooled).abs().max() <= TOLERANCE
        with torch.inference_mode():
            clip.encode_from_tokens(clip.tokenize(TEXTS[0]))  # loading the base CLIP again unpatches the shared weights
        _assert_same_state(clip, before)
    finally:
        comfy.model_management.unload_all_models()


def test_comfy_backend_encodes_through_adapters_and_trains_leaving_clip_identical(comfy, stack):
    family, diffusers, patcher, clip = stack
    backend = _comfy_backend(patcher, clip)
    config = TrainConfig().replace(train_text_encoder="only", max_denoising_steps=3, max_train_steps=2, learning_rate=1e-2)
    ours, theirs = build_network(backend, config), build_network(diffusers, config)
    ours_by_stem = {kohya_namer(backend)(name): name for name in ours.names}
    theirs_by_stem = {kohya_namer(diffusers)(name): name for name in theirs.names}
    assert set(ours_by_stem) == set(theirs_by_stem)  # the same kohya layers in both hosts
    _random(theirs)
    state = theirs.module_state()
    ours.load_module_state({ours_by_stem[stem]: state[name] for stem, name in theirs_by_stem.items()})
    before = _clip_state(clip)
    try:
        with ours.attached(adapter_root(backend, ours.names)), theirs.attached(adapter_root(diffusers, theirs.names)):
            with backend.text_encoder_session():
                got = backend.encode_prompts_trainable(list(TEXTS))
            want = diffusers.encode_prompts_trainable(list(TEXTS))
            for text in TEXTS[:1]:  # (word:1.2) weights are ComfyUI's syntax only
                assert got[text].context.requires_grad
                assert (got[text].context - want[text].context).abs().max() <= TOLERANCE
            # The same gradient through ComfyUI's CLIP (in-place residuals, saved as copies) as through transformers'.
            got[TEXTS[0]].context.square().mean().backward()
            want[TEXTS[0]].context.square().mean().backward()
        for stem, name in theirs_by_stem.items():
            a, b = ours.lora(ours_by_stem[stem]).lora_down.weight.grad, theirs.lora(name).lora_down.weight.grad
            if b is None:  # a layer past the one clip skip reads (SDXL: the last) gets no gradient in either host
                assert a is None, stem
                continue
            assert a is not None and (a - b).abs().max() <= 1e-4 * (1 + b.abs().max()), stem
        _assert_same_state(clip, before)
        with torch.inference_mode():  # as the executor runs the Train node
            result = train(backend, PROMPTS, config)
        assert result.steps_done == 2
        assert any(float(lora.lora_up.weight.detach().abs().sum()) > 0 for _, lora in result.network.items())
        _assert_same_state(clip, before)
    finally:
        comfy.model_management.unload_all_models()
