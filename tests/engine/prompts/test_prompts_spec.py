"""PromptPair, SliderTarget, AnchorPrompt and PromptSet: defaults, sd-scripts slider expansion, validation."""

import json

import pytest
import torch

from loba.errors import SpecError
from loba.prompts import AnchorPrompt, PromptPair, PromptSet, SliderTarget, random_bucket_resolution


def spec_error(match_entry: str, match_field: str, build):
    with pytest.raises(SpecError) as caught:
        build()
    assert caught.value.entry == match_entry and caught.value.field == match_field, str(caught.value)
    assert match_entry in str(caught.value) and f"'{match_field}'" in str(caught.value)
    return str(caught.value)


# --- PromptPair defaults -------------------------------------------------------------------------

def test_pair_defaults_follow_sd_scripts():
    pair = PromptPair("van gogh")
    assert (pair.positive, pair.unconditional, pair.neutral, pair.action) == ("van gogh", "", "", "erase")
    assert (pair.guidance_scale, pair.resolutions, pair.batch_size) == (1.0, ((512, 512),), 1)
    assert (pair.dynamic_resolution, pair.dynamic_crops, pair.multiplier, pair.weight) == (False, False, 1.0, 1.0)
    assert pair.mask is None


def test_neutral_defaults_to_unconditional_and_positive_to_target():
    pair = PromptPair("cat", unconditional="blurry")
    assert pair.neutral == "blurry" and pair.positive == "cat"
    assert PromptPair("cat", positive="dog", neutral="").neutral == ""


def test_int_resolution_becomes_square_and_pair_is_kept():
    assert PromptPair("a", resolutions=768).resolutions == ((768, 768),)
    assert PromptPair("a", resolutions=[512, 768]).resolutions == ((512, 768),)
    assert PromptPair("a", resolutions=[[512, 512], 640]).resolutions == ((512, 512), (640, 640))


def test_numbers_are_coerced_to_float():
    pair = PromptPair("a", guidance_scale=2, multiplier=-1, weight=3)
    assert isinstance(pair.guidance_scale, float) and pair.multiplier == -1.0 and pair.weight == 3.0


def test_prompts_are_distinct_in_order():
    assert PromptPair("cat", positive="dog", unconditional="", neutral="cat").prompts() == ("cat", "dog", "")
    assert PromptPair("x", "y", "z", "w").prompts() == ("x", "y", "z", "w")


def test_the_objective_registry_is_the_only_list_of_actions(monkeypatch):
    from loba.objectives import OBJECTIVES

    assert OBJECTIVES.names() == ["erase", "enhance", "repair", "preserve", "reattach"]
    with pytest.raises(SpecError, match="use one of: erase, enhance, repair, preserve$"):
        PromptPair("x", action="blur")
    monkeypatch.setitem(OBJECTIVES._items, "blur", OBJECTIVES.get("erase"))
    assert PromptPair("x", action="blur").action == "blur"  # registered once, accepted everywhere


# --- PromptPair bad input ------------------------------------------------------------------------

@pytest.mark.parametrize("field, kwargs", [
    ("target", {"target": ""}),
    ("target", {"target": "   "}),
    ("target", {"target": None}),
    ("action", {"target": "a", "action": "remove"}),
    ("resolutions", {"target": "a", "resolutions": 500}),
    ("resolutions", {"target": "a", "resolutions": 0}),
    ("resolutions", {"target": "a", "resolutions": [512, 512, 512]}),
    ("resolutions", {"target": "a", "resolutions": "512"}),
    ("resolutions[1]", {"target": "a", "resolutions": [[512, 512], [512, 513]]}),
    ("batch_size", {"target": "a", "batch_size": 0}),
    ("batch_size", {"target": "a", "batch_size": 1.5}),
    ("guidance_scale", {"target": "a", "guidance_scale": "high"}),
    ("guidance_scale", {"target": "a", "guidance_scale": True}),
    ("guidance_scale", {"target": "a", "guidance_scale": float("nan")}),
    ("weight", {"target": "a", "weight": "1"}),
    ("weight", {"target": "a", "weight": -1.0}),
    ("multiplier", {"target": "a", "multiplier": 0}),
    ("dynamic_resolution", {"target": "a", "dynamic_resolution": "yes"}),
    ("positive", {"target": "a", "positive": 3}),
])
def test_bad_pair_fields_name_entry_and_field(field, kwargs):
    message = spec_error("prompts[1]", field, lambda: PromptPair(**kwargs, name="prompts[1]"))
    assert len(message) > len("prompts[1], field '': ") + 10  # says how to fix it


