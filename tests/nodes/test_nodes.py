"""The node pack in-process against a real ComfyUI: registration, prompts, masks, settings, files, apply,
preview grid, merge and bake, on the embedded toy world and tiny models built under inference mode."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from support.comfy import COMFY_MARKS, REPO_ROOT, comfy_eps, require_comfyui
from support.nodes import (
    assert_untouched,
    family_model,
    pair,
    snapshot,
    train_inputs,
)
from support.pack import run_node
from support.sliders import module_delta

require_comfyui()
pytestmark = COMFY_MARKS

NODE_IDS = ["LOBA_ApplySlider", "LOBA_AttentionRegion",
            "LOBA_BakeSlider", "LOBA_EvaluateSlider", "LOBA_LoadPromptToml", "LOBA_LoadSlider", "LOBA_Loss",
            "LOBA_Mask",
            "LOBA_MergeSliders", "LOBA_Optimizer", "LOBA_PreservationPrompt", "LOBA_PromptPair", "LOBA_ReattachPrompt",
            "LOBA_RegionLayer", "LOBA_Sampling", "LOBA_SaveSlider",
            "LOBA_SliderPreviewGrid", "LOBA_SliderTarget", "LOBA_StyleShift", "LOBA_Targeting", "LOBA_TimestepSchedule",
            "LOBA_ToyWorldLoader",
            "LOBA_TrainSlider"]

# -- the pack as ComfyUI loads it ---------------------------------------------------------------------
def test_pack_registers_every_node_with_tooltips_and_stable_ids(pack):
    assert sorted(pack.nodes) == NODE_IDS
    for node_id, cls in pack.nodes.items():
        schema = cls.GET_SCHEMA()
        assert schema.category.startswith("LOBA") and schema.display_name.startswith("LOBA") and schema.description
        for item in list(schema.inputs) + list(schema.outputs):
            assert item.tooltip, f"{node_id}.{item.id or item.display_name} has no tooltip"


def test_pack_import_is_cheap_and_does_nothing():
    code = ("import importlib.util, sys, time; t = time.perf_counter(); "
            f"s = importlib.util.spec_from_file_location('x_pack', {str(REPO_ROOT / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(REPO_ROOT)!r}]); m = importlib.util.module_from_spec(s); "
            "sys.modules['x_pack'] = m; s.loader.exec_module(m); "
            "print(time.perf_counter() - t, 'torch' in sys.modules, 'x_pack.loba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    seconds, torch_loaded, engine_loaded = float(out[0]), out[1], out[2]
    assert seconds < 0.1 and torch_loaded == "False" and engine_loaded == "False"


# -- prompts, masks, settings ------------------------------------------------------------------------
def test_prompt_nodes_chain_without_changing_their_input(pack):
    first = pair(pack)
    second = run_node(pack.nodes["LOBA_SliderTarget"], target_class="a circle", positive="a large circle", negative="a small circle",
                      neutrals="a circle\n", guidance_scale=1.0, resolution=64, batch_size=1, weight=1.0, multiplier=1.0,
                      prompts=first).args[0]
    third = run_node(pack.nodes["LOBA_PreservationPrompt"], prompt="a blue square", weight=2.0, prompts=second).args[0]
    assert len(first.entries) == 1 and len(second.entries) == 2 and not second.anchors
    assert third.anchors[0].prompt == "a blue square" and third.anchors[0].weight == 2.0
    assert first.entries[0].resolutions == () and second.entries[1].resolutions == ((64, 64),)


def test_reattach_node_reads_shares_and_explicit_prompts_and_chains(pack):
    first = pair(pack)
    out = run_node(pack.nodes["LOBA_ReattachPrompt"], caption="a triangle", redirect="a blue triangle | 2\n\na green triangle\n",
                   explicit="auto", schedule="cosine", ramp=0.25, resolution=64, batch_size=2, weight=1.0, prompts=first).args[0]
    entry = out.entries[1]
    assert entry.redirect == (("a blue triangle", 2.0), ("a green triangle", 1.0)) and entry.schedule == "cosine"
    assert [p.weight for p in out.pairs()[1:]] == [4 / 3, 2 / 3] and len(first.entries) == 1
    assert [a.prompt for a in out.training_anchors()] == ["a blue triangle", "a green triangle"]
    none = run_node(pack.nodes["LOBA_ReattachPrompt"], caption="a triangle", redirect="a blue triangle", explicit="",
                    schedule="linear", ramp=0.5, resolution=64, batch_size=1, weight=1.0).args[0]
    assert none.training_anchors() == ()


def test_timestep_schedule_reaches_every_prompt_node_and_draws_its_plot(pack):
    timesteps, plot = run_node(pack.nodes["LOBA_TimestepSchedule"], start=600, end=1000, curve="rising").args
    assert plot.shape == (1, 120, 320, 3) and float(plot.min()) < 0.5
    common = dict(guidance_scale=1.0, resolution=64, batch_size=1, weight=1.0, multiplier=1.0, timesteps=timesteps)
    pair_set = run_node(pack.nodes["LOBA_PromptPair"], target="a red circle", action="erase", positive="", unconditional="",
                        neutral="", **common).args[0]
    slider_set = run_node(pack.nodes["LOBA_SliderTarget"], target_class="a circle", positive="a large circle",
                          negative="a small circle", neutrals="", **common).args[0]
    reattach_set = run_node(pack.nodes["LOBA_ReattachPrompt"], caption="a triangle", redirect="a blue triangle",
                            explicit="auto", schedule="linear", ramp=0.5, resolution=64, batch_size=1, weight=1.0,
                            timesteps=timesteps).args[0]
    for prompts in (pair_set, slider_set, reattach_set):
        assert {(p.timestep_window, p.timestep_curve) for p in prompts.pairs()} == {((600, 1000), "rising")}


def test_attention_region_reaches_the_prompt_nodes_with_the_outside_held(pack):
    region = run_node(pack.nodes["LOBA_AttentionRegion"], word="circle", invert=True, threshold=0.4, grow=1, feather=0.0).args[0]
    common = dict(guidance_scale=1.0, resolution=64, batch_size=1, weight=1.0, multiplier=1.0, region=region,
                  mask_outside="hold")
    slider = run_node(pack.nodes["LOBA_SliderTarget"], target_class="a circle", positive="a circle on a light background",
                      negative="a circle on a dark background", neutrals="", **common).args[0]
    assert all(p.region.word == "circle" and p.region.invert and p.mask_outside == "hold" for p in slider.pairs())
    with pytest.raises(ValueError, match="LOBA Prompt Pair .*input 'region'.*not a word of the target prompt"):
        run_node(pack.nodes["LOBA_PromptPair"], target="a red square", action="erase", positive="", unconditional="",
                 neutral="", **common)


def test_style_shift_node_takes_stacked_layers_and_styled_lines(pack):
    region = run_node(pack.nodes["LOBA_AttentionRegion"], word="circle", invert=False, threshold=0.5, grow=1, feather=0.0).args[0]
    base = run_node(pack.nodes["LOBA_RegionLayer"], weight=0.2, box="0, 0, 1, 1").args[0]
    layers = run_node(pack.nodes["LOBA_RegionLayer"], weight=1.0, region=region, words="circle, square", layers=base).args[0]
    assert len(base) == 1 and [layer.weight for layer in layers] == [0.2, 1.0]
    common = dict(template="{content}, {style}", explicit="auto", schedule="linear", ramp=0.5, resolution=64, batch_size=2,
                  weight=1.0)
    out = run_node(pack.nodes["LOBA_StyleShift"], style="outlined", replaces="filled", layers=layers,
                   content="a red circle\na blue square => a blue outlined square\n", prompts=pair(pack), **common).args[0]
    pairs = out.pairs()[1:]
    assert [(p.target, p.positive) for p in pairs] == [("a red circle", "a red circle, outlined"),
                                                       ("a blue square", "a blue outlined square")]
    assert [p.layers[1].region.word for p in pairs] == ["circle", "square"] and pairs[0].layers[1].region.grow == 1
    assert all(p.mask_outside == "hold" for p in pairs)
    assert [a.prompt for a in out.training_anchors()] == ["a red circle, filled", "a blue square, filled"]
    with pytest.raises(ValueError, match="LOBA Style Shift.*input 'layers'.*none of \\['circle', 'square'\\]"):
        run_node(pack.nodes["LOBA_StyleShift"], style="outlined", replaces="", layers=layers, content="a triangle", **common)
    with pytest.raises(ValueError, match="LOBA Region Layer.*input 'weight'"):
        run_node(pack.nodes["LOBA_RegionLayer"], weight=1.5, box="0, 0, 1, 1")
    with pytest.raises(ValueError, match="LOBA Style Shift.*input 'content'"):
        run_node(pack.nodes["LOBA_StyleShift"], style="outlined", replaces="", content="", **common)


def test_load_prompt_toml_reads_sd_scripts_format_from_text_and_file(pack):
    text = '[[prompts]]\ntarget = "van gogh"\npositive = "van gogh"\nunconditional = ""\nneutral = ""\naction = "erase"\n' \
           'guidance_scale = 1.0\nresolution = 512\nbatch_size = 2\n'
    from_text = run_node(pack.nodes["LOBA_LoadPromptToml"], toml=text, file="").args[0]
    (pack.root / "input" / "p.toml").write_text(text)
    from_file = run_node(pack.nodes["LOBA_LoadPromptToml"], toml="", file="p.toml").args[0]
    assert from_text.pairs()[0].target == from_file.pairs()[0].target == "van gogh"
    assert from_file.pairs()[0].batch_size == 2
    with pytest.raises(ValueError, match="LOBA Load Prompt TOML, input 'file'"):
        run_node(pack.nodes["LOBA_LoadPromptToml"], toml="", file="missing.toml")


def test_mask_node_grows_shrinks_feathers_and_attaches(pack):
    mask = torch.zeros(1, 64, 64)
    mask[:, 24:40, 24:40] = 1.0
    node = pack.nodes["LOBA_Mask"]
    grown = run_node(node, mask=mask, grow=4, feather=0.0, invert=False).args[0]
    shrunk = run_node(node, mask=mask, grow=-4, feather=0.0, invert=False).args[0]
    soft = run_node(node, mask=mask, grow=0, feather=2.0, invert=False).args[0]
    assert grown.sum() == 24 * 24 and shrunk.sum() == 8 * 8
    assert 0 < float(soft[0, 22, 32]) < 1 and soft.shape == (1, 64, 64)
    image = mask[..., None].repeat(1, 1, 1, 3)
    assert torch.equal(run_node(node, image=image, grow=0, feather=0.0, invert=False).args[0], mask)
    attached = pair(pack, mask=grown).entries[0].mask
    assert attached.shape == (64, 64)


def test_config_nodes_reach_the_training_config(pack, comfy, tokenizer):
    targeting = run_node(pack.nodes["LOBA_Targeting"], preset="cross_attention", network_dim=3, network_alpha=1.5, conv_dim=4,
                         conv_alpha=1.0, include="", exclude="", rank_pattern="", lr_pattern="attn2 = 0.5").args[0]
    loss = run_node(pack.nodes["LOBA_Loss"], loss_type="huber", huber_delta=0.5, min_snr_gamma=5.0, preservation_weight=2.0).args[0]
    optimizer = run_node(pack.nodes["LOBA_Optimizer"], optimizer="lion", weight_decay=0.0, lr_scheduler="cosine",
                         lr_warmup_steps=1, lr_scheduler_num_cycles=1, max_grad_norm=1.0).args[0]
    sampling = run_node(pack.nodes["LOBA_Sampling"], trajectory_cache=2, trajectory_refresh_every=8, min_timestep=0,
                        max_timestep=1000, preserve_from_timestep=1000).args[0]
    config = pack.module.nodes.train_node.merged_config("t", {"max_train_steps": 3}, [targeting, loss, optimizer, sampling])
    assert config.sampling.trajectory_cache == 2
    assert (config.network.preset, config.network.network_dim, config.loss.loss_type, config.optimizer.optimizer) == \
        ("cross_attention", 3, "huber", "lion")
    model, clip = family_model(comfy, tokenizer, "sd1")
    out = run_node(pack.nodes["LOBA_TrainSlider"], model=model, clip=clip, prompts=pair(pack), targeting=targeting, loss=loss,
                   optimizer=optimizer, sampling=sampling, **train_inputs(max_train_steps=1))
    stems = {k.rsplit(".", 2)[0] for k in out.args[0].tensors if k.endswith("lora_down.weight")}
    assert stems and all("attn2" in s for s in stems)
    assert out.args[0].tensors[next(k for k in out.args[0].tensors if k.endswith("lora_down.weight"))].shape[0] == 3


# -- files, apply, preview, merge, bake ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_slider(pack, toy):
    return run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                    **train_inputs(resolution=0, max_train_steps=2, filename_prefix="loba/toy_slider")).args[0]


def test_save_and_load_round_trip_through_the_loras_folder(pack, toy_slider):
    path = run_node(pack.nodes["LOBA_SaveSlider"], hidden={"PROMPT": {"3": {}}}, slider=toy_slider, filename_prefix="loba/saved",
                    precision="float").args[0]
    again = run_node(pack.nodes["LOBA_SaveSlider"], slider=toy_slider, filename_prefix="loba/saved", precision="float").args[0]
    assert path != again, "never overwrites"
    import folder_paths

    name = next(n for n in folder_paths.get_filename_list("loras") if n.endswith(path.rsplit("/", 1)[-1]))
    loaded = run_node(pack.nodes["LOBA_LoadSlider"], lora_name=name).args[0]
    assert all(torch.equal(loaded.tensors[k], toy_slider.tensors[k]) for k in toy_slider.tensors)
    assert json.loads(loaded.metadata["prompt"]) == {"3": {}}
    with pytest.raises(ValueError, match="LOBA Save Slider, input 'filename_prefix'"):
        run_node(pack.nodes["LOBA_SaveSlider"], slider=toy_slider, filename_prefix="/etc/x", precision="float")


def test_apply_matches_the_stock_loader_at_any_strength(pack, comfy, toy, toy_slider):
    before = snapshot(comfy, toy.model)
    x, context, y = before[2]
    for strength in (1.0, -1.5):
        ours = run_node(pack.nodes["LOBA_ApplySlider"], model=toy.model, slider=toy_slider, strength=strength).args[0]
        stock, _ = comfy.sd.load_lora_for_models(toy.model, None, toy_slider.tensors, strength, 0)
        t = torch.tensor([500.0])
        assert torch.equal(comfy_eps(comfy, ours, x, t, context, y), comfy_eps(comfy, stock, x, t, context, y))
    assert_untouched(comfy, toy.model, before, flags_too=False)  # the stock LoRA path ran


def test_preview_grid_samples_weights_with_the_stock_sampler(pack, comfy, toy, toy_slider):
    grid = run_node(pack.nodes["LOBA_SliderPreviewGrid"], model=toy.model, clip=toy.clip, vae=toy.vae, slider=toy_slider,
                    prompts="a red circle\na blue square", negative="", weights="-1, 0, 1", seed=1, steps=4, cfg=5.0,
                    sampler_name="euler", scheduler="normal", width=64, height=64).args[0]
    images = pack.module.loba.images
    assert grid.shape == (1, 22 + 2 * (128 + 4), 180 + 3 * (128 + 4), 3)
    # The w = 0 cell is exactly the base model's sample (the same seed through the same sampler).
    base = pack.module.nodes.preview_node
    with torch.inference_mode():
        positive, negative = base.encode(toy.clip, "a red circle"), base.encode(toy.clip, "")
    with torch.inference_mode():
        cell = base.sample_image(toy.model, toy.vae, positive, negative, 1, 4, 5.0, "euler", "normal", 64, 64)
    expected = images.labelled_grid([[cell]], ["a red circle"], ["w = 0"])
    column = grid[0, 22:22 + 128, 180 + 132:180 + 132 + 128]
    assert torch.equal((column * 255).round().to(torch.uint8),
                       (torch.from_numpy(__import__("numpy").array(expected))[22:150, 180:308]))
    with pytest.raises(ValueError, match="LOBA Slider Preview Grid, input 'weights'"):
        run_node(pack.nodes["LOBA_SliderPreviewGrid"], model=toy.model, clip=toy.clip, vae=toy.vae, slider=toy_slider,
                 prompts="a", negative="", weights="", seed=1, steps=1, cfg=1.0, sampler_name="euler", scheduler="normal",
                 width=64, height=64)


def test_merge_and_bake(pack, comfy, toy, toy_slider):
    merged = run_node(pack.nodes["LOBA_MergeSliders"], slider_1=toy_slider, weight_1=1.0, slider_2=toy_slider, weight_2=0.5,
                      mode="concat", rank=8, weight_3=1.0, weight_4=1.0).args[0]
    stem = sorted(toy_slider.module_stems())[0]
    assert torch.allclose(module_delta(merged, stem), 1.5 * module_delta(toy_slider, stem), atol=1e-6)
    before = snapshot(comfy, toy.model)
    baked = run_node(pack.nodes["LOBA_BakeSlider"], model=toy.model, slider=toy_slider, strength=1.0, slider_2=toy_slider,
                     strength_2=0.5).args[0]
    x, context, y = before[2]
    t = torch.tensor([500.0])
    applied = run_node(pack.nodes["LOBA_ApplySlider"], model=toy.model, slider=merged, strength=1.0).args[0]
    assert (comfy_eps(comfy, baked, x, t, context, y) - comfy_eps(comfy, applied, x, t, context, y)).abs().max() < 1e-5
    # What the stock Save Checkpoint writes: the weights with the sliders merged in.
    path = pack.root / "baked.safetensors"
    comfy.sd.save_checkpoint(str(path), baked)
    from safetensors.torch import load_file

    saved = load_file(str(path))
    weight_key = comfy.lora.model_lora_keys_unet(toy.model.model, {})[stem]
    base_weight = before[0][weight_key.removeprefix("diffusion_model.")]
    expected = base_weight + 1.5 * module_delta(toy_slider, stem).reshape(base_weight.shape)
    assert (saved["model." + weight_key] - expected).abs().max() < 1e-5
    assert_untouched(comfy, toy.model, before, flags_too=False)  # the stock LoRA path ran


def test_resume_from_a_checkpoint_gives_the_uninterrupted_slider(pack, toy):
    inputs = dict(resolution=0, max_train_steps=4, save_every_n_steps=2)
    whole = run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                     **train_inputs(**inputs, filename_prefix="loba/whole")).args[0]
    (run_folder,) = (pack.root / "output" / "loba_checkpoints" / "loba").glob("whole_*_")
    (checkpoint,) = run_folder.rglob("*.pt")
    # next to the checkpoint: the step-2 slider (as sd-scripts' save_every_n_steps writes) and the loss log
    assert sorted(p.name for p in run_folder.iterdir() if p.is_file()) == ["loss.csv", "loss.jsonl", "slider-000002.safetensors"]
    resumed = run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                       resume_file=str(checkpoint.relative_to(pack.root / "output")),
                       **train_inputs(**inputs, filename_prefix="loba/resumed")).args[0]
    assert all(torch.equal(whole.tensors[k], resumed.tensors[k]) for k in whole.tensors)
    with pytest.raises(ValueError, match="LOBA Train Slider, input 'resume_file'.*does not exist"):
        run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack), resume_file="loba_checkpoints/nope.pt",
                 **train_inputs(**inputs))
