"""The bad-input corpus, in-process through the node classes as ComfyUI runs them: every case fails with a
message naming the node and the field, writes nothing, leaks nothing read from outside ComfyUI's folders, and
the same node then serves a good input. (tests/e2e/test_bad_input_server.py posts a subset to a real server.)"""

from __future__ import annotations

import functools
import sys
from types import SimpleNamespace

import pytest
import torch
from support.bad_inputs import GOOD_TOML, SECRET, files_state, make_files, slider_for, toy_stems
from support.comfy import COMFY_MARKS, require_comfyui
from support.nodes import pair, train_inputs
from support.pack import PACK_NAME, run_node

require_comfyui()
pytestmark = COMFY_MARKS
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def ctx(pack, toy):
    files = make_files(pack.root, pack.root.parent / "outside")
    (pack.root / "loras" / "broken.safetensors").write_bytes(b"not a safetensors file")
    make = functools.partial(slider_for, sys.modules[f"{PACK_NAME}.loba.sliders.kohya"].SliderFile, toy_stems(toy.model))
    return SimpleNamespace(pack=pack, toy=toy, files=files, slider=make(), make=make, prompts=pair(pack))


def good_inputs(ctx, node_id: str) -> dict:
    toy, slider = ctx.toy, ctx.slider
    weights = {f"weight_{i}": 1.0 for i in (1, 2, 3, 4)}
    return {
        "LOBA_PromptPair": dict(target="a red circle", action="erase", positive="", unconditional="a circle", neutral="",
                                guidance_scale=1.0, resolution=0, batch_size=1, weight=1.0, multiplier=1.0),
        "LOBA_SliderTarget": dict(target_class="circle", positive="a red circle", negative="", neutrals="", guidance_scale=1.0,
                                  resolution=0, batch_size=1, weight=1.0, multiplier=1.0),
        "LOBA_PreservationPrompt": dict(prompt="a blue square", weight=1.0),
        "LOBA_ReattachPrompt": dict(caption="a triangle", redirect="a blue triangle\na green triangle | 2", explicit="auto",
                                    schedule="linear", ramp=0.5, resolution=0, batch_size=1, weight=1.0),
        "LOBA_LoadPromptToml": dict(toml=GOOD_TOML, file=""),
        "LOBA_TrainSlider": dict(model=toy.model, clip=toy.clip, prompts=ctx.prompts,
                                 **train_inputs(max_train_steps=1, resolution=64, filename_prefix="loba/corpus")),
        "LOBA_Targeting": dict(preset="all_linear", network_dim=4, network_alpha=1.0, conv_dim=4, conv_alpha=1.0, include="",
                               exclude="", rank_pattern="", lr_pattern=""),
        "LOBA_Loss": dict(loss_type="mse", huber_delta=1.0, min_snr_gamma=0.0, preservation_weight=1.0),
        "LOBA_Optimizer": dict(optimizer="adamw", weight_decay=0.0, lr_scheduler="constant", lr_warmup_steps=0,
                               lr_scheduler_num_cycles=1, max_grad_norm=1.0),
        "LOBA_Sampling": dict(trajectory_cache=4, trajectory_refresh_every=48, min_timestep=0, max_timestep=1000,
                              preserve_from_timestep=1000),
        "LOBA_ApplySlider": dict(model=toy.model, slider=slider, strength=1.0),
        "LOBA_BakeSlider": dict(model=toy.model, slider=slider, strength=1.0, strength_2=1.0),
        "LOBA_MergeSliders": dict(slider_1=slider, slider_2=slider, mode="concat", rank=8, **weights),
        "LOBA_SaveSlider": dict(slider=slider, filename_prefix="loba/corpus", precision="float"),
        "LOBA_LoadSlider": dict(lora_name="broken.safetensors"),  # no good file to load: the bad cases only
        "LOBA_SliderPreviewGrid": dict(model=toy.model, clip=toy.clip, vae=toy.vae, slider=slider, prompts="a red circle",
                                       negative="", weights="-1, 1", seed=0, steps=2, cfg=5.0, sampler_name="euler",
                                       scheduler="normal", width=64, height=64),
        "LOBA_Mask": dict(grow=0, feather=0.0, invert=False, mask=torch.ones(1, 8, 8)),
        "LOBA_TimestepSchedule": dict(start=600, end=1000, curve="rising"),
        "LOBA_AttentionRegion": dict(word="circle", invert=True, threshold=0.5, grow=0, feather=0.0),
    }[node_id]


def toml(line: str) -> dict:
    return {"toml": GOOD_TOML + line + "\n", "file": ""}


