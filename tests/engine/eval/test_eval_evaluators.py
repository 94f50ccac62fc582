"""Every evaluator's plumbing on toy-world scenes: shapes, determinism, w = 0 against itself, missing weights."""

from __future__ import annotations

import numpy as np
import pytest

from loba.errors import ConfigError
from loba.eval.builtin import load_all
from loba.eval.registry import EVALUATORS
from loba.eval.stats import summarize
from loba.toyworld.render import render_batch

PROMPTS = ["a red circle"] * 3


@pytest.fixture(scope="module")
def scenes():
    base, _ = render_batch(3, seed=0, shape="circle", color="red")
    edited, _ = render_batch(3, seed=0, shape="square", color="red")
    return base, edited


def build(name, settings=None):
    load_all()
    return EVALUATORS.get(name)(settings or {})


def test_registry_lists_the_built_in_evaluators():
    load_all()
    assert {"pixel", "latent", "reader", "lpips", "clip", "nudenet"} <= set(EVALUATORS.names())


def test_pixel_drift_is_zero_against_itself_and_positive_after_an_edit(scenes):
    base, edited = scenes
    pixel = build("pixel")
    assert np.all(pixel.score(base, PROMPTS, None)["pixel_drift"] == 0)
    drift = pixel.score(edited, PROMPTS, base)["pixel_drift"]
    assert drift.shape == (3,) and np.all(drift > 0) and np.all(drift < 1)


def test_latent_drift_is_the_relative_change_of_the_final_latent():
    latent = build("latent")
    assert latent.reads == "latents"
    base = np.random.default_rng(0).standard_normal((3, 4, 8, 8)).astype(np.float32)
    assert np.all(latent.score(base, PROMPTS, None)["latent_drift"] == 0)
    moved = base.copy()
    moved[0] *= 1.25  # ||0.25 z|| / ||z||
    moved[1] = -base[1]  # ||2 z|| / ||z||
    drift = latent.score(moved, PROMPTS, base)["latent_drift"]
    assert drift == pytest.approx([0.25, 2.0, 0.0], abs=1e-6)


def test_reader_reads_the_prompt_and_what_changed(scenes):
    base, edited = scenes
    reader = build("reader")
    at_zero = reader.score(base, PROMPTS, None)
    assert at_zero["prompt_match"].tolist() == [1, 1, 1] and at_zero["preserved"].tolist() == [1, 1, 1]
    changed = reader.score(edited, PROMPTS, base)
    assert changed["prompt_match"].tolist() == [0, 0, 0] and changed["preserved"].tolist() == [0, 0, 0]
    assert np.isnan(reader.score(base, ["not a toy caption"] * 3, None)["prompt_match"]).all()


def test_nudenet_loads_offline_from_its_wheel_and_finds_nothing_on_shapes(scenes):
    base, edited = scenes
    nudenet = build("nudenet", {"threshold": 0.3})
    first, again = nudenet.score(edited, PROMPTS, base), nudenet.score(edited, PROMPTS, base)
    assert set(first) >= {"unsafe", "female_breast_exposed"} and first["unsafe"].shape == (3,)
    assert all(np.array_equal(first[k], again[k]) for k in first), "deterministic"
    assert all(np.all(values == 0) for values in first.values()), "no detections on toy shapes"


def test_lpips_with_a_local_stand_in_backbone(scenes, tmp_path):
    import torch
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.alexnet(weights=None).features
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "alexnet.pth")
    base, edited = scenes
    lpips = build("lpips", {"backbone": str(tmp_path / "alexnet.pth")})
    assert np.allclose(lpips.score(base, PROMPTS, None)["lpips"], 0, atol=1e-6)
    values = lpips.score(edited, PROMPTS, base)["lpips"]
    assert values.shape == (3,) and np.all(values > 0)
    assert np.array_equal(values, lpips.score(edited, PROMPTS, base)["lpips"])
    torch.save({"classifier.1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ConfigError, match="evaluators.lpips.backbone: .*features.0.weight"):
        build("lpips", {"backbone": str(tmp_path / "wrong.pth")})


def test_clip_with_a_tiny_random_model_saved_by_the_test(scenes, tmp_path):
    import torch
    from support.tiny_models import tiny_tokenizer
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(0)
    text = dict(vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=77, bos_token_id=512, eos_token_id=513, pad_token_id=513)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(tmp_path / "clip")
    processor = CLIPProcessor(CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                              tiny_tokenizer(tmp_path / "tok"))
    processor.save_pretrained(tmp_path / "clip")
    base, edited = scenes
    clip = build("clip", {"weights": str(tmp_path / "clip"), "positive": "a square", "negative": "a circle"})
    at_zero = clip.score(base, PROMPTS, None)
    assert np.allclose(at_zero["clip_image"], 1, atol=1e-5) and np.allclose(at_zero["clip_pole_delta"], 0, atol=1e-6)
    scored = clip.score(edited, PROMPTS, base)
    assert {k: v.shape for k, v in scored.items()} == {"clip_score": (3,), "clip_image": (3,), "clip_pole_delta": (3,)}
    assert np.all(np.abs(scored["clip_score"]) <= 1) and np.all(scored["clip_image"] < 1)
    assert all(np.array_equal(scored[k], clip.score(edited, PROMPTS, base)[k]) for k in scored)


def test_bootstrap_interval_is_deterministic_and_brackets_the_mean():
    values = [0.1, 0.4, 0.35, 0.8, 0.2, float("nan")]
    first = summarize(values)
    assert first == summarize(values) and first["n"] == 5
    assert first["low"] <= first["mean"] <= first["high"] and first["high"] - first["low"] > 0
    assert summarize([0.5]) == {"mean": 0.5, "low": 0.5, "high": 0.5, "n": 1}
    assert summarize([float("nan")])["mean"] is None
    wide, narrow = summarize(np.r_[np.zeros(5), np.ones(5)]), summarize(np.r_[np.zeros(50), np.ones(50)])
    assert narrow["high"] - narrow["low"] < wide["high"] - wide["low"]


def test_a_missing_optional_package_is_one_clear_message():
    from loba.eval.registry import require

    with pytest.raises(ConfigError, match=r"evaluators.nudenet: needs the 'nudenet' package.*pip install nudenet"):
        require("loba_no_such_module_xyz", "nudenet", "nudenet")
