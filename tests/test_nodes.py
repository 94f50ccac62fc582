"""The node pack in-process against a real ComfyUI: every node, on tiny SD1, SD2-v and SDXL models built in
ComfyUI objects under inference mode (as the executor builds them) and on the embedded toy world.

Pinned here: the user's MODEL and CLIP give bit-identical outputs after a run that succeeded, was
cancelled or failed, with nothing left attached; a slider trained in the graph and loaded by the stock
LoRA path reproduces the training-time student (<= 1e-5, fp32); bad input fails with the node and field.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from .comfy_support import COMFY_MARKS, REPO_ROOT, comfy_eps, comfy_fixture, comfy_model_from_diffusers, require_comfyui  # noqa: F401
from .conftest import make_backend
from .pack_support import import_pack, pack_nodes, run_node

require_comfyui()
pytestmark = COMFY_MARKS

STUDENT_TOLERANCE = 1e-5
NODE_IDS = ["LOBA_ApplySlider", "LOBA_BakeSlider", "LOBA_LoadPromptToml", "LOBA_LoadSlider", "LOBA_Loss", "LOBA_Mask",
            "LOBA_MergeSliders", "LOBA_Optimizer", "LOBA_PreservationPrompt", "LOBA_PromptPair", "LOBA_Sampling", "LOBA_SaveSlider",
            "LOBA_SliderPreviewGrid", "LOBA_SliderTarget", "LOBA_Targeting", "LOBA_ToyWorldLoader", "LOBA_TrainSlider"]


class DiffusersClip:
    """ComfyUI's CLIP interface over a tiny diffusers text encoder (the toy-world tests use ComfyUI's real CLIP)."""

    def __init__(self, backend):
        self.backend = backend

    def tokenize(self, text):
        return text

    def encode_from_tokens(self, tokens, return_pooled=False):
        with torch.inference_mode(False), torch.no_grad():
            cond = self.backend.encode_prompts([tokens])[tokens]
        with torch.inference_mode():  # as ComfyUI's CLIP returns them under the executor
            context = cond.context.clone()
            pooled = None if cond.pooled is None else cond.pooled.clone()
        return (context, pooled) if return_pooled else context

    def encode_from_tokens_scheduled(self, tokens):
        context, pooled = self.encode_from_tokens(tokens, return_pooled=True)
        return [[context, {"pooled_output": pooled}]]


@pytest.fixture(scope="module")
def pack(comfy, tmp_path_factory):
    import folder_paths

    root = tmp_path_factory.mktemp("comfy-folders")
    saved = (folder_paths.folder_names_and_paths["loras"], folder_paths.get_output_directory(), folder_paths.get_input_directory())
    folder_paths.folder_names_and_paths["loras"] = ([str(root / "loras")], folder_paths.supported_pt_extensions)
    folder_paths.set_output_directory(str(root / "output"))
    folder_paths.set_input_directory(str(root / "input"))
    (root / "loras").mkdir()
    (root / "input").mkdir()
    module = import_pack()
    yield SimpleNamespace(module=module, nodes=pack_nodes(module), root=root)
    folder_paths.folder_names_and_paths["loras"] = saved[0]
    folder_paths.set_output_directory(saved[1])
    folder_paths.set_input_directory(saved[2])


def family_model(comfy, tokenizer, family: str):
    prediction = "v_prediction" if family == "sd2" else "epsilon"
    backend = make_backend(tokenizer, family, prediction)
    return comfy_model_from_diffusers(comfy, backend.unet, family, prediction), DiffusersClip(backend)


@pytest.fixture(scope="module")
def toy(pack):
    model, clip, vae = run_node(pack.nodes["LOBA_ToyWorldLoader"]).args
    return SimpleNamespace(model=model, clip=clip, vae=vae)


def pair(pack, target="a red circle", **overrides):
    inputs = dict(target=target, action="erase", positive="", unconditional="a circle", neutral="", guidance_scale=1.0,
                  resolution=0, batch_size=1, weight=1.0, multiplier=1.0)
    return run_node(pack.nodes["LOBA_PromptPair"], **{**inputs, **overrides}).args[0]


def train_inputs(**overrides):
    inputs = dict(max_train_steps=3, learning_rate=1e-2, network_dim=2, network_alpha=2.0, seed=0, resolution=64,
                  max_denoising_steps=3, leco_denoise_guidance_scale=3.0, denoise_with_adapter=False, mixed_precision="no",
                  gradient_checkpointing=False, save_precision="float", save_every_n_steps=0, preview_every=0,
                  preview_weights="-1, 0, 1", filename_prefix="loba/test")
    return {**inputs, **overrides}


def snapshot(comfy, model):
    """Every UNet tensor and one forward output: what 'bit-identical' compares."""
    unet = model.model.diffusion_model
    with torch.inference_mode():
        state = {k: v.clone() for k, v in unet.state_dict().items()}
    ctx_dim = next(m.weight.shape[1] for name, m in unet.named_modules() if name.endswith("attn2.to_k"))
    gen = torch.Generator().manual_seed(3)
    x, context = torch.randn(1, 4, 8, 8, generator=gen), torch.randn(1, 5, ctx_dim, generator=gen)
    y = torch.randn(1, model.model.adm_channels, generator=gen) if model.model.adm_channels else None
    out = comfy_eps(comfy, model, x, torch.tensor([500.0]), context, y)  # loaded once by ComfyUI, as before any sampling
    flags = {name: p.requires_grad for name, p in unet.named_parameters()}
    return state, out, (x, context, y), flags


def clip_outputs(clip) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        cond, pooled = clip.encode_from_tokens(clip.tokenize("a red circle on a dark background"), return_pooled=True)
    return cond.clone(), pooled.clone()


def assert_clip_untouched(clip, before) -> None:
    after = clip_outputs(clip)
    assert all(torch.equal(a, b) for a, b in zip(before, after)), "CLIP outputs changed"


def assert_untouched(comfy, model, before, flags_too: bool = True):
    """flags_too=False after the stock LoRA loader ran: ComfyUI's own patch/unpatch re-creates parameters with
    requires_grad=False (comfy.utils.set_attr_param), which is not ours to undo."""
    state, out, (x, context, y), flags = before
    unet = model.model.diffusion_model
    # Outputs first: loading the base MODEL takes out whatever patches a clone loaded last (the module is shared).
    assert torch.equal(comfy_eps(comfy, model, x, torch.tensor([500.0]), context, y), out), "outputs changed"
    assert all(torch.equal(state[k], v) for k, v in unet.state_dict().items()), "weights changed"
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in unet.modules()), "hooks left attached"
    if flags_too:
        assert {name: p.requires_grad for name, p in unet.named_parameters()} == flags, "requires_grad flags changed"
    assert not any(p.grad is not None for p in unet.parameters())


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


# -- training ------------------------------------------------------------------------------------------
def stock_reproduces_student(comfy, pack, model, slider, x, context, y):
    """Max |stock LoraLoader output - training-time student output| at strength 1."""
    engine_files = pack.module.loba.files
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
    saved = pack.module.loba.files.load_slider(path)
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
    checkpoints = list((pack.root / "output" / "loba_checkpoints" / "toy").rglob("*"))
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
    metadata = pack.module.loba.files.load_slider(saved).metadata
    assert metadata["ss_steps"] == "2" and metadata["loba_stopped_early"] == "true"
    assert_untouched(comfy, toy.model, before)
    assert_clip_untouched(toy.clip, clip_before)


@pytest.mark.parametrize("failure", [RuntimeError("preview broke"), torch.OutOfMemoryError("CUDA out of memory (simulated)")])
def test_failures_in_a_run_leave_the_model_alone(pack, comfy, toy, monkeypatch, failure):
    before, clip_before = snapshot(comfy, toy.model), clip_outputs(toy.clip)

    def broken(self, network, step):
        raise failure

    monkeypatch.setattr(pack.module.nodes.train_node.PreviewMaker, "__call__", broken)
    with pytest.raises(type(failure)):
        run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                 **train_inputs(resolution=0, preview_every=1))
    assert_untouched(comfy, toy.model, before)
    assert_clip_untouched(toy.clip, clip_before)


def test_a_nan_loss_fails_with_the_node_name_and_leaves_the_model_alone(pack, comfy, toy, monkeypatch):
    before = snapshot(comfy, toy.model)
    step_module = pack.module.loba.train.step
    original = step_module.SliderStep.run

    def poisoned(self, plan):
        result = original(self, plan)
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
    files = pack.module.loba.files
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
    with pytest.raises(ValueError, match="LOBA Load Slider.*not in kohya LoRA form"):
        run_node(pack.nodes["LOBA_LoadSlider"], lora_name="loha.safetensors")
    assert files is not None


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
    merge = pack.module.loba.merge
    merged = run_node(pack.nodes["LOBA_MergeSliders"], slider_1=toy_slider, weight_1=1.0, slider_2=toy_slider, weight_2=0.5,
                      mode="concat", rank=8, weight_3=1.0, weight_4=1.0).args[0]
    stem = sorted(toy_slider.module_stems())[0]
    assert torch.allclose(merge.module_delta(merged, stem), 1.5 * merge.module_delta(toy_slider, stem), atol=1e-6)
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
    expected = base_weight + 1.5 * merge.module_delta(toy_slider, stem).reshape(base_weight.shape)
    assert (saved["model." + weight_key] - expected).abs().max() < 1e-5
    assert_untouched(comfy, toy.model, before, flags_too=False)  # the stock LoRA path ran


def test_resume_from_a_checkpoint_gives_the_uninterrupted_slider(pack, toy):
    inputs = dict(resolution=0, max_train_steps=4, save_every_n_steps=2)
    whole = run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                     **train_inputs(**inputs, filename_prefix="loba/whole")).args[0]
    (checkpoint,) = [p for p in (pack.root / "output" / "loba_checkpoints" / "whole").rglob("*") if p.is_file()]
    resumed = run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                       resume_file=str(checkpoint.relative_to(pack.root / "output")),
                       **train_inputs(**inputs, filename_prefix="loba/resumed")).args[0]
    assert all(torch.equal(whole.tensors[k], resumed.tensors[k]) for k in whole.tensors)
    with pytest.raises(ValueError, match="LOBA Train Slider, input 'resume_file'.*does not exist"):
        run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack), resume_file="nope.pt",
                 **train_inputs(**inputs))
