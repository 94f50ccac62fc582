"""The graph: Targeting's train_text_encoder and Optimizer's text_encoder_lr train a LoRA on the toy world's real
ComfyUI CLIP, which is left bit-identical; the stock loader consumes every key of the slider at CLIP strength; Train
Slider's start_from (a Load Slider or Merge Sliders output) starts from a LoRA, and a foreign one is refused naming
start_from and the keys."""

from __future__ import annotations

import logging

import pytest
import torch
from support.comfy import COMFY_MARKS, require_comfyui
from support.nodes import assert_clip_untouched, clip_outputs, pair, train_inputs
from support.pack import run_node

require_comfyui()
pytestmark = COMFY_MARKS


def _targeting(pack, **overrides):
    inputs = dict(preset="cross_attention", network_dim=2, network_alpha=2.0, conv_dim=2, conv_alpha=1.0, include="", exclude="",
                  rank_pattern="", lr_pattern="", train_text_encoder="alongside", text_encoder_preset="attention_mlp")
    return run_node(pack.nodes["LOBA_Targeting"], **{**inputs, **overrides}).args[0]


def _optimizer(pack):
    inputs = dict(optimizer="adamw", weight_decay=0.0, lr_scheduler="constant", lr_warmup_steps=0, lr_scheduler_num_cycles=1,
                  max_grad_norm=1.0, text_encoder_lr=5e-3)
    return run_node(pack.nodes["LOBA_Optimizer"], **inputs).args[0]


def test_text_encoder_slider_from_the_graph_leaves_clip_identical(pack, comfy, toy, caplog):
    clip_before = clip_outputs(toy.clip)
    clip_state = {k: v.clone() for k, v in toy.clip.cond_stage_model.state_dict().items()}
    out = run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack), targeting=_targeting(pack),
                   optimizer=_optimizer(pack), **train_inputs(resolution=0, filename_prefix="loba/te"))
    slider = out.args[0]
    assert_clip_untouched(toy.clip, clip_before)
    after = toy.clip.cond_stage_model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in clip_state.items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in toy.clip.cond_stage_model.modules())
    stems = {key.rsplit(".", 2)[0] if key.endswith("weight") else key.rsplit(".", 1)[0] for key in slider.tensors}
    te = {stem for stem in stems if stem.startswith("lora_te_text_model_encoder_layers_")}
    assert te and all(stem.startswith(("lora_te_", "lora_unet_")) for stem in stems)
    caplog.clear()
    try:
        with caplog.at_level(logging.WARNING), torch.inference_mode():
            model, clip = comfy.sd.load_lora_for_models(toy.model, toy.clip, slider.tensors, 1.0, 1.0)
        assert not [r for r in caplog.records if "not loaded" in r.getMessage().lower()]
        assert len(model.patches) + len(clip.patcher.patches) == len(stems)
        assert not torch.equal(clip_outputs(clip)[0], clip_before[0])  # the trained text-encoder LoRA acts
    finally:
        comfy.model_management.unload_all_models()
    assert_clip_untouched(toy.clip, clip_before)


def test_start_from_a_slider_and_refuse_a_foreign_one(pack, comfy, toy):
    first = run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                     **train_inputs(resolution=0, network_dim=2, filename_prefix="loba/start")).args[0]
    again = run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack), start_from=first,
                     dim_from_weights=True, **train_inputs(resolution=0, network_dim=4, max_train_steps=1,
                                                           filename_prefix="loba/start")).args[0]
    assert set(again.tensors) == set(first.tensors)
    assert all(again.tensors[k].shape == first.tensors[k].shape for k in first.tensors)  # rank 2 from the file
    kohya = pack.module.loba.sliders.kohya
    foreign = kohya.SliderFile({**first.tensors, "lora_unet_nowhere.lora_down.weight": torch.zeros(2, 8),
                                "lora_unet_nowhere.lora_up.weight": torch.zeros(8, 2)}, {}, "foreign.safetensors")
    errors = pack.module.nodes.node_errors
    with pytest.raises(errors.NodeInputError, match="start_from.*lora_unet_nowhere"):
        run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack), start_from=foreign,
                 **train_inputs(resolution=0, filename_prefix="loba/start"))
