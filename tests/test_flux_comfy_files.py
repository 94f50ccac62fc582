"""Flux sliders as files and through the nodes: kohya keys (lora_unet_double_blocks_0_img_attn_qkv ...) with Flux
metadata that ComfyUI's stock LoraLoader loads whole and that reproduce the student; the Train node leaves the MODEL
bit-identical after success, cancel and failure; Apply / Bake / Merge / Preview Grid take Flux sliders and refuse
sliders, CLIPs and settings of the other family, before model work, naming node and input."""

from __future__ import annotations

import importlib
import logging

import pytest
import torch
from support.comfy import COMFY_MARKS, require_comfyui
from support.comfy_flux import tiny_flux_clip, tiny_flux_model
from support.nodes import STUDENT_TOLERANCE, family_model, pair, train_inputs
from support.pack import run_node

from loba.config import TrainConfig
from loba.prompts import PromptPair, PromptSet
from loba.sliders.kohya import load_slider
from loba.sliders.trained import save_trained_slider
from loba.train.loop import build_network

require_comfyui()
pytestmark = COMFY_MARKS

FLUX_STEMS = ("lora_unet_double_blocks_", "lora_unet_single_blocks_")
TRAIN = "LOBA_TrainSlider"


@pytest.fixture(scope="module")
def flux(comfy):
    return {"dev": tiny_flux_model(comfy, "dev", seed=3), "schnell": tiny_flux_model(comfy, "schnell", seed=4),
            "clip": tiny_flux_clip(seed=5)}


def flux_out(comfy, patcher, x, sigma: float, cond, guidance=3.5) -> torch.Tensor:
    """The velocity as ComfyUI's sampler gets it from this MODEL (its patches loaded into the weights)."""
    with torch.inference_mode():
        comfy.model_management.load_models_gpu([patcher])
        out = patcher.model.diffusion_model(x, torch.tensor([sigma]), context=cond[0], y=cond[1],
                                            guidance=torch.tensor([guidance]))
    return out.float().clone()


def snapshot(comfy, model, clip):
    with torch.inference_mode():
        cond = clip.encode_from_tokens(clip.tokenize("a red circle"), return_pooled=True)
        state = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(9))
    flags = {n: p.requires_grad for n, p in model.model.diffusion_model.named_parameters()}
    return state, flux_out(comfy, model, x, 0.6, cond), (x, cond), flags


def assert_untouched(comfy, model, before, flags_too: bool = True) -> None:
    """flags_too=False after the stock LoRA loader ran: ComfyUI's own patch/unpatch re-creates parameters with
    requires_grad=False, which is not ours to undo (support.nodes.assert_untouched says the same)."""
    state, out, (x, cond), flags = before
    unet = model.model.diffusion_model
    assert torch.equal(flux_out(comfy, model, x, 0.6, cond), out), "outputs changed"
    assert all(torch.equal(state[k], v) for k, v in unet.state_dict().items()), "weights changed"
    assert all(not m._forward_hooks and not m._forward_pre_hooks and "forward" not in m.__dict__ for m in unet.modules())
    if flags_too:
        assert {n: p.requires_grad for n, p in unet.named_parameters()} == flags
    assert not any(p.grad is not None for p in unet.parameters())