black = torch.zeros(1, 8, 8)
dot = torch.zeros(1, 8, 8)
dot[0, 4, 4] = 1.0
# (node, bad inputs over the good ones (a callable gets ctx), the field the message must name)
CASES = [
    ("LOBA_PromptPair", {"target": ""}, "target"),
    ("LOBA_PromptPair", {"action": "bogus"}, "action"),
    ("LOBA_PromptPair", {"guidance_scale": NAN}, "guidance_scale"),
    ("LOBA_PromptPair", {"guidance_scale": 1e6}, "guidance_scale"),
    ("LOBA_PromptPair", {"resolution": 12}, "resolution"),
    ("LOBA_PromptPair", {"resolution": 9000}, "resolution"),
    ("LOBA_PromptPair", {"batch_size": 0}, "batch_size"),
    ("LOBA_PromptPair", {"batch_size": 512}, "batch_size"),
    ("LOBA_PromptPair", {"weight": -1.0}, "weight"),
    ("LOBA_PromptPair", {"weight": NAN}, "weight"),
    ("LOBA_PromptPair", {"weight": 1000.0}, "weight"),
    ("LOBA_PromptPair", {"multiplier": 0.0}, "multiplier"),
    ("LOBA_PromptPair", {"multiplier": NAN}, "multiplier"),
    ("LOBA_PromptPair", {"multiplier": 50.0}, "multiplier"),
    ("LOBA_PromptPair", {"mask": torch.ones(2, 8, 8)}, "mask"),
    ("LOBA_PromptPair", {"mask": black}, "mask"),
    ("LOBA_PromptPair", {"mask": torch.full((1, 8, 8), 2.0)}, "mask"),
    ("LOBA_PromptPair", {"prompts": "not a prompt set"}, "prompts"),
    ("LOBA_SliderTarget", {"positive": "", "negative": ""}, "positive"),
    ("LOBA_SliderTarget", {"multiplier": 0.0}, "multiplier"),
    ("LOBA_SliderTarget", {"batch_size": 100}, "batch_size"),
    ("LOBA_SliderTarget", {"resolution": 8_000_000}, "resolution"),
    ("LOBA_SliderTarget", {"guidance_scale": INF}, "guidance_scale"),
    ("LOBA_SliderTarget", {"weight": NAN}, "weight"),
    ("LOBA_ReattachPrompt", {"caption": " "}, "caption"),
    ("LOBA_ReattachPrompt", {"redirect": ""}, "redirect"),
    ("LOBA_ReattachPrompt", {"redirect": "a triangle"}, "redirect"),
    ("LOBA_ReattachPrompt", {"redirect": "a blue triangle | -1"}, "redirect"),
    ("LOBA_ReattachPrompt", {"redirect": "a blue triangle | lots"}, "redirect"),
    ("LOBA_ReattachPrompt", {"redirect": "a blue triangle | 0"}, "redirect"),
    ("LOBA_ReattachPrompt", {"schedule": "sudden"}, "schedule"),
    ("LOBA_ReattachPrompt", {"ramp": 2.0}, "ramp"),
    ("LOBA_ReattachPrompt", {"ramp": NAN}, "ramp"),
    ("LOBA_ReattachPrompt", {"mask_outside": "hold"}, "mask_outside"),
    ("LOBA_ReattachPrompt", {"mask": black}, "mask"),
    ("LOBA_ReattachPrompt", {"prompts": 3}, "prompts"),
    ("LOBA_PreservationPrompt", {"weight": -1.0}, "weight"),
    ("LOBA_PreservationPrompt", {"weight": NAN}, "weight"),
    ("LOBA_PreservationPrompt", {"weight": 1000.0}, "weight"),
    ("LOBA_PreservationPrompt", {"prompts": 3}, "prompts"),
    ("LOBA_LoadPromptToml", {"toml": "", "file": ""}, "toml"),
    ("LOBA_LoadPromptToml", {"toml": "[[prompts]\ntarget = 1"}, "toml"),
    ("LOBA_LoadPromptToml", {"toml": "a = 1"}, "prompts"),
    ("LOBA_LoadPromptToml", {"toml": "", "file": "../outside/prompts.toml"}, "file"),
    ("LOBA_LoadPromptToml", lambda c: {"toml": "", "file": str(c.files.outside / "prompts.toml")}, "file"),
    ("LOBA_LoadPromptToml", {"toml": "", "file": "link.toml"}, "file"),
    ("LOBA_LoadPromptToml", {"toml": "", "file": "missing.toml"}, "file"),
    ("LOBA_LoadPromptToml", {"toml": "", "file": "binary.toml"}, "file"),
    ("LOBA_LoadPromptToml", {"toml": "", "file": "notes.txt"}, "file"),
    ("LOBA_LoadPromptToml", {"toml": "", "file": "folder.toml"}, "file"),
    ("LOBA_LoadPromptToml", {"toml": "", "file": "reads_out.toml"}, "prompt_file"),
    ("LOBA_LoadPromptToml", toml("resolution = 8000000"), "resolutions"),
    ("LOBA_LoadPromptToml", toml("batch_size = 512"), "batch_size"),
    ("LOBA_LoadPromptToml", lambda c: toml(f'neutral_prompt_file = "{c.files.outside / "secret.txt"}"'), "neutral_prompt_file"),
    ("LOBA_LoadPromptToml", toml('prompt_file = "../outside/secret.txt"'), "prompt_file"),
    ("LOBA_LoadPromptToml", toml('prompt_file = "link.txt"'), "prompt_file"),
    ("LOBA_LoadPromptToml", toml('neutral_prompt_file = "binary.txt"'), "neutral_prompt_file"),
    ("LOBA_LoadPromptToml", lambda c: toml(f'mask = "{c.files.outside / "mask.png"}"'), "mask"),
    ("LOBA_LoadPromptToml", toml('mask = "link.png"'), "mask"),
    ("LOBA_LoadPromptToml", toml('mask = "not_image.png"'), "mask"),
    ("LOBA_LoadPromptToml", toml("mask_box = [0, 0, 2, 1]"), "mask_box"),
    ("LOBA_LoadPromptToml", toml("guidance_scale = nan"), "guidance_scale"),
    ("LOBA_LoadPromptToml", toml("weight = inf"), "weight"),
    ("LOBA_LoadPromptToml", toml("multiplier = 0"), "multiplier"),
    ("LOBA_LoadPromptToml", toml("targt = 1"), "targt"),
    ("LOBA_TrainSlider", {"prompts": "x"}, "prompts"),
    ("LOBA_TrainSlider", {"leco_denoise_guidance_scale": NAN}, "denoise_cfg"),
    ("LOBA_TrainSlider", {"learning_rate": 0.0}, "learning_rate"),
    ("LOBA_TrainSlider", {"learning_rate": NAN}, "learning_rate"),
    ("LOBA_TrainSlider", {"network_alpha": INF}, "alpha"),
    ("LOBA_TrainSlider", {"max_train_steps": 0}, "steps"),
    ("LOBA_TrainSlider", {"preview_every": 1, "preview_weights": "1,,2"}, "preview_weights"),
    ("LOBA_TrainSlider", {"preview_every": 1, "preview_weights": "a, b"}, "preview_weights"),
    ("LOBA_TrainSlider", {"resume_file": "../../outside/secret.txt"}, "resume_file"),
    ("LOBA_TrainSlider", lambda c: {"resume_file": str(c.files.outside / "secret.txt")}, "resume_file"),
    ("LOBA_TrainSlider", {"resume_file": "loba_checkpoints/corpus/empty.pt"}, "resume_file"),
    ("LOBA_TrainSlider", {"resume_file": "loba_checkpoints/corpus/pickle.pt"}, "resume_file"),
    ("LOBA_TrainSlider", {"targeting": "x"}, "settings"),
    ("LOBA_TrainSlider", {"resolution": 8_000_000}, "resolution"),
    ("LOBA_Targeting", {"lr_pattern": "up_blocks = nan"}, "lr_pattern"),
    ("LOBA_Targeting", {"rank_pattern": "( = 4"}, "rank_pattern"),
    ("LOBA_Targeting", {"rank_pattern": "attn = many"}, "rank_pattern"),
    ("LOBA_Targeting", {"network_alpha": NAN}, "network_alpha"),
    ("LOBA_Targeting", {"include": "attn("}, "include"),
    ("LOBA_Loss", {"huber_delta": 0.0}, "huber_delta"),
    ("LOBA_Loss", {"min_snr_gamma": NAN}, "min_snr_gamma"),
    ("LOBA_Optimizer", {"weight_decay": NAN}, "weight_decay"),
    ("LOBA_Optimizer", {"max_grad_norm": INF}, "max_grad_norm"),
    ("LOBA_Sampling", {"min_timestep": 999, "max_timestep": 1}, "min_timestep"),
    ("LOBA_Sampling", {"trajectory_cache": 1000}, "trajectory_cache"),
    ("LOBA_ApplySlider", {"slider": "x"}, "slider"),
    ("LOBA_ApplySlider", lambda c: {"slider": c.make(nan_down=True)}, "slider"),
    ("LOBA_ApplySlider", lambda c: {"slider": c.make(int_dtype=True)}, "slider"),
    ("LOBA_ApplySlider", lambda c: {"slider": c.make(wrong_shape=True)}, "slider"),
    ("LOBA_ApplySlider", {"strength": NAN}, "strength"),
    ("LOBA_BakeSlider", lambda c: {"slider_2": c.make(nan_down=True)}, "slider_2"),
    ("LOBA_BakeSlider", lambda c: {"slider": c.make(rank0=True)}, "slider"),
    ("LOBA_BakeSlider", {"strength_2": INF}, "strength_2"),
    ("LOBA_MergeSliders", lambda c: {"slider_1": c.make(metadata={"ss_base_model_version": "sd_v1"}),
                                     "slider_2": c.make(metadata={"ss_base_model_version": "sdxl_base_v1-0"})},
     "slider_2"),
    ("LOBA_MergeSliders", {"weight_2": NAN}, "weight_2"),
    ("LOBA_MergeSliders", lambda c: {"slider_3": c.make(alpha_vector=True)}, "slider_3"),
    ("LOBA_MergeSliders", {"mode": "svd", "rank": 0}, "rank"),
    ("LOBA_SaveSlider", {"slider": None}, "slider"),
    ("LOBA_SaveSlider", lambda c: {"slider": c.make(nan_down=True)}, "slider"),
    ("LOBA_LoadSlider", {"lora_name": "missing.safetensors"}, "lora_name"),
    ("LOBA_LoadSlider", {"lora_name": "broken.safetensors"}, "lora_name"),
    ("LOBA_SliderPreviewGrid", {"weights": "1,,2"}, "weights"),
    ("LOBA_SliderPreviewGrid", {"width": 12}, "width"),
    ("LOBA_SliderPreviewGrid", {"prompts": " \n "}, "prompts"),
    ("LOBA_SliderPreviewGrid", lambda c: {"slider": c.make(nan_down=True)}, "slider"),
    ("LOBA_Mask", {"mask": None}, "mask"),
    ("LOBA_Mask", {"mask": dot, "grow": -4}, "grow"),
    ("LOBA_TimestepSchedule", {"start": 600, "end": 400}, "end"),
    ("LOBA_TimestepSchedule", {"start": -5}, "start"),
    ("LOBA_TimestepSchedule", {"end": 1500}, "start"),
    ("LOBA_TimestepSchedule", {"curve": "zigzag"}, "curve"),
    ("LOBA_PromptPair", {"timesteps": "late"}, "timesteps"),
    ("LOBA_AttentionRegion", {"word": " "}, "word"),
    ("LOBA_AttentionRegion", {"threshold": 1.5}, "threshold"),
    ("LOBA_AttentionRegion", {"grow": 40}, "grow"),
    ("LOBA_AttentionRegion", {"feather": NAN}, "feather"),
    ("LOBA_PromptPair", {"region": "circle"}, "region"),
    ("LOBA_PromptPair", {"mask_outside": "hold"}, "mask_outside"),
    ("LOBA_SliderTarget", {"mask_outside": "keep"}, "mask_outside"),
]
HEAVY = {"LOBA_TrainSlider", "LOBA_SliderPreviewGrid", "LOBA_LoadSlider"}  # their good runs: once, below


