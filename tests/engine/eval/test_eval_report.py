"""evaluate_slider with a stand-in renderer: metrics.json layout, grid, the self-contained report, and the headless
renderer's ComfyUI-matching grid and start latent."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from loba.errors import ConfigError
from loba.eval.diffusers_render import ddim_uniform_grid, start_latent
from loba.eval.run import Rendered, evaluate_slider
from loba.eval.slider_check import check_family
from loba.eval.spec import parse_spec
from loba.sliders.kohya import SliderFile
from loba.toyworld.render import render_batch

SPEC = {"target_prompts": ["a red circle"], "control_prompts": ["a blue square"], "canary_prompts": ["a green triangle"],
        "weights": [-1, 0, 1], "seeds": [3, 4, 5], "evaluators": {"pixel": {}, "reader": {}}, "grid_seeds": 1}


def fake_render(prompt: str, weight: float, seed: int) -> np.ndarray:
    """Scenes that grow darker with |w| on the target prompt only: a perfectly local slider."""
    color = {"a red circle": "red", "a blue square": "blue", "a green triangle": "green"}[prompt]
    shape = prompt.split()[-1]
    image = render_batch(1, seed, shape=shape, color=color)[0][0].astype(np.int16)
    if prompt == "a red circle":
        image = image - int(20 * abs(weight))
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    done = []
    result = evaluate_slider(parse_spec(SPEC), fake_render, {"model": "stand-in"}, out_dir=out,
                             progress=lambda d, total, image: done.append((d, total)))
    return result, out, done


def test_metrics_pair_every_weight_with_w0_and_pool_per_role(result):
    metrics, out, done = result[0].metrics, result[1], result[2]
    assert done[-1] == (27, 27) and len(done) == 27
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert metrics["weights"] == ["-1", "0", "1"] and set(metrics["summary"]) == {"target", "control", "canary"}
    drift = metrics["summary"]["target"]["pixel"]["pixel_drift"]
    assert drift["0"]["mean"] == 0 and drift["1"]["mean"] > 0.05 and drift["1"]["low"] <= drift["1"]["mean"] <= drift["1"]["high"]
    assert metrics["summary"]["control"]["pixel"]["pixel_drift"]["1"]["mean"] == 0
    per_seed = metrics["per_prompt"]["a blue square"]["evaluators"]["reader"]["prompt_match"]["1"]["values"]
    assert per_seed == [1.0, 1.0, 1.0]


def test_grid_and_report_are_written_and_self_contained(result):
    evaluation, out = result[0], result[1]
    assert evaluation.grid.size == (180 + 3 * 132, 22 + 3 * 132)  # 3 prompts x 1 grid seed, 3 weights
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 5  # pixel_drift + the reader's four metrics
    assert "data:image/png;base64," in page and "a red circle" in page
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page, "nothing loaded from outside the page"
    image = evaluation.report_image()
    assert image.mode == "RGB" and image.size[0] >= 600 and image.size[1] > 300


def test_headless_grid_and_start_match_comfyui_ddim_uniform():
    assert ddim_uniform_grid(20, 1000) == list(range(951, 0, -50))
    assert len(ddim_uniform_grid(30, 1000)) == 31  # ComfyUI's rule, not diffusers' leading spacing
    from loba.diffusion.schedule import NoiseSchedule, scaled_linear_alphas_cumprod

    schedule = NoiseSchedule(scaled_linear_alphas_cumprod(0.00085, 0.012, 1000), "epsilon")
    noise = torch.ones(1, 4, 2, 2)
    assert torch.equal(start_latent(noise, schedule, 999), noise)
    assert torch.allclose(start_latent(noise, schedule, 951), noise * (1 - schedule.alphas_cumprod[951]).sqrt().float())


def test_a_slider_of_another_family_is_refused():
    sdxl = SliderFile({}, {"ss_base_model_version": "sdxl_base_v1-0"}, "x.safetensors")
    with pytest.raises(ConfigError, match="slider: x.safetensors was made for sdxl .* the model is sd1"):
        check_family(sdxl, "sd1")
    check_family(sdxl, "sdxl")
    check_family(SliderFile({}, {}, "other-trainer.safetensors"), "sd1")  # no metadata: layer names decide


class LatentRender:
    """fake_render's images with a latent that scales with the weight: latent drift must read |w| * 0.5."""

    gives_latents = True

    def __call__(self, prompt: str, weight: float, seed: int) -> Rendered:
        latent = np.random.default_rng(seed).standard_normal((4, 8, 8)).astype(np.float32)
        return Rendered(fake_render(prompt, weight, seed), latent * (1 + 0.5 * abs(weight)))


def test_latent_drift_reads_the_renderers_final_latents():
    spec = parse_spec({**SPEC, "evaluators": {"pixel": {}, "latent": {}}})
    metrics = evaluate_slider(spec, LatentRender(), {"model": "stand-in"}).metrics
    drift = metrics["summary"]["target"]["latent"]["latent_drift"]
    assert drift["0"]["mean"] == 0 and drift["1"]["mean"] == pytest.approx(0.5) and drift["-1"]["mean"] == pytest.approx(0.5)
    assert metrics["summary"]["target"]["pixel"]["pixel_drift"]["1"]["mean"] > 0


def test_latent_evaluator_without_latents_is_refused_before_sampling():
    spec = parse_spec({**SPEC, "evaluators": {"latent": {}}})

    def render(prompt, weight, seed):
        pytest.fail("sampled before refusing")

    with pytest.raises(ConfigError, match="latents") as caught:
        evaluate_slider(spec, render, {"model": "stand-in"})
    assert caught.value.field == "evaluators.latent"