def test_a_saved_flux_slider_loads_whole_in_the_stock_lora_loader_and_reproduces_the_student(pack, comfy, flux, tmp_path,
                                                                                             caplog):
    model, clip = flux["dev"], flux["clip"]
    with torch.inference_mode():
        backend = pack.module.nodes.comfy_backend.ComfyBackend(model, clip)
        cond = backend.encode_prompts(["a red circle"])["a red circle"]
    config = TrainConfig().replace(preset="flux_all_linear", network_dim=4, network_alpha=2.0)
    network = build_network(backend, config)
    with torch.no_grad():
        for p in network.parameters():
            p.normal_(0, 0.05, generator=torch.Generator().manual_seed(p.numel()))
    path = save_trained_slider(tmp_path / "flux.safetensors", network, backend, config,
                               PromptSet(entries=(PromptPair(target="x"),)), steps=1)
    slider = load_slider(path)
    assert slider.metadata["ss_base_model_version"] == "flux1" and slider.metadata["loba_family"] == "flux"
    stems = slider.module_stems()
    assert len(stems) == len(network.names) and all(stem.startswith(FLUX_STEMS) for stem in stems)
    assert "lora_unet_double_blocks_0_img_attn_qkv" in stems and "lora_unet_single_blocks_1_linear2" in stems
    x = torch.randn(1, 16, 8, 6, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([600])
    sigma = float(backend.noise_schedule().sigmas[600])
    with torch.no_grad(), backend.training_session(), network.attached(backend.denoiser()):
        network.multiplier = 1.0
        student = backend.predict(x, t, cond).float().clone()
    before = snapshot(comfy, model, clip)
    lora = comfy.utils.load_torch_file(str(path), safe_load=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING), torch.inference_mode():
        patched, _ = comfy.sd.load_lora_for_models(model, None, lora, 1.0, 0)
    assert not [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage().lower()]
    assert len(patched.patches) == len(stems)
    stock = flux_out(comfy, patched, x, sigma, (cond.context, cond.pooled))
    assert (student - stock).abs().max() <= STUDENT_TOLERANCE
    assert (stock - flux_out(comfy, model, x, sigma, (cond.context, cond.pooled))).abs().max() > 1e-3
    assert_untouched(comfy, model, before, flags_too=False)


def _train(pack, model, clip, **overrides):
    return run_node(pack.nodes[TRAIN], model=model, clip=clip, prompts=pair(pack), **train_inputs(**overrides))


def test_the_train_node_trains_flux_and_the_lora_loader_node_loads_the_file(pack, comfy, flux, caplog):
    before = snapshot(comfy, flux["dev"], flux["clip"])
    slider, _, path = _train(pack, flux["dev"], flux["clip"], filename_prefix="loba/flux", resolution=80,
                             gradient_checkpointing=True, guidance=2.5).args
    assert_untouched(comfy, flux["dev"], before)
    assert slider.metadata["loba_family"] == "flux" and all(s.startswith(FLUX_STEMS) for s in slider.module_stems())
    assert '"guidance": 2.5' in slider.metadata["loba_config"]
    stock_nodes = importlib.import_module("nodes")  # ComfyUI's own nodes.py
    name = str(path).split("loras/", 1)[1]
    caplog.clear()
    with caplog.at_level(logging.WARNING), torch.inference_mode():
        patched, patched_clip = stock_nodes.LoraLoader().load_lora(flux["dev"], flux["clip"], name, 1.0, 1.0)
    assert not [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage().lower()]
    assert len(patched.patches) == len(slider.module_stems())
    assert_untouched(comfy, flux["dev"], before, flags_too=False)


@pytest.mark.parametrize("outcome", ["cancel", "failure"])
def test_the_model_is_bit_identical_after_a_cancel_or_a_failure(pack, comfy, flux, monkeypatch, outcome):
    mm, seam = comfy.model_management, pack.module.nodes.seam
    before = snapshot(comfy, flux["schnell"], flux["clip"])
    original = seam.ComfySeam.on_step

    def on_step(self, report, network):
        original(self, report, network)
        if report.step == 2:
            if outcome == "cancel":
                mm.interrupt_current_processing(True)
            else:
                raise RuntimeError("boom in step 2")

    monkeypatch.setattr(seam.ComfySeam, "on_step", on_step)
    expected = mm.InterruptProcessingException if outcome == "cancel" else RuntimeError
    with pytest.raises(expected):
        _train(pack, flux["schnell"], flux["clip"], max_train_steps=6, filename_prefix=f"loba/flux-{outcome}")
    assert not mm.processing_interrupted()
    assert_untouched(comfy, flux["schnell"], before)


@pytest.fixture(scope="module")
def sdxl(comfy, tokenizer):
    return family_model(comfy, tokenizer, "sdxl")


def no_model_work(pack, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("model work started")

    monkeypatch.setattr(pack.module.nodes.comfy_backend, "flux_call", refuse)


@pytest.mark.parametrize("case, field, message", [
    ("flux+sd_clip", "clip", "DualCLIPLoader"), ("sd+flux_clip", "clip", "Flux CLIP"),
    ("resolution", "resolution", "not a multiple of 16"), ("schnell_guidance", "guidance", "schnell has no guidance"),
    ("sd_preset", "preset", "for sd1/sd2/sdxl models"), ("flux_preset_on_sd", "preset", "for flux models"),
    ("text_encoder", "train_text_encoder", "Flux's text encoders"),
])
def test_bad_flux_input_is_refused_before_model_work(pack, flux, toy, monkeypatch, case, field, message):
    no_model_work(pack, monkeypatch)
    ConfigPart = pack.module.nodes.types.ConfigPart
    inputs = {"model": flux["dev"], "clip": flux["clip"]}
    extra = {}
    if case == "flux+sd_clip":
        inputs["clip"] = toy.clip
    elif case in ("sd+flux_clip", "flux_preset_on_sd"):
        inputs = {"model": toy.model, "clip": flux["clip"] if case == "sd+flux_clip" else toy.clip}
    if case == "resolution":
        extra["resolution"] = 72  # a multiple of 8, not of 16
    if case == "schnell_guidance":
        inputs["model"], extra["guidance"] = flux["schnell"], 5.0
    if case in ("sd_preset", "flux_preset_on_sd"):
        preset = "cross_attention" if case == "sd_preset" else "flux_double_attention"
        extra["targeting"] = ConfigPart("LOBA Targeting", {"preset": preset})
    if case == "text_encoder":
        extra["targeting"] = ConfigPart("LOBA Targeting", {"train_text_encoder": "alongside"})
    with pytest.raises(ValueError, match=f"LOBA Train Slider, input '{field}': .*{message}"):
        run_node(pack.nodes[TRAIN], prompts=pair(pack), **inputs, **train_inputs(**extra))


def _flux_slider(pack, flux):
    return _train(pack, flux["dev"], flux["clip"], filename_prefix="loba/flux-apply", max_train_steps=2).args[0]


def test_flux_sliders_apply_bake_and_merge_on_flux_and_are_refused_on_sdxl(pack, comfy, flux, sdxl):
    slider = _flux_slider(pack, flux)
    applied = run_node(pack.nodes["LOBA_ApplySlider"], model=flux["dev"], slider=slider, strength=1.0).args[0]
    assert len(applied.patches) == len(slider.module_stems())
    baked = run_node(pack.nodes["LOBA_BakeSlider"], model=flux["dev"], slider=slider, strength=1.0, strength_2=1.0).args[0]
    assert len(baked.patches) == len(slider.module_stems())
    merged = run_node(pack.nodes["LOBA_MergeSliders"], slider_1=slider, weight_1=1.0, slider_2=slider, weight_2=-0.5,
                      mode="concat", rank=4, weight_3=1.0, weight_4=1.0).args[0]
    assert len(run_node(pack.nodes["LOBA_ApplySlider"], model=flux["dev"], slider=merged, strength=1.0).args[0].patches)
    with pytest.raises(ValueError, match="LOBA Apply Slider, input 'slider': .*made for flux.*model is sdxl"):
        run_node(pack.nodes["LOBA_ApplySlider"], model=sdxl[0], slider=slider, strength=1.0)
    bare = pack.module.loba.sliders.kohya.SliderFile(dict(slider.tensors))  # no metadata: the layer names tell
    with pytest.raises(ValueError, match="LOBA Bake Slider into Model, input 'slider': .*made for flux"):
        run_node(pack.nodes["LOBA_BakeSlider"], model=sdxl[0], slider=bare, strength=1.0, strength_2=1.0)


def test_sdxl_sliders_are_refused_on_flux_and_in_a_merge_with_flux(pack, comfy, flux, sdxl):
    sdxl_slider = run_node(pack.nodes[TRAIN], model=sdxl[0], clip=sdxl[1], prompts=pair(pack),
                           **train_inputs(max_train_steps=1, filename_prefix="loba/sdxl-for-flux")).args[0]
    with pytest.raises(ValueError, match="LOBA Apply Slider, input 'slider': .*made for sdxl.*model is flux"):
        run_node(pack.nodes["LOBA_ApplySlider"], model=flux["dev"], slider=sdxl_slider, strength=1.0)
    with pytest.raises(ValueError, match="LOBA Merge Sliders.*different model families"):
        run_node(pack.nodes["LOBA_MergeSliders"], slider_1=_flux_slider(pack, flux), weight_1=1.0, slider_2=sdxl_slider,
                 weight_2=1.0, mode="concat", rank=4, weight_3=1.0, weight_4=1.0)


class LatentVae:
    """decode(latents) -> pixels [1, H, W, 3] from the first three latent channels, 8x upsampled (no real VAE)."""

    def decode(self, samples):
        pixels = torch.nn.functional.interpolate(samples[:, :3].float(), scale_factor=8).sigmoid()
        return pixels.permute(0, 2, 3, 1)


def test_the_preview_grid_samples_a_flux_slider_and_refuses_an_sd_clip(pack, flux, toy):
    slider = _flux_slider(pack, flux)
    inputs = dict(model=flux["dev"], vae=LatentVae(), slider=slider, prompts="a red circle", negative="", weights="0, 8",
                  seed=1, steps=3, cfg=1.0, sampler_name="euler", scheduler="simple", width=64, height=48)
    grid = run_node(pack.nodes["LOBA_SliderPreviewGrid"], clip=flux["clip"], **inputs).args[0]
    assert grid.ndim == 4 and grid.shape[-1] == 3
    with pytest.raises(ValueError, match="LOBA Slider Preview Grid, input 'clip': .*DualCLIPLoader"):
        run_node(pack.nodes["LOBA_SliderPreviewGrid"], clip=toy.clip, **inputs)
