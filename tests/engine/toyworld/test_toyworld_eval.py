"""`loba eval`: spec validation, the sampler's pairing guarantees, and an end-to-end run on an untrained model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support.sliders import save_slider
from support.toy_models import random_components

from loba.adapters import AdapterNetwork
from loba.adapters.targeting import select_targets
from loba.cli.main import main
from loba.config import NetworkConfig
from loba.errors import ConfigError
from loba.models.naming import KohyaNames
from loba.toyworld.evaluate import compute_metrics, evaluate, load_spec, parse_spec
from loba.toyworld.grid import grid_size
from loba.toyworld.reader import ReadResult
from loba.toyworld.sampling import ToySampler, load_slider_network

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
VALID = {"kind": "erase", "attribute": "color", "value": "red", "affected": ["a red circle"], "control": ["a blue square"],
         "weights": [0, 1], "samples": 2, "seed": 0}


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return random_components(seed=0, tokenizer_folder=tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def slider_path(components, tmp_path_factory):
    """A random slider on the toy UNet, saved as a kohya file (LoRA up-weights start at 0: randomize them all)."""
    unet = components.unet
    torch.manual_seed(1)
    network = AdapterNetwork(select_targets(unet, NetworkConfig(preset="attention", network_alpha=4.0)), unet)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    return save_slider(tmp_path_factory.mktemp("slider") / "random.safetensors", network, KohyaNames(unet, "sd1").kohya_name)


@pytest.mark.parametrize("example", ["eval-erase-red.toml", "eval-size-slider.toml", "eval-background-slider.toml",
                                     "eval-erase-triangle.toml"])
def test_shipped_example_specs_are_valid(example):
    spec = load_spec(EXAMPLES / example)
    assert 0.0 in spec.weights and 1.0 in spec.weights and spec.samples == 32


def test_slider_spec_defaults_to_preserving_every_attribute_but_its_own():
    spec = load_spec(EXAMPLES / "eval-size-slider.toml")
    assert spec.kind == "slider" and spec.weights == (-1.0, -0.5, 0.0, 0.5, 1.0)
    assert spec.preserve == ("shape", "color", "background")
    assert parse_spec(VALID).preserve == ("shape", "color", "size", "background")


@pytest.mark.parametrize("change, field", [
    ({"kind": "forget"}, "kind"),
    ({"attribute": "texture"}, "attribute"),
    ({"value": "purple"}, "value"),
    ({"value": "large"}, "value"),  # a size, not a color
    ({"kind": "slider", "attribute": "color", "value": None, "weights": [-1, 0, 1]}, "value"),  # a rate needs its pole
    ({"kind": "slider", "attribute": "background", "value": "grey", "weights": [-1, 0, 1]}, "value"),
    ({"kind": "slider", "attribute": "color", "measure": "continuous", "weights": [-1, 0, 1]}, "measure"),
    ({"measure": "continuous"}, "measure"),  # an erase is always a rate
    ({"measure": "area"}, "measure"),
    ({"affected": []}, "affected"),
    ({"affected": "a red circle"}, "affected"),
    ({"affected": ["a red circel"]}, "affected"),
    ({"control": ["a red square"]}, "control"),  # asks for the erased value
    ({"control": ["a red circle"]}, "control"),  # also affected
    ({"weights": [0.5, 1]}, "weights"),  # no 0
    ({"weights": [0, 0.5]}, "weights"),  # no 1
    ({"weights": [0, 1, 1]}, "weights"),
    ({"weights": [0, "1"]}, "weights"),
    ({"kind": "slider", "attribute": "size", "value": None, "weights": [0, 1]}, "weights"),  # no -1
    ({"samples": 0}, "samples"),
    ({"samples": 2.5}, "samples"),
    ({"seed": -1}, "seed"),
    ({"steps": 0}, "steps"),
    ({"cfg": "high"}, "cfg"),
    ({"preserve": ["mood"]}, "preserve"),
    ({"sample": 3}, "sample"),  # a typo of a known field
])
def test_spec_errors_name_the_field(change, field):
    data = {**VALID, **change}
    with pytest.raises(ConfigError) as info:
        parse_spec(data, "spec.toml")
    assert info.value.field == field and "spec.toml" in str(info.value)


def test_missing_fields_are_named():
    for field in ("kind", "affected", "weights", "samples", "seed"):
        with pytest.raises(ConfigError) as info:
            parse_spec({k: v for k, v in VALID.items() if k != field})
        assert info.value.field == field


def test_control_may_be_empty_for_a_quick_check():
    assert parse_spec({**VALID, "control": []}).control == ()
    assert parse_spec({k: v for k, v in VALID.items() if k != "control"}).control == ()


def test_undefined_figures_are_null_with_a_reason():
    spec = parse_spec({**VALID, "control": []})
    blue = ReadResult("circle", "blue", "small", 0.1, "light", (32.0, 32.0), True)
    reads = {0.0: [[blue, blue]], 1.0: [[blue, blue]]}
    images = {w: np.zeros((1, 2, 64, 64, 3), np.uint8) for w in (0.0, 1.0)}
    result = compute_metrics(spec, images, reads)
    assert result["rate_by_weight"] == {"0": 0.0, "1": 0.0}
    assert result["efficacy"] is None and result["preservation"] is None and result["drift"] is None
    assert set(result["notes"]) == {"efficacy", "preservation", "drift"}
    assert result["per_prompt"]["a red circle"]["preservation_by_weight"] == {"0": 1.0, "1": 1.0}


def test_sampler_weight_0_is_the_base_model_and_seeds_repeat(components, slider_path):
    sampler = ToySampler(components)
    slider = load_slider_network(slider_path, components.unet)
    prompts, seeds = ["a red circle", "a blue square", "a red circle"], [5, 6, 7]
    base = sampler.sample(prompts, seeds, None, 0.0, steps=3)
    assert base.dtype == np.uint8 and base.shape == (3, 64, 64, 3)
    assert np.array_equal(sampler.sample(prompts, seeds, slider, 0.0, steps=3), base)
    assert np.array_equal(sampler.sample(prompts, seeds, None, 0.0, steps=3), base)
    twins = sampler.sample(["a red circle", "a red circle"], [5, 5], slider, 1.0, steps=3)
    assert np.array_equal(twins[0], twins[1])  # a sample depends on its prompt and seed, not on its batch row
    full = sampler.sample(prompts, seeds, slider, 1.0, steps=3)
    assert not np.array_equal(full, base)  # the random slider does something at w=1
    assert not slider.is_attached and slider.multiplier == 1.0  # left as found


def test_cli_eval_reports_a_bad_spec_before_loading_any_model(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text('kind = "erase"\nattribute = "color"\nvalue = "red"\naffected = ["a red circle"]\nweights = [0, 1]\n'
                    'samples = 0\nseed = 0\n')
    assert main(["eval", "--slider", str(tmp_path / "none.safetensors"), "--spec", str(spec), "--out", str(tmp_path)]) == 2
    assert "samples" in capsys.readouterr().err


def test_evaluate_end_to_end_writes_metrics_and_grid(components, slider_path, tmp_path):
    spec = parse_spec({**VALID, "affected": ["a red circle"], "control": ["a blue square"], "steps": 3})
    result = evaluate(components, slider_path, spec, tmp_path)
    written = json.loads((tmp_path / "metrics.json").read_text())
    required = {"rate_by_weight", "efficacy", "preservation", "preservation_by_weight", "drift", "drift_by_weight",
                "object_rate_by_weight", "affected_preservation_by_weight", "per_prompt", "notes", "spec", "timings"}
    assert required <= set(written)
    assert set(written["rate_by_weight"]) == {"0", "1"} and written["preservation_by_weight"]["0"] == 1.0
    assert written["drift_by_weight"]["0"] == 0.0 and written["drift_by_weight"]["1"] > 0
    assert set(written["per_prompt"]) == {"a red circle", "a blue square"}
    assert written["per_prompt"]["a blue square"]["role"] == "control"
    assert written["timings"]["images"] == 8 and written["spec"]["weights"] == [0.0, 1.0]
    assert written["efficacy"] == result["efficacy"]
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == grid_size(rows=2, columns=2, per_cell=2)


def test_cli_eval_on_a_diffusers_folder(components, slider_path, tmp_path, capsys):
    for name in ("unet", "text_encoder", "tokenizer", "vae"):
        getattr(components, name).save_pretrained(tmp_path / "model" / name)
    spec = tmp_path / "quick.toml"
    spec.write_text('kind = "slider"\nattribute = "size"\naffected = ["a circle"]\nweights = [-1, 0, 1]\n'
                    'samples = 1\nseed = 3\nsteps = 2\n[region]\nbox = [0, 0, 1, 0.5]\nname = "left half"\n')
    out = tmp_path / "eval"
    assert main(["eval", "--slider", str(slider_path), "--spec", str(spec), "--out", str(out), "--weights", str(tmp_path / "model")]) == 0
    printed = capsys.readouterr().out
    assert "spearman" in printed and "left half: pixel change inside" in printed
    written = json.loads((out / "metrics.json").read_text())
    assert set(written["measure_by_weight"]) == {"-1", "0", "1"} and written["preservation"] is None
    assert Image.open(out / "grid.png").size == grid_size(rows=1, columns=3, per_cell=1)