def test_empty_target_with_own_positive_is_a_valid_pair():
    # sd-scripts' `target_class = ""` sliders expand into exactly such pairs.
    assert PromptPair("", positive="high detail").target == ""


def test_unnamed_pair_still_names_itself():
    assert "prompt pair" in spec_error("prompt pair", "action", lambda: PromptPair("a", action="x"))


@pytest.mark.parametrize("mask", [torch.ones(1, 8, 8), torch.full((8, 8), 2.0), torch.full((8, 8), -0.1),
                                  torch.full((8, 8), float("nan")), torch.zeros(8, 8), torch.ones(8)])
def test_bad_masks_are_rejected(mask):
    spec_error("prompts[0]", "mask", lambda: PromptPair("a", mask=mask, name="prompts[0]"))


def test_mask_is_float32_and_ignored_by_equality():
    pair = PromptPair("a", mask=torch.ones(4, 4, dtype=torch.float64))
    assert pair.mask.dtype == torch.float32
    assert pair == PromptPair("a")


def test_pairs_are_frozen():
    with pytest.raises(AttributeError):
        PromptPair("a").target = "b"


# --- SliderTarget expansion ----------------------------------------------------------------------

def directions(pairs):
    return [(p.positive, p.unconditional, p.action, p.multiplier) for p in pairs]


def test_both_poles_expand_to_the_sd_scripts_four():
    pairs = SliderTarget("person", positive="P", negative="N", multiplier=2.0).expand()
    assert directions(pairs) == [("N", "P", "erase", 2.0), ("P", "N", "enhance", 2.0),
                                 ("P", "N", "erase", -2.0), ("N", "P", "enhance", -2.0)]
    assert all(p.target == "person" and p.neutral == "" for p in pairs)


def test_negative_pole_only():
    assert directions(SliderTarget("t", negative="N").expand()) == [("N", "", "erase", 1.0), ("N", "", "enhance", -1.0)]


def test_positive_pole_only():
    assert directions(SliderTarget("t", positive="P").expand()) == [("P", "", "enhance", 1.0), ("P", "", "erase", -1.0)]


def test_plus_m_moves_toward_positive_pole():
    # Target of a pair: neutral -/+ g * (positive - unconditional). At +m it must equal n + g(P - N).
    eps = {"P": 3.0, "N": 1.0, "": 0.5, "n": 10.0}
    for pair in SliderTarget("t", positive="P", negative="N", neutrals=("n",), guidance_scale=2.0).expand():
        offset = pair.guidance_scale * (eps[pair.positive] - eps[pair.unconditional])
        target = eps[pair.neutral] + (offset if pair.action == "enhance" else -offset)
        expected = 10.0 + 2.0 * (3.0 - 1.0) * (1 if pair.multiplier > 0 else -1)
        assert target == expected, pair.name


def test_each_neutral_and_resolution_expands_in_sd_scripts_order():
    slider = SliderTarget("t", positive="P", negative="N", neutrals=("a", "b", "c"), resolutions=[[512, 512], [768, 768]])
    pairs = slider.expand()
    assert len(pairs) == 3 * 2 * 4
    assert [p.neutral for p in pairs[:8]] == ["a"] * 8
    assert [p.resolutions for p in pairs[:8]] == [((512, 512),)] * 4 + [((768, 768),)] * 4
    assert len(set(p.name for p in pairs)) == len(pairs)


def test_expanded_pairs_inherit_settings_and_are_named():
    mask = torch.ones(8, 8)
    slider = SliderTarget("t", positive="P", weight=0.5, guidance_scale=4, batch_size=2, dynamic_resolution=True,
                          dynamic_crops=True, mask=mask, name="targets[0]")
    first = slider.expand()[0]
    settings = (first.weight, first.guidance_scale, first.batch_size, first.dynamic_resolution, first.dynamic_crops)
    assert settings == (0.5, 4.0, 2, True, True)
    assert first.mask is not None and first.name == 'targets[0] P/"" enhance +1'
    assert SliderTarget("t", "P", "N", name="targets[0]").expand()[1].name == "targets[0] P/N enhance +1"


def test_empty_target_class_is_allowed_like_sd_scripts_detail_slider():
    pairs = SliderTarget("", positive="high detail", negative="low detail").expand()
    assert len(pairs) == 4 and all(p.target == "" for p in pairs)


