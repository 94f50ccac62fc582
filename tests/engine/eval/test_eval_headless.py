"""`loba eval --model FOLDER` on tiny random SD1 / SD2 / SDXL diffusers pipelines: the whole headless path (spec,
slider, diffusers backend, cfg_ddim, evaluators, outputs), and a slider of another family refused before sampling."""

from __future__ import annotations

import json

import pytest
import torch
from support.backends import randomize_up
from support.sliders import save_slider
from support.tiny_models import tiny_pipeline

from loba.adapters import AdapterNetwork
from loba.adapters.targeting import select_targets
from loba.config import NetworkConfig
from loba.errors import ConfigError
from loba.eval.headless import run_model_eval
from loba.models.naming import KohyaNames
from loba.sliders.metadata import BASE_MODEL_VERSIONS

SPEC = """target_prompts = ["a red circle"]
canary_prompts = ["a blue square"]
weights = [0, 1]
seeds = [0, 1]
steps = 2
cfg = 3.0
width = 32
height = 32
[evaluators.pixel]
[evaluators.latent]
"""


def slider_for(unet, kind: str, path, version: str | None = None):
    network = AdapterNetwork(select_targets(unet, NetworkConfig(preset="attention", network_alpha=4.0)), unet)
    randomize_up(network, seed=0, scale=0.5)
    return save_slider(path, network, KohyaNames(unet, kind).kohya_name,
                       metadata={"ss_base_model_version": version or BASE_MODEL_VERSIONS[kind]})


@pytest.mark.parametrize("kind", ["sd1", "sd2", "sdxl"])
def test_headless_eval_on_a_tiny_pipeline(kind, tmp_path):
    torch.set_num_threads(1)
    pipe = tiny_pipeline(tmp_path / "model", kind)
    slider = slider_for(pipe.unet, kind, tmp_path / "slider.safetensors")
    (tmp_path / "spec.toml").write_text(SPEC)
    metrics = run_model_eval(str(tmp_path / "model"), slider, tmp_path / "spec.toml", tmp_path / "out", quiet=True)
    assert metrics["family"] == kind and {p.name for p in (tmp_path / "out").iterdir()} == {"metrics.json", "grid.png", "report.html"}
    drift = metrics["summary"]["target"]["pixel"]["pixel_drift"]
    assert drift["0"]["mean"] == 0 and drift["1"]["mean"] > 0
    moved = metrics["summary"]["target"]["latent"]["latent_drift"]
    assert moved["0"]["mean"] == 0 and moved["1"]["mean"] > 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["sampling"]["grid"] == [501, 1]


def test_a_slider_of_another_family_is_refused_before_sampling(tmp_path, monkeypatch):
    import loba.eval.run as run

    pipe = tiny_pipeline(tmp_path / "model", "sd1")
    slider = slider_for(pipe.unet, "sd1", tmp_path / "slider.safetensors", version=BASE_MODEL_VERSIONS["sdxl"])
    (tmp_path / "spec.toml").write_text(SPEC)
    monkeypatch.setattr(run, "render_all", lambda *a, **k: pytest.fail("sampled before refusing"))
    with pytest.raises(ConfigError, match="slider: .*made for sdxl .* the model is sd1"):
        run_model_eval(str(tmp_path / "model"), slider, tmp_path / "spec.toml", tmp_path / "out", quiet=True)
