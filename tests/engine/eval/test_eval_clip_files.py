"""The clip evaluator's single-file weights: a ComfyUI clip_vision .safetensors (a tiny random tower written by the
test) scores clip_image; open_clip without its package, a pole on a vision-only file, a missing file: refused."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from loba.errors import ConfigError
from loba.eval.builtin import load_all
from loba.eval.registry import EVALUATORS
from loba.toyworld.render import render_batch

PROMPTS = ["a red circle"] * 3


def build(settings):
    load_all()
    return EVALUATORS.get("clip")(settings)


@pytest.fixture
def vision_file(tmp_path):
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=1,
                              image_size=32, patch_size=8, projection_dim=16, hidden_act="gelu")
    model = CLIPVisionModelWithProjection(config)
    path = tmp_path / "clip_vision_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if "position_ids" not in k}, str(path))
    return path, model


def test_a_clip_vision_file_scores_image_similarity(vision_file):
    path, original = vision_file
    base, _ = render_batch(3, seed=0, shape="circle", color="red")
    edited, _ = render_batch(3, seed=0, shape="square", color="red")
    clip = build({"weights": str(path)})
    assert clip.tower.config.num_hidden_layers == 2 and clip.tower.config.projection_dim == 16
    loaded = clip.tower.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in original.state_dict().items()), "the file's weights, not random ones"
    at_zero = clip.score(base, PROMPTS, None)
    assert set(at_zero) == {"clip_image"} and np.allclose(at_zero["clip_image"], 1, atol=1e-5)
    scored = clip.score(edited, PROMPTS, base)["clip_image"]
    assert scored.shape == (3,) and np.all(scored < 1 - 1e-4)
    assert np.array_equal(scored, clip.score(edited, PROMPTS, base)["clip_image"])


def test_bad_clip_files_are_refused_naming_the_field(vision_file, tmp_path):
    path, _ = vision_file
    with pytest.raises(ConfigError, match=r"evaluators.clip.positive: .*clip_vision file \(image tower only\)"):
        build({"weights": str(path), "positive": "a square"})
    with pytest.raises(ConfigError, match=r"evaluators.clip.weights: file .*nothing.safetensors does not exist"):
        build({"weights": str(tmp_path / "nothing.safetensors")})
    from safetensors.torch import save_file

    save_file({"text_model.x": torch.zeros(1)}, str(tmp_path / "text.safetensors"))
    with pytest.raises(ConfigError, match=r"evaluators.clip.weights: holds no .*not a clip_vision file"):
        build({"weights": str(tmp_path / "text.safetensors")})
    torch.save({}, tmp_path / "open_clip.pt")
    with pytest.raises(ConfigError, match=r"evaluators.clip.open_clip_model: is required for the checkpoint file"):
        build({"weights": str(tmp_path / "open_clip.pt")})


@pytest.mark.skipif(importlib.util.find_spec("open_clip") is not None, reason="open_clip is installed here")
def test_open_clip_without_the_package_is_one_clear_message(tmp_path):
    torch.save({}, tmp_path / "open_clip.pt")
    with pytest.raises(ConfigError, match=r"evaluators.clip: needs the 'open_clip_torch' package.*pip install open_clip_torch"):
        build({"weights": str(tmp_path / "open_clip.pt"), "open_clip_model": "ViT-B-32"})
