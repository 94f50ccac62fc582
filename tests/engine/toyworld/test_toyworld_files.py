"""The toy model's weight file and its diffusers export, on randomly initialized components.

One fp16 single-file checkpoint (SD1 layout) is saved from `random_components`, loaded back into diffusers
modules (exact fp16 values, upcast), and exported with `loba toyworld export-diffusers` as a
StableDiffusionPipeline folder that loads and generates while any network access fails.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from support.single_file import offline_hub
from support.toy_models import random_components

from loba.cli.main import main
from loba.errors import LobaError
from loba.models.naming import diffusers_to_ldm_map
from loba.toyworld import files
from loba.toyworld.files import (
    METADATA_KEY,
    ToyWeightsError,
    ToyWeightsMissing,
    load_toy_components,
    read_toy_info,
    save_toy_checkpoint,
)
from loba.toyworld.model import IMAGE_SIZE, SCHEDULER_CONFIG, UNET_CONFIG
from loba.toyworld.single_file import UNET_PREFIX, block_key_to_ldm, ldm_to_diffusers, single_file_state, unet_block_prefixes, unet_to_ldm

SCALING_FACTOR = 0.4321  # not diffusers' default 0.18215 nor 1.0: proves the file's value travels
BUILD_METADATA = {"seed": 7, "steps": 0, "competence": {"color": 0.25}}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("toyworld")
    components = random_components(seed=0, tokenizer_folder=root / "tokenizer")
    components.scaling_factor = SCALING_FACTOR
    path = save_toy_checkpoint(root / "toy.safetensors", components, BUILD_METADATA)
    return SimpleNamespace(root=root, components=components, path=path, loaded=load_toy_components(path))


def _module_pairs(saved):
    return [(name, getattr(saved.components, name), getattr(saved.loaded, name)) for name in ("unet", "text_encoder", "vae")]


def test_round_trip_gives_the_fp16_values_in_fp32(saved):
    for name, original, loaded in _module_pairs(saved):
        expected, actual = original.state_dict(), loaded.state_dict()
        assert set(actual) == set(expected), name
        for key, tensor in expected.items():
            assert actual[key].dtype == torch.float32, f"{name}.{key}"
            if key.endswith("position_ids"):
                assert torch.equal(actual[key], tensor)
            else:
                assert torch.equal(actual[key], tensor.half().float()), f"{name}.{key} differs from its fp16 value"
        assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    assert saved.loaded.scaling_factor == saved.loaded.vae.config.scaling_factor == SCALING_FACTOR
    ids = saved.loaded.tokenizer("a red circle", padding="max_length", max_length=77).input_ids
    assert ids[:5] == [49406, 320, 736, 7117, 49407] and len(ids) == 77  # the real CLIP vocabulary


def test_file_is_fp16_single_file_layout_under_the_size_budget(saved):
    size = saved.path.stat().st_size
    assert size < 25_000_000, f"{size / 1e6:.2f} MB"
    with safe_open(str(saved.path), framework="pt") as handle:
        keys = set(handle.keys())
        dtypes = {handle.get_slice(key).get_dtype() for key in keys}
        info = json.loads(handle.metadata()[METADATA_KEY])
    assert dtypes == {"F16"}
    expected = single_file_state(saved.components.unet, saved.components.vae, saved.components.text_encoder)
    assert keys == set(expected)
    for prefix in ("model.diffusion_model.input_blocks.", "first_stage_model.decoder.up.",
                   "cond_stage_model.transformer.text_model.encoder.layers."):
        assert any(key.startswith(prefix) for key in keys), prefix
    assert not [k for k in keys if "down_blocks" in k or "up_blocks" in k or "mid_block" in k], "diffusers names in the file"
    assert info["configs"]["unet"]["block_out_channels"] == list(UNET_CONFIG["block_out_channels"])
    assert info["configs"]["scheduler"] == SCHEDULER_CONFIG
    assert info["scaling_factor"] == SCALING_FACTOR
    assert {key: info[key] for key in BUILD_METADATA} == BUILD_METADATA
    assert read_toy_info(saved.path) == info


def test_every_key_is_mapped_both_ways(saved):
    components = saved.components
    state = single_file_state(components.unet, components.vae, components.text_encoder)
    split = ldm_to_diffusers(state, components.unet, components.vae, components.text_encoder)
    assert set(split["unet"]) == set(components.unet.state_dict())
    assert set(split["vae"]) == set(components.vae.state_dict())
    assert set(split["text_encoder"]) == {k for k in components.text_encoder.state_dict() if not k.endswith("position_ids")}
    with pytest.raises(KeyError, match="checkpoint keys"):
        ldm_to_diffusers({**state, "model.diffusion_model.extra.weight": torch.zeros(1)}, components.unet, components.vae,
                         components.text_encoder)
    missing = dict(state)
    missing.pop(UNET_PREFIX + "out.2.weight")
    with pytest.raises(KeyError, match="module keys"):
        ldm_to_diffusers(missing, components.unet, components.vae, components.text_encoder)


def test_an_unmapped_module_tensor_raises(saved):
    unet = saved.components.unet
    unet.register_buffer("stray", torch.zeros(1))
    try:
        with pytest.raises(KeyError, match="stray"):
            unet_to_ldm(unet)
    finally:
        del unet.stray


def test_unet_ldm_names_agree_with_loba_naming(saved):
    # Two tables written independently (the file converter and loba.models.naming) must name the toy UNet alike.
    unet = saved.components.unet
    blocks = unet_block_prefixes(unet)
    for diffusers_name, ldm_name in diffusers_to_ldm_map(unet).items():
        assert block_key_to_ldm(diffusers_name + ".weight", blocks) == ldm_name + ".weight"


def test_default_weights_missing_says_how_to_build_them(monkeypatch, tmp_path):
    monkeypatch.setattr(files, "DEFAULT_WEIGHTS", tmp_path / "weights" / "toyworld.safetensors")
    with pytest.raises(ToyWeightsMissing, match="loba toyworld build") as caught:
        load_toy_components()
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, LobaError)


def test_refusals_leave_no_file(saved, tmp_path):
    target = tmp_path / "refused.safetensors"
    with pytest.raises(ToyWeightsError, match="reserved"):
        save_toy_checkpoint(target, saved.components, {"configs": {}})
    vae = saved.components.vae
    weight = vae.decoder.conv_out.weight
    before = weight.detach().clone()
    with torch.no_grad():
        weight[0, 0, 0, 0] = 1e6  # beyond float16's 65504
    try:
        with pytest.raises(ToyWeightsError, match="float16"):
            save_toy_checkpoint(target, saved.components)
    finally:
        with torch.no_grad():
            weight.copy_(before)
    assert not target.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ToyWeightsError, match="not a toy-world"):
        read_toy_info(_plain_safetensors(tmp_path / "plain.safetensors"))


def _plain_safetensors(path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(path))
    return path


def test_export_diffusers_loads_offline_and_generates(saved, monkeypatch, capsys):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    folder = saved.root / "pipe"
    assert main(["toyworld", "export-diffusers", str(folder), "--weights", str(saved.path)]) == 0
    assert "written to" in capsys.readouterr().out
    offline_hub(monkeypatch)
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    assert isinstance(pipe.scheduler, DDIMScheduler) and pipe.safety_checker is None
    assert pipe.vae.config.scaling_factor == SCALING_FACTOR
    assert pipe.scheduler.config.beta_schedule == "scaled_linear" and pipe.scheduler.config.prediction_type == "epsilon"
    assert (folder / "tokenizer" / "vocab.json").is_file() and (folder / "tokenizer" / "merges.txt").is_file()
    for name, _, loaded in _module_pairs(saved):
        exported = getattr(pipe, name).state_dict()
        assert all(torch.equal(exported[key], tensor) for key, tensor in loaded.state_dict().items()), name
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    array = pipe("a red circle", num_inference_steps=2, height=IMAGE_SIZE, width=IMAGE_SIZE, generator=generator,
                 output_type="np").images
    assert array.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3) and (array >= 0).all() and (array <= 1).all()
    image = pipe("a blue square", num_inference_steps=2, height=IMAGE_SIZE, width=IMAGE_SIZE, generator=generator).images[0]
    assert image.size == (IMAGE_SIZE, IMAGE_SIZE)


def test_export_refuses_a_foreign_folder(saved, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["toyworld", "export-diffusers", str(tmp_path), "--weights", str(saved.path)]) == 2
    assert "not a diffusers pipeline" in capsys.readouterr().err
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
