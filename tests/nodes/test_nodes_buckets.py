"""Aspect buckets in the nodes: the bucket combo, masks that pick or refuse buckets, SDXL's side rule refused
by the Train node before any model work, and SDXL size conditioning of a non-square bucket through ComfyUI."""

from __future__ import annotations

import importlib

import pytest
import torch
from support.backends import make_backend
from support.comfy import COMFY_MARKS, comfy_model_from_diffusers, require_comfyui
from support.nodes import DiffusersClip, pair, train_inputs
from support.pack import run_node

from loba.models.backend import SizeConditioning
from loba.models.buckets import BUCKET_CHOICES, SDXL_BUCKETS

require_comfyui()
pytestmark = COMFY_MARKS

SLIDER = dict(target_class="a circle", positive="a large circle", negative="a small circle", neutrals="",
              guidance_scale=1.0, resolution=0, batch_size=1, weight=1.0, multiplier=1.0)


def test_the_bucket_combo_is_optional_and_lists_the_engine_table(pack):
    for node_id in ("LOBA_PromptPair", "LOBA_SliderTarget"):
        (combo,) = [i for i in pack.nodes[node_id].GET_SCHEMA().inputs if i.id == "bucket"]
        assert combo.optional and combo.default == "square" and list(combo.options) == list(BUCKET_CHOICES)
    assert pair(pack).entries[0].resolutions == ()  # a saved workflow without the widget trains as before


def test_buckets_and_masks_give_the_entry_its_sizes(pack):
    assert pair(pack, bucket="SDXL 1216x832 landscape").entries[0].resolutions == ((832, 1216),)
    every = run_node(pack.nodes["LOBA_SliderTarget"], **SLIDER, bucket="SDXL: all buckets").args[0]
    assert every.entries[0].resolutions == SDXL_BUCKETS
    tall = torch.ones(1, 1216 // 16, 832 // 16)  # a portrait MASK picks the portrait bucket of its shape
    picked = run_node(pack.nodes["LOBA_SliderTarget"], **SLIDER, bucket="SDXL: all buckets", mask=tall).args[0]
    assert picked.entries[0].resolutions == ((1216, 832),) and picked.entries[0].mask.shape == (76, 52)


@pytest.mark.parametrize("inputs, field, says", [
    (dict(bucket="SDXL 1216x832 landscape", resolution=512), "resolution", "set resolution to 0"),
    (dict(bucket="SDXL: all buckets", mask=torch.ones(1, 30, 40)), "mask", "matches no bucket.*nearest is 1152x896"),
    (dict(bucket="SDXL 1216x832 landscape", mask=torch.ones(1, 16, 16)), "mask", "trains at 1216x832"),
])
def test_bad_bucket_input_names_node_and_field(pack, inputs, field, says):
    with pytest.raises(ValueError, match=rf"LOBA Prompt Pair \(erase / enhance\), input '{field}'.*{says}"):
        pair(pack, **inputs)


def test_sdxl_sizes_off_its_64_grid_are_refused_by_the_train_node(pack, comfy, tokenizer, monkeypatch):
    backend = make_backend(tokenizer, "sdxl")
    model, clip = comfy_model_from_diffusers(comfy, backend.unet, "sdxl", "epsilon"), DiffusersClip(backend)
    monkeypatch.setattr(DiffusersClip, "encode_from_tokens", lambda *a, **k: pytest.fail("encoded before refusing"))
    node = pack.nodes["LOBA_TrainSlider"]
    with pytest.raises(ValueError, match=r"LOBA Train Slider, input 'resolution'.*96x96 .*multiple of 64"):
        run_node(node, model=model, clip=clip, prompts=pair(pack), **train_inputs(resolution=96))
    with pytest.raises(ValueError, match=r"LOBA Train Slider, input 'resolution'.*Prompt Pair.*72x72 .*multiple of 64"):
        run_node(node, model=model, clip=clip, prompts=pair(pack, resolution=72), **train_inputs())


def test_comfy_sdxl_reads_a_non_square_size_conditioning_as_diffusers_does(pack, comfy, tokenizer):
    backend = make_backend(tokenizer, "sdxl")
    with torch.inference_mode():
        model = comfy_model_from_diffusers(comfy, backend.unet, "sdxl", "epsilon")
        host = importlib.import_module(f"{pack.module.__name__}.nodes.comfy_backend").ComfyBackend(model, DiffusersClip(backend))
        comfy_cond = host.encode_prompts(["a red circle"])["a red circle"]
    cond = backend.encode_prompts(["a red circle"])["a red circle"]
    x, t = torch.randn(1, 4, 8, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([400])
    size = SizeConditioning((96, 160), (8, 16), (64, 128))  # every pair (h, w) asymmetric: a swap would show
    with torch.no_grad(), host.training_session():
        ours = host.predict(x, t, comfy_cond, size).float()
        swapped = host.predict(x, t, comfy_cond, SizeConditioning((160, 96), (16, 8), (128, 64))).float()
    with torch.no_grad():
        reference = backend.predict(x, t, cond, size).float()
    assert (ours - reference).abs().max() <= 1e-4 < (swapped - reference).abs().max()