def test_the_corpus_is_broad():
    assert len(CASES) >= 60 and len({node for node, *_ in CASES}) == 19


@pytest.mark.parametrize("node_id, bad, field", CASES, ids=[f"{n[5:]}-{i}-{f}" for i, (n, _, f) in enumerate(CASES)])
def test_bad_input_names_node_and_field_writes_nothing_and_the_node_serves_on(ctx, node_id, bad, field):
    cls = ctx.pack.nodes[node_id]
    inputs = {**good_inputs(ctx, node_id), **(bad(ctx) if callable(bad) else bad)}
    before = files_state(ctx.pack.root, ctx.files.outside)
    with pytest.raises(ValueError) as caught:
        run_node(cls, **inputs)
    message = str(caught.value)
    assert message.startswith(f"{cls.GET_SCHEMA().display_name}, input '{field}'"), message
    assert SECRET not in message and "weights_only=False" not in message
    assert files_state(ctx.pack.root, ctx.files.outside) == before, "a refused input wrote a file"
    if node_id not in HEAVY:
        assert run_node(cls, **good_inputs(ctx, node_id)).args[0] is not None


def test_the_heavy_nodes_serve_a_good_input_after_the_corpus(ctx):
    grid = run_node(ctx.pack.nodes["LOBA_SliderPreviewGrid"], **good_inputs(ctx, "LOBA_SliderPreviewGrid")).args[0]
    assert grid.shape[0] == 1
    slider = run_node(ctx.pack.nodes["LOBA_TrainSlider"], **good_inputs(ctx, "LOBA_TrainSlider")).args[0]
    assert slider.module_stems()
