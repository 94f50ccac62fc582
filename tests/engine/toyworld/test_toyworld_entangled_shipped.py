"""The shipped entangled world: within the size budget beside the shipped world, loadable through every
door (`--world entangled`, the `toyworld-entangled` embedded model, the worlds registry), and its file
records the measured bias and competence figures."""

import pytest
import torch

from loba.cli.main import build_parser
from loba.cli.toyworld import _weights
from loba.errors import ConfigError
from loba.models.sources import EMBEDDED_MODELS, ModelSource, load_backend
from loba.toyworld.entangled import new_word_rows
from loba.toyworld.entangled_captions import BIASES
from loba.toyworld.files import load_toy_components, read_toy_info
from loba.toyworld.worlds import WORLDS, world_weights

ENTANGLED = world_weights("entangled")


def test_both_worlds_fit_the_40_mb_budget():
    assert ENTANGLED.is_file(), "the entangled world's weights must be committed (loba toyworld build --world entangled)"
    assert sum(path.stat().st_size for path in WORLDS.values()) <= 40 * 1024 * 1024


def test_the_file_records_its_bias_and_competence_figures():
    info = read_toy_info(ENTANGLED)
    assert info["world"] == "entangled" and info["base"]["file"] == WORLDS["toyworld"].name
    figures = info["entangled_competence"]
    assert figures["samples_per_prompt"] >= 64
    designed = {entry["designed"] for entry in figures["bias"].values()}
    assert set(BIASES.values()) <= designed
    assert all(0.0 <= value <= 1.0 for prompt in figures["explicit"].values() for value in prompt.values())


def test_it_loads_as_the_shipped_world_plus_its_differences():
    plain, entangled = load_toy_components(WORLDS["toyworld"]), load_toy_components(ENTANGLED)
    key = "embeddings.token_embedding.weight"
    base, tuned = plain.text_encoder.state_dict()[key], entangled.text_encoder.state_dict()[key]
    changed = torch.nonzero((base != tuned).any(1)).flatten().tolist()
    assert changed and set(changed) <= set(new_word_rows(entangled.tokenizer))
    assert not torch.equal(plain.unet.conv_in.weight, entangled.unet.conv_in.weight)


def test_cli_and_embedded_model_name_the_entangled_world():
    for verb in (["competence"], ["export-diffusers", "folder"], ["build", "--out", "x.safetensors"]):
        args = build_parser().parse_args(["toyworld", *verb, "--world", "entangled"])
        assert args.world == "entangled"
    args = build_parser().parse_args(["toyworld", "competence", "--world", "entangled"])
    assert _weights(args) == ENTANGLED
    assert _weights(build_parser().parse_args(["toyworld", "competence"])) == WORLDS["toyworld"]
    assert "toyworld-entangled" in EMBEDDED_MODELS
    backend = load_backend(ModelSource("toyworld-entangled"))
    assert torch.equal(backend.unet.conv_in.weight, load_toy_components(ENTANGLED).unet.conv_in.weight)


def test_an_unknown_world_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="entangled"):
        world_weights("atlantis")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["toyworld", "competence", "--world", "atlantis"])


def test_build_overrides_reach_the_entangled_recipe(monkeypatch, tmp_path):
    import loba.toyworld.entangled_package as package
    from loba.cli.main import main

    seen = {}
    monkeypatch.setattr(package, "build_and_package_entangled", lambda work, out, recipe, competence: seen.update(
        work=work, out=out, recipe=recipe, competence=competence))
    argv = ["toyworld", "build", "--world", "entangled", "--out", str(tmp_path / "e.safetensors"), "--work", str(tmp_path),
            "--denoiser-stop-at", "120", "--no-competence"]
    assert main(argv) == 0
    assert seen["recipe"].denoiser_stop_at == 120 and seen["work"] == tmp_path and not seen["competence"]
