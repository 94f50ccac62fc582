"""Prompts as users write them encode the same in both hosts: long tag lists, CLIP skip, SDXL's two encoders;
(word:1.2) weights in ComfyUI exactly as CLIPTextEncode encodes them for sampling.

One tiny random CLIP stack (tests/support/comfy_clip.py) is loaded in both: transformers encoders for the
diffusers backend and ComfyUI's own CLIP object (its tokenizer, chunking and layer choice) for the ComfyUI one.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from support.comfy import COMFY_MARKS, comfy_model_from_diffusers, require_comfyui
from support.comfy_clip import comfy_clip, tiny_clip_encoders, tiny_clip_tokenizers
from support.pack import import_pack
from support.tiny_models import sd_alphas_cumprod, tiny_unet

from loba.models.diffusers_backend import DiffusersBackend

require_comfyui()
pytestmark = COMFY_MARKS

# fp32, same weights, two CLIP implementations: measured <= 1.6e-6 (SD1 and SDXL, clip skip default, 2, 3).
TOLERANCE = 1e-5
TAGS = ("1girl, solo, long hair, looking at viewer, smile, open mouth, blue eyes, blonde hair, shirt, long sleeves, "
        "hair ornament, dress, holding, sitting, closed mouth, standing, full body, flower, outdoors, sky, day, cloud, "
        "water, tree, blue sky, petals, grass, cherry blossoms, wind, scenery, reflection, river, spring, masterpiece, "
        "best quality, highly detailed, sharp focus, depth of field, cinematic lighting, soft shadows, watercolor, "
        "pastel colors, detailed background, wide shot, from side, hand up, hair between eyes, frills, ribbon, bow, "
        "white gloves, thighhighs, pleated skirt, earrings, necklace, butterfly, sunlight, lens flare, bokeh, "
        "light particles, absurdres")
SHORT = "a red circle"


def _comfy_backend_class():
    return importlib.import_module(f"{import_pack().__name__}.nodes.comfy_backend").ComfyBackend


@pytest.fixture(scope="module", params=["sd1", "sdxl"])
def stack(request, comfy, tmp_path_factory):
    family = request.param
    encoders = tiny_clip_encoders(family)
    tokenizers = tiny_clip_tokenizers(family, tmp_path_factory.mktemp("tok"))
    unet = tiny_unet(family)
    patcher = comfy_model_from_diffusers(comfy, unet)
    return family, encoders, tokenizers, unet, patcher, comfy_clip(encoders)


def _both(stack, clip_skip):
    family, encoders, tokenizers, unet, patcher, clip = stack
    diffusers = DiffusersBackend(unet, encoders, tokenizers, sd_alphas_cumprod(), clip_skip=clip_skip)
    if clip_skip is not None:  # what CLIPSetLastLayer does
        clip = clip.clone()
        clip.clip_layer(-clip_skip)
    return _comfy_backend_class()(patcher, clip), diffusers


def test_the_tag_list_is_longer_than_two_clip_windows(stack):
    tokenizer = stack[2][0]
    assert len(tokenizer(TAGS, add_special_tokens=False).input_ids) > 150


@pytest.mark.parametrize("clip_skip", [None, 2, 3])
def test_long_prompts_and_clip_skip_encode_the_same_in_both_backends(stack, clip_skip):
    family = stack[0]
    comfy_backend, diffusers_backend = _both(stack, clip_skip)
    with torch.inference_mode():
        ours = comfy_backend.encode_prompts([TAGS, SHORT])
    theirs = diffusers_backend.encode_prompts([TAGS, SHORT])
    for text in (TAGS, SHORT):
        assert ours[text].context.shape == theirs[text].context.shape == (1, 3 * 77, 32 if family == "sd1" else 64)
        assert (ours[text].context - theirs[text].context).abs().max() <= TOLERANCE
        if family == "sdxl":
            assert (ours[text].pooled - theirs[text].pooled).abs().max() <= TOLERANCE
    # The short prompt is repeated to the long one's length (lcm), as ComfyUI's sampler batches conds.
    assert torch.equal(theirs[SHORT].context[:, :77], theirs[SHORT].context[:, 77:154])


def test_clip_skip_and_the_tail_of_long_prompts_change_the_conditioning(stack):
    _, default = _both(stack, None)
    _, skipped = _both(stack, 3)
    head = TAGS.rsplit(",", 2)[0]  # 151 tokens: the same first two chunks, a shorter third one
    plain = default.encode_prompts([TAGS, head])
    assert (plain[TAGS].context - skipped.encode_prompts([TAGS])[TAGS].context).abs().max() > 1e-3
    assert (plain[TAGS].context[:, :77] - plain[head].context[:, :77]).abs().max() <= TOLERANCE
    assert (plain[TAGS].context[:, 154:] - plain[head].context[:, 154:]).abs().max() > 1e-3


def test_weighted_prompts_encode_as_clip_text_encode_does_for_sampling(stack):
    clip = stack[5]
    comfy_backend, _ = _both(stack, None)
    weighted = "a (red:1.5) circle, (blue square:0.7)"
    with torch.inference_mode():
        ours = comfy_backend.encode_prompts([weighted, "a red circle, blue square"])
        sampled = clip.encode_from_tokens_scheduled(clip.tokenize(weighted))  # CLIPTextEncode's CONDITIONING
    assert torch.equal(ours[weighted].context, sampled[0][0])
    assert (ours[weighted].context - ours["a red circle, blue square"].context).abs().max() > 1e-3
    if stack[0] == "sdxl":
        assert torch.equal(ours[weighted].pooled, sampled[0][1]["pooled_output"])


@pytest.mark.parametrize("prompt, word", [(SHORT, "circle"), ("(red:1.3) circle, long hair", "hair"), (TAGS, "absurdres")])
def test_attention_region_words_sit_where_both_hosts_put_them(stack, prompt, word):
    """Attention regions read the word's context columns: ComfyUI's token layout (weights syntax, 75-token chunks
    split at word boundaries) and the diffusers backend's give the same positions where the two layouts agree."""
    comfy_backend, diffusers = _both(stack, None)
    ours = comfy_backend.token_positions(prompt, word)
    assert ours, f"{word!r} not found in ComfyUI's tokens"
    if "(" not in prompt and prompt != TAGS:  # ComfyUI cuts chunks at word boundaries; the diffusers backend does not
        assert ours == diffusers.token_positions(prompt, word)
    tokens = [t[0] for chunk in stack[5].tokenize(prompt)["l"] for t in chunk]
    word_ids = stack[2][0](word, add_special_tokens=False).input_ids
    assert [tokens[i] for i in ours] == word_ids * (len(ours) // len(word_ids))
