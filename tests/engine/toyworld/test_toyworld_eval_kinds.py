"""`loba eval` kinds beyond the size slider: rate sliders (background, color, shape), the erase of a shape,
and region work (pixel change and attribute figures inside vs outside a box or a mask image)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from support.sliders import save_slider
from support.toy_models import random_components

from loba.adapters import AdapterNetwork
from loba.adapters.targeting import select_targets
from loba.config import NetworkConfig
from loba.errors import ConfigError
from loba.models.naming import KohyaNames
from loba.toyworld.eval_region import box_mask
from loba.toyworld.evaluate import compute_metrics, evaluate, load_spec, parse_spec
from loba.toyworld.reader import ReadResult

BACKGROUND = {"kind": "slider", "attribute": "background", "value": "dark", "affected": ["a circle"], "control": [],
              "weights": [-1, 0, 1], "samples": 4, "seed": 0}
TRIANGLE = {"kind": "erase", "attribute": "shape", "value": "triangle", "affected": ["a red triangle"],
            "control": ["a red circle"], "weights": [0, 1], "samples": 2, "seed": 0}


def read(shape="circle", background="light", center=(32.0, 32.0), color="red"):
    return ReadResult(shape, color, "small", 0.1, background, center if shape else None, True)


def blank(weights, prompts, samples):
    return {w: np.zeros((prompts, samples, 64, 64, 3), np.uint8) for w in weights}


def test_a_background_slider_is_scored_by_the_rate_of_its_pole():
    spec = parse_spec(BACKGROUND)
    assert spec.measure == "rate" and spec.preserve == ("shape", "color", "size")
    flips = {-1.0: [[read() for _ in range(4)]], 0.0: [[read(background=b) for b in ("dark", "light", "light", "light")]],
             1.0: [[read(background="dark") for _ in range(4)]]}
    result = compute_metrics(spec, blank(spec.weights, 1, 4), flips)
    assert result["rate_by_weight"] == {"-1": 0.0, "0": 0.25, "1": 1.0} and result["measure"] == "rate"
    assert result["monotonic"] is True and result["spearman"] > 0.8
    backwards = {w: flips[-w] for w in flips}  # the slider goes the wrong way
    result = compute_metrics(spec, blank(spec.weights, 1, 4), backwards)
    assert result["monotonic"] is False and result["spearman"] < -0.8
    still = {w: [[read() for _ in range(4)]] for w in flips}
    result = compute_metrics(spec, blank(spec.weights, 1, 4), still)
    assert result["spearman"] is None and "spearman" in result["notes"] and result["monotonic"] is False


def test_size_keeps_its_continuous_measure_and_may_be_rated_on_request():
    size = {**BACKGROUND, "attribute": "size", "value": "large"}
    assert parse_spec({k: v for k, v in size.items() if k != "value"}).measure == "continuous"
    assert parse_spec(size).measure == "continuous"
    assert parse_spec({**size, "measure": "rate"}).measure == "rate"


def test_erasing_a_shape_says_what_it_became():
    spec = parse_spec(TRIANGLE)
    reads = {0.0: [[read("triangle"), read("triangle")], [read(), read()]],
             1.0: [[read("circle"), read(None)], [read(), read()]]}
    result = compute_metrics(spec, blank(spec.weights, 2, 2), reads)
    assert result["efficacy"] == 1.0 and result["rate_by_weight"] == {"0": 1.0, "1": 0.0}
    assert result["value_rates_by_weight"]["circle"] == {"0": 0.0, "1": 0.5}
    assert result["object_rate_by_weight"] == {"0": 1.0, "1": 0.5}  # the other half vanished: not a clean erase
    assert result["preservation"] == 1.0


def test_shape_erase_controls_must_not_ask_for_the_shape():
    with pytest.raises(ConfigError) as info:
        parse_spec({**TRIANGLE, "control": ["a blue triangle"]})
    assert info.value.field == "control"


def test_box_masks_cover_the_named_fractions():
    left = box_mask([0, 0, 1, 0.5], "spec")
    assert left[:, :32].all() and not left[:, 32:].any()
    corner = box_mask([0.5, 0.75, 1.0, 1.0], "spec")
    assert corner.sum() == 32 * 16 and corner[63, 63] and not corner[31, 63]


def test_region_figures_tell_inside_from_outside():
    spec = parse_spec({**TRIANGLE, "kind": "erase", "attribute": "color", "value": "red", "affected": ["a red circle"],
                       "control": [], "samples": 4, "region": {"box": [0, 0, 1, 0.5], "name": "left half"}})
    images = blank(spec.weights, 1, 4)
    images[1.0][0, :, :, :32] = 255  # every change is on the left half
    left, right = (16.0, 32.0), (48.0, 32.0)
    reads = {0.0: [[read(center=c) for c in (left, left, right, right)]],
             1.0: [[read(color="blue", center=left), read(center=left), read(center=right), read(center=right)]]}
    region = compute_metrics(spec, images, reads)["region"]
    assert region["change_inside_by_weight"]["1"] == 1.0 and region["change_outside_by_weight"]["1"] == 0.0
    assert region["locality_by_weight"]["1"] == 1.0 and region["locality_by_weight"]["0"] is None
    assert region["objects_inside"]["samples"] == 2 and region["objects_inside"]["efficacy"] == 0.5
    assert region["objects_outside"]["efficacy"] == 0.0 and region["fraction"] == 0.5 and region["name"] == "left half"


@pytest.mark.parametrize("region, field", [
    ([0, 0, 1, 1], "region"),
    ({"box": [0, 0, 1]}, "region.box"),
    ({"box": [0.5, 0, 0.2, 1]}, "region.box"),  # top below bottom
    ({"box": [0, 0, 1, 1]}, "region.box"),  # the whole image: no outside
    ({"box": [0, 0, 1, 1.5]}, "region.box"),
    ({}, "region"),
    ({"box": [0, 0, 1, 0.5], "mask": "m.png"}, "region"),
    ({"mask": "missing.png"}, "region.mask"),
    ({"box": [0, 0, 1, 0.5], "weight": 2}, "region.weight"),
    ({"box": [0, 0, 1, 0.5], "name": ""}, "region.name"),
])
def test_bad_regions_are_refused_naming_the_field(region, field, tmp_path):
    with pytest.raises(ConfigError) as info:
        parse_spec({**TRIANGLE, "region": region}, "spec.toml", tmp_path)
    assert info.value.field == field and "spec.toml" in str(info.value)


def test_a_mask_image_is_read_beside_the_spec(tmp_path):
    pixels = np.zeros((128, 128), np.uint8)
    pixels[:, :64] = 255
    Image.fromarray(pixels).save(tmp_path / "left.png")
    (tmp_path / "spec.toml").write_text('kind = "erase"\nattribute = "color"\nvalue = "red"\naffected = ["a red circle"]\n'
                                        'weights = [0, 1]\nsamples = 1\nseed = 0\n[region]\nmask = "left.png"\n')
    spec = load_spec(tmp_path / "spec.toml")
    assert spec.region.mask[:, :32].all() and not spec.region.mask[:, 32:].any() and spec.region.source == "left.png"
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "all.png")
    with pytest.raises(ConfigError, match="whole image"):
        parse_spec({**TRIANGLE, "region": {"mask": "all.png"}}, "spec", tmp_path)


@pytest.fixture(scope="module")
def random_slider(tmp_path_factory):
    components = random_components(seed=0, tokenizer_folder=tmp_path_factory.mktemp("tokenizer"))
    unet = components.unet
    torch.manual_seed(1)
    network = AdapterNetwork(select_targets(unet, NetworkConfig(preset="attention", network_alpha=4.0)), unet)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    path = save_slider(tmp_path_factory.mktemp("slider") / "random.safetensors", network, KohyaNames(unet, "sd1").kohya_name)
    return components, path


def test_end_to_end_rate_slider_with_a_region(random_slider, tmp_path):
    components, path = random_slider
    spec = parse_spec({**BACKGROUND, "samples": 2, "steps": 2, "control": ["a red square"],
                       "region": {"box": [0, 0, 0.5, 1]}})
    evaluate(components, path, spec, tmp_path)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert set(written["rate_by_weight"]) == {"-1", "0", "1"} and written["measure"] == "rate"
    assert written["spec"]["region"] == {"name": "region", "source": "box [0, 0, 0.5, 1]", "fraction": 0.5}
    region = written["region"]
    assert region["change_inside_by_weight"]["0"] == 0.0 and region["change_inside_by_weight"]["1"] > 0
    assert set(written["per_prompt"]["a circle"]["rate_by_weight"]) == {"-1", "0", "1"}