@pytest.mark.parametrize("field, kwargs", [
    ("positive", {"target_class": "t"}),
    ("positive", {"target_class": "t", "positive": "  ", "negative": ""}),
    ("target_class", {"target_class": None, "positive": "P"}),
    ("neutrals", {"target_class": "t", "positive": "P", "neutrals": ()}),
    ("neutrals[1]", {"target_class": "t", "positive": "P", "neutrals": ("", 3)}),
    ("resolutions", {"target_class": "t", "positive": "P", "resolutions": 100}),
    ("batch_size", {"target_class": "t", "positive": "P", "batch_size": 0}),
    ("weight", {"target_class": "t", "positive": "P", "weight": "heavy"}),
    ("guidance_scale", {"target_class": "t", "positive": "P", "guidance_scale": None}),
    ("mask", {"target_class": "t", "positive": "P", "mask": torch.ones(2, 2, 2)}),
])
def test_bad_slider_fields_name_entry_and_field(field, kwargs):
    spec_error("targets[3]", field, lambda: SliderTarget(**kwargs, name="targets[3]"))


# --- AnchorPrompt and PromptSet ------------------------------------------------------------------

def test_anchor_validation():
    assert AnchorPrompt("a dog").weight == 1.0
    spec_error("anchors[0]", "weight", lambda: AnchorPrompt("a dog", weight="x", name="anchors[0]"))
    spec_error("anchors[0]", "prompt", lambda: AnchorPrompt(None, name="anchors[0]"))


def test_prompt_set_pairs_prompts_and_immutability():
    base = PromptSet((PromptPair("cat", positive="dog"),))
    grown = base.extended(SliderTarget("person", "smiling", "sad"), AnchorPrompt("a tree"))
    assert len(base.entries) == 1 and base.anchors == ()
    assert len(grown.pairs()) == 1 + 4 and len(grown.anchors) == 1
    assert grown.all_prompts() == ["cat", "dog", "", "person", "sad", "smiling", "a tree"]
    merged = base.extended(grown)
    assert len(merged.entries) == 3


def test_prompt_set_rejects_foreign_items():
    spec_error("PromptSet.extended", "items", lambda: PromptSet().extended("cat"))
    spec_error("entries[0]", "type", lambda: PromptSet(("cat",)))
    spec_error("anchors[0]", "type", lambda: PromptSet((), ("cat",)))


def test_validate_needs_pairs_with_weight():
    spec_error("prompt set", "entries", lambda: PromptSet(anchors=(AnchorPrompt("a"),)).validate())
    spec_error("prompt set", "weight", lambda: PromptSet((PromptPair("a", weight=0),)).validate())
    PromptSet((PromptPair("a"),)).validate()


def test_to_dict_is_json_safe_and_summarizes_masks():
    mask = torch.zeros(4, 8)
    mask[:, :4] = 1
    spec = PromptSet((PromptPair("a", mask=mask), SliderTarget("t", positive="P")), (AnchorPrompt("x", 2.0),))
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["prompts"][0]["mask"] == {"shape": [4, 8], "mean": 0.5}
    assert data["prompts"][1]["target_class"] == "t" and data["prompts"][1]["neutrals"] == [""]
    assert data["anchors"] == [{"prompt": "x", "weight": 2.0}]


# --- resolution sampling -------------------------------------------------------------------------

def test_sample_resolution_is_uniform_over_listed_and_seeded():
    pair = PromptPair("a", resolutions=[[512, 512], [768, 512], [1024, 1024]])
    draws = [pair.sample_resolution(torch.Generator().manual_seed(i)) for i in range(60)]
    assert set(draws) == {(512, 512), (768, 512), (1024, 1024)}
    again = [pair.sample_resolution(torch.Generator().manual_seed(i)) for i in range(60)]
    assert draws == again


def test_dynamic_resolution_uses_sd_scripts_buckets():
    pair = PromptPair("a", resolutions=512, dynamic_resolution=True)
    generator = torch.Generator().manual_seed(0)
    draws = {pair.sample_resolution(generator) for _ in range(300)}
    sides = {side for hw in draws for side in hw}
    assert sides == {256, 320, 384, 448, 512}
    assert any(h != w for h, w in draws)


def test_dynamic_resolution_skips_non_square_and_steps_by_8_when_tiny():
    assert PromptPair("a", resolutions=[512, 768], dynamic_resolution=True).sample_resolution() == (512, 768)
    generator = torch.Generator().manual_seed(1)
    sides = {side for _ in range(200) for side in random_bucket_resolution(64, generator)}
    assert sides == {32, 40, 48, 56, 64}
    assert random_bucket_resolution(8, generator) == (8, 8)
