"""Training through the node pack in-process against a real ComfyUI, on tiny SD1, SD2-v and SDXL models built in
ComfyUI objects under inference mode (as the executor builds them) and on the embedded toy world.

Pinned here: the user's MODEL and CLIP give bit-identical outputs after a run that succeeded, was cancelled or
failed, with nothing left attached; a slider trained in the graph and loaded by the stock LoRA path reproduces
the training-time student (<= 1e-5, fp32); bad input fails with the node and field.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from support.comfy import COMFY_MARKS, comfy_eps, require_comfyui
from support.nodes import (
    STUDENT_TOLERANCE,
    assert_clip_untouched,
    assert_untouched,
    clip_outputs,
    family_model,
    pair,
    snapshot,
    train_inputs,
)
from support.pack import run_node

require_comfyui()
pytestmark = COMFY_MARKS


# -- training ------------------------------------------------------------------------------------------
def stock_reproduces_student(comfy, pack, model, slider, x, context, y):
    """Max |stock LoraLoader output - training-time student output| at strength 1."""
    engine_files = pack.module.loba.sliders.kohya
    backend = pack.module.nodes.comfy_backend.ComfyBackend(model, None)
    unet = model.model.diffusion_model
    network = engine_files.network_from_file(slider, unet, backend.module_name_from_kohya)
    with torch.inference_mode(False), torch.no_grad(), backend.training_session(), network.attached(unet):
        network.multiplier = 1.0
        student = unet(x, timesteps=torch.tensor([500.0]), context=context, y=y).float().clone()
    patched, _ = comfy.sd.load_lora_for_models(model, None, slider.tensors, 1.0, 0)
    stock = comfy_eps(comfy, patched, x, torch.tensor([500.0]), context, y)
    base = comfy_eps(comfy, model, x, torch.tensor([500.0]), context, y)
    return float((stock - student).detach().abs().max()), float((stock - base).abs().max())


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_train_node_leaves_the_model_alone_and_the_stock_loader_reproduces_it(pack, comfy, tokenizer, family):
    model, clip = family_model(comfy, tokenizer, family)
    before = snapshot(comfy, model)
    out = run_node(pack.nodes["LOBA_TrainSlider"], hidden={"UNIQUE_ID": "7", "PROMPT": {"1": {}}, "EXTRA_PNGINFO": {"workflow": {"n": 1}}},
                   model=model, clip=clip, prompts=pair(pack), **train_inputs(filename_prefix=f"loba/{family}"))
    slider, curve, path = out.args
    assert_untouched(comfy, model, before)
    assert curve.shape[0] == 1 and curve.shape[-1] == 3
    saved = pack.module.loba.sliders.kohya.load_slider(path)
    assert saved.metadata["ss_steps"] == "3" and json.loads(saved.metadata["workflow"]) == {"n": 1}
    assert json.loads(saved.metadata["loba_config"])["max_train_steps"] == 3
    assert str(pack.root / "loras") in path
    diff, effect = stock_reproduces_student(comfy, pack, model, saved, *before[2])
    assert diff <= STUDENT_TOLERANCE < effect
    assert_untouched(comfy, model, before, flags_too=False)


def test_toy_world_graph_trains_with_previews_and_checkpoints(pack, comfy, toy):
    before, clip_before = snapshot(comfy, toy.model), clip_outputs(toy.clip)
    previews = []
    seam_module = pack.module.nodes.seam
    original = seam_module.ComfySeam.on_step

    def spy(self, report, network):
        original(self, report, network)
        previews.append(self.previews)

    seam_module.ComfySeam.on_step = spy
    try:
        out = run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, vae=toy.vae, prompts=pair(pack),
                       **train_inputs(resolution=0, max_train_steps=4, preview_every=2, save_every_n_steps=2, filename_prefix="loba/toy"))
    finally:
        seam_module.ComfySeam.on_step = original
    assert previews == [0, 1, 1, 2]
    assert_untouched(comfy, toy.model, before)
    assert_clip_untouched(toy.clip, clip_before)
    (run_folder,) = (pack.root / "output" / "loba_checkpoints" / "loba").glob("toy_*_")  # this run's own folder
    checkpoints = list(run_folder.rglob("*"))
    assert any(p.is_file() for p in checkpoints)
    diff, effect = stock_reproduces_student(comfy, pack, toy.model, out.args[0], *before[2])
    assert diff <= STUDENT_TOLERANCE < effect


def test_cancel_keeps_and_saves_the_partial_slider(pack, comfy, toy, monkeypatch):
    mm = comfy.model_management
    before, clip_before = snapshot(comfy, toy.model), clip_outputs(toy.clip)

    def send(event, data):
        if event == "loba.loss" and data["step"] == 2:
            mm.interrupt_current_processing(True)  # what POST /interrupt does

    monkeypatch.setattr(pack.module.nodes.seam, "websocket_sender", lambda: send)
    folder = pack.root / "loras" / "loba"
    existing = set(folder.glob("cancel*")) if folder.exists() else set()
    with pytest.raises(mm.InterruptProcessingException):
        run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                 **train_inputs(resolution=0, max_train_steps=50, filename_prefix="loba/cancel"))
    assert not mm.processing_interrupted()
    (saved,) = set(folder.glob("cancel*")) - existing
    metadata = pack.module.loba.sliders.kohya.load_slider(saved).metadata
    assert metadata["ss_steps"] == "2" and metadata["loba_stopped_early"] == "true"
    assert_untouched(comfy, toy.model, before)
    assert_clip_untouched(toy.clip, clip_before)


@pytest.mark.parametrize("failure", [RuntimeError("preview broke"), torch.OutOfMemoryError("CUDA out of memory (simulated)")])
def test_failures_in_a_run_leave_the_model_alone(pack, comfy, toy, monkeypatch, failure):
    before, clip_before = snapshot(comfy, toy.model), clip_outputs(toy.clip)

    def broken(self, network, step, should_stop=None):
        raise failure

    monkeypatch.setattr(pack.module.loba.train.preview.PreviewSampler, "__call__", broken)
    with pytest.raises(type(failure)):
        run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                 **train_inputs(resolution=0, preview_every=1))
    assert_untouched(comfy, toy.model, before)
    assert_clip_untouched(toy.clip, clip_before)


def test_a_nan_loss_fails_with_the_node_name_and_leaves_the_model_alone(pack, comfy, toy, monkeypatch):
    before = snapshot(comfy, toy.model)
    step_module = pack.module.loba.train.step
    original = step_module.SliderStep.run

    def poisoned(self, plan, clock=None, rows=None):
        result = original(self, plan, clock, rows)
        return type(result)(**{**result.__dict__, "loss": result.loss * float("nan")})

    monkeypatch.setattr(step_module.SliderStep, "run", poisoned)
    with pytest.raises(ValueError, match="LOBA Train Slider, input 'prompts'.*loss became nan"):
        run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack), **train_inputs(resolution=0))
    assert_untouched(comfy, toy.model, before)


# -- bad input ------------------------------------------------------------------------------------------
def test_bad_input_names_the_node_and_the_field(pack, comfy, toy):
    nodes = pack.nodes
    with pytest.raises(ValueError, match="LOBA Prompt Pair .*target.*is empty"):
        pair(pack, target="")
    with pytest.raises(ValueError, match="LOBA Prompt Pair .*input 'mask'.*batch of 2"):
        pair(pack, mask=torch.ones(2, 64, 64))
    with pytest.raises(ValueError, match="LOBA Train Slider, input 'mask'.*64x32 .* trains at 64x64"):
        run_node(nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack, mask=torch.ones(1, 32, 64)),
                 **train_inputs(resolution=0))
    with pytest.raises(ValueError, match="LOBA Targeting, input 'preset'.*unknown targeting preset 'nope'"):
        run_node(nodes["LOBA_Targeting"], preset="nope", network_dim=4, network_alpha=1.0, conv_dim=4, conv_alpha=1.0,
                 include="", exclude="", rank_pattern="", lr_pattern="")
    with pytest.raises(ValueError, match="LOBA Train Slider, input 'prompts'.*connect a LOBA prompt node"):
        run_node(nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=None, **train_inputs())
    unsupported = SimpleNamespace(model=SimpleNamespace(model_config=object()))
    with pytest.raises(ValueError, match="LOBA Train Slider, input 'model'.*SD1.x, SD2.x .* and SDXL"):
        run_node(nodes["LOBA_TrainSlider"], model=unsupported, clip=toy.clip, prompts=pair(pack), **train_inputs())
    with pytest.raises(ValueError, match="LOBA Train Slider, input 'filename_prefix'"):
        run_node(nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack), **train_inputs(filename_prefix="../x"))
    with pytest.raises(ValueError, match="LOBA Train Slider, input 'preview_weights'"):
        run_node(nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                 **train_inputs(preview_every=1, preview_weights="1, x"))


def test_foreign_lora_files_are_refused_by_name(pack, comfy, tokenizer, toy):
    files = pack.module.loba.sliders.kohya
    sdxl_model, sdxl_clip = family_model(comfy, tokenizer, "sdxl")
    sdxl_slider = run_node(pack.nodes["LOBA_TrainSlider"], model=sdxl_model, clip=sdxl_clip, prompts=pair(pack),
                           **train_inputs(max_train_steps=1, filename_prefix="loba/xl")).args[0]
    with pytest.raises(ValueError, match="LOBA Apply Slider, input 'slider'.*do not exist in this MODEL"):
        run_node(pack.nodes["LOBA_ApplySlider"], model=toy.model, slider=sdxl_slider, strength=1.0)
    (pack.root / "loras" / "foreign.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="LOBA Load Slider, input 'lora_name'.*cannot read"):
        run_node(pack.nodes["LOBA_LoadSlider"], lora_name="foreign.safetensors")
    from safetensors.torch import save_file

    save_file({"lora_unet_x.hada_w1_a": torch.zeros(2, 2)}, str(pack.root / "loras" / "loha.safetensors"))
    with pytest.raises(ValueError, match=r"LOBA Load Slider.*\(loha\) has no hada_w1_b"):  # LoHa loads; half a LoHa not
        run_node(pack.nodes["LOBA_LoadSlider"], lora_name="loha.safetensors")
    save_file({"unet.x.lora_A.weight": torch.zeros(2, 2)}, str(pack.root / "loras" / "peft.safetensors"))
    with pytest.raises(ValueError, match="LOBA Load Slider.*not in kohya LoRA form"):
        run_node(pack.nodes["LOBA_LoadSlider"], lora_name="peft.safetensors")
    assert files is not None




def test_the_loss_events_carry_the_canary_drift_at_the_default_interval(pack, comfy, toy, monkeypatch):
    seen = []
    monkeypatch.setattr(pack.module.nodes.seam, "websocket_sender", lambda: lambda event, data: seen.append((event, data)))
    run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
             **train_inputs(resolution=0, max_train_steps=10, filename_prefix="loba/canaries"))
    drifts = [data["canary_drift"] for event, data in seen if event == "loba.loss"]
    assert drifts[:9] == [None] * 9 and drifts[9] > 0  # canary_every defaults to 10
    # the server's run state keeps [step, drift] pairs, for the chart's catch-up after a page reload
    kept = [state.get("canary_drifts") for state in pack.module.nodes.seam.RUNS.values()]
    assert [10, drifts[9]] in [pairs[-1] for pairs in kept if pairs]


def test_an_attention_region_trains_through_comfyuis_cross_attention(pack, comfy, toy):
    """The region read from ComfyUI's own CrossAttention layers (to_q / to_k hooks) masks the toy slider's loss;
    the MODEL stays as it was and no hook is left on it."""
    before = snapshot(comfy, toy.model)
    region = run_node(pack.nodes["LOBA_AttentionRegion"], word="circle", invert=True, threshold=0.5, grow=0,
                      feather=0.0).args[0]
    prompts = run_node(pack.nodes["LOBA_SliderTarget"], target_class="a circle", positive="a circle on a light background",
                       negative="a circle on a dark background", neutrals="", guidance_scale=1.0, resolution=64,
                       batch_size=1, weight=1.0, multiplier=1.0, region=region, mask_outside="hold").args[0]
    step_module = pack.module.loba.train.step_regions
    masks, original = [], step_module.region_mask
    step_module.region_mask = lambda *a, **k: masks.append(original(*a, **k)) or masks[-1]
    try:
        slider, _, _ = run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=prompts,
                                **train_inputs(filename_prefix="loba/region")).args
    finally:
        step_module.region_mask = original
    assert slider.module_stems() and len(masks) == 3
    assert all(m.shape[-2:] == (8, 8) and 0 < float(m.mean()) < 1 for m in masks)
    assert_untouched(comfy, toy.model, before)
    unet = toy.model.model.diffusion_model
    assert not any(m._forward_hooks for m in unet.modules())
