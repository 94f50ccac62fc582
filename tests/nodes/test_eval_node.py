"""LOBA Evaluate Slider in-process with ComfyUI's own objects (a real-server run would take minutes on this CPU):
on the embedded toy world it gives the numbers `loba eval --model toyworld` writes for the same seeds, and bad
input is refused before any sample, naming the node and the field."""

from __future__ import annotations

import json

import pytest
import torch
from support.comfy import COMFY_MARKS, require_comfyui
from support.pack import run_node
from support.sliders import save_slider

require_comfyui()
pytestmark = COMFY_MARKS

NODE = "LOBA_EvaluateSlider"
SPEC = {"target_prompts": "a large red circle on a dark background", "control_prompts": "a small blue square",
        "canary_prompts": "", "negative_prompt": "", "weights": "0, 1", "seeds": "0, 1", "sampler_name": "ddim",
        "scheduler": "ddim_uniform", "steps": 2, "cfg": 5.0, "width": 0, "height": 0, "evaluators": "pixel, latent, reader",
        "evaluator_settings": ""}
TOML = """target_prompts = ["a large red circle on a dark background"]
control_prompts = ["a small blue square"]
weights = [0, 1]
seeds = [0, 1]
steps = 2
cfg = 5.0
[evaluators.pixel]
[evaluators.latent]
[evaluators.reader]
"""


@pytest.fixture(scope="module")
def slider_name(pack):
    """A random slider for the embedded toy UNet, written into the loras folder."""
    from loba.adapters import AdapterNetwork
    from loba.adapters.targeting import select_targets
    from loba.config import NetworkConfig
    from loba.models.naming import KohyaNames
    from loba.toyworld.sampling import load_toy_components

    unet = load_toy_components().unet
    torch.manual_seed(1)
    network = AdapterNetwork(select_targets(unet, NetworkConfig(preset="attention", network_alpha=4.0)), unet)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    save_slider(pack.root / "loras" / "eval_toy.safetensors", network, KohyaNames(unet, "sd1").kohya_name)
    return "eval_toy.safetensors"


def evaluate(pack, toy, slider_name, **changes):
    return run_node(pack.nodes[NODE], model=toy.model, clip=toy.clip, vae=toy.vae, slider_name=slider_name,
                    **{"spec_file": "", **SPEC, **changes}).args


def per_sample(metrics: dict) -> dict:
    return {(prompt, name, metric, weight): figure["values"] for prompt, entry in metrics["per_prompt"].items()
            for name, by_metric in entry["evaluators"].items() for metric, by_weight in by_metric.items()
            for weight, figure in by_weight.items()}


def test_node_gives_the_numbers_of_loba_eval_for_the_same_seeds(pack, toy, slider_name, tmp_path):
    from loba.cli.main import main

    report, text, grid = evaluate(pack, toy, slider_name)
    node = json.loads(text)
    (tmp_path / "spec.toml").write_text(TOML)
    assert main(["eval", "--model", "toyworld", "--slider", str(pack.root / "loras" / slider_name),
                 "--spec", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "out")]) == 0
    headless = json.loads((tmp_path / "out" / "metrics.json").read_text())
    ours, theirs = per_sample(node), per_sample(headless)
    assert ours.keys() == theirs.keys()
    worst = max(abs(a - b) for key in ours for a, b in zip(ours[key], theirs[key]))
    assert worst < 1e-4, f"node vs loba eval differ by {worst}"  # measured 2.2e-6 (fp32 CPU, ComfyUI 0.3.64)
    reads = {key: values for key, values in ours.items() if key[1] == "reader" and key[2] != "size"}
    assert all(values == theirs[key] for key, values in reads.items()), "the reader reads the same things"
    # The report image draws these rows (report_table): the same numbers as loba eval's table, digit for digit.
    table = pack.module.loba.eval.report_table
    assert list(table.summary_rows(node)) == list(table.summary_rows(headless))
    assert report.shape[0] == 1 and report.shape[-1] == 3 and grid.shape[1:] == (22 + 2 * 2 * 132, 180 + 2 * 132, 3)
    print(f"node vs loba eval: max per-sample difference {worst:.2e}")


@pytest.mark.parametrize("changes, field", [
    ({"target_prompts": ""}, "target_prompts"),
    ({"weights": "-1, 1"}, "weights"),
    ({"evaluators": "pixel, nope"}, "evaluators"),
    ({"evaluators": "nudenet", "evaluator_settings": "[nudenet]\nthreshold = 2"}, "evaluators.nudenet.threshold"),
    ({"evaluators": "clip", "evaluator_settings": "[clip]\nweights = '/no/such/clip'"}, "evaluators.clip.weights"),
    ({"seeds": "a"}, "seeds"),
    ({"sampler_name": "no_such_sampler"}, "sampler_name"),
])
def test_bad_input_is_refused_before_sampling_naming_node_and_field(pack, toy, slider_name, changes, field, monkeypatch):
    import comfy.sample

    monkeypatch.setattr(comfy.sample, "sample", lambda *a, **k: pytest.fail("sampled before refusing"))
    with pytest.raises(ValueError, match=f"LOBA Evaluate Slider, input '{field}'"):
        evaluate(pack, toy, slider_name, **changes)


def test_spec_file_comes_only_from_the_input_folder_and_is_validated(pack, toy, slider_name, monkeypatch):
    import comfy.sample

    monkeypatch.setattr(comfy.sample, "sample", lambda *a, **k: pytest.fail("sampled before refusing"))
    (pack.root / "input" / "bad_spec.toml").write_text(TOML.replace("weights = [0, 1]", "weights = [1, 2]"))
    with pytest.raises(ValueError, match="LOBA Evaluate Slider, input 'weights': must include 0"):
        evaluate(pack, toy, slider_name, spec_file="bad_spec.toml")
    with pytest.raises(ValueError, match="LOBA Evaluate Slider, input 'spec_file'"):
        evaluate(pack, toy, slider_name, spec_file="../outside.toml")


def test_a_slider_for_another_family_is_refused_before_sampling(pack, toy, monkeypatch):
    import comfy.sample

    from loba.sliders.kohya import write_slider_file

    tensors = {"lora_unet_input_blocks_99_0.lora_down.weight": torch.zeros(2, 4),
               "lora_unet_input_blocks_99_0.lora_up.weight": torch.zeros(4, 2)}
    write_slider_file(pack.root / "loras" / "sdxl_slider.safetensors", tensors, {"ss_base_model_version": "sdxl_base_v1-0"},
                      torch.float32)
    monkeypatch.setattr(comfy.sample, "sample", lambda *a, **k: pytest.fail("sampled before refusing"))
    with pytest.raises(ValueError, match="LOBA Evaluate Slider, input 'slider_name'.*another model family"):
        evaluate(pack, toy, "sdxl_slider.safetensors")


def test_cancel_stops_between_samples(pack, toy, slider_name, monkeypatch):
    import comfy.model_management

    calls = []

    def interrupt_on_second():
        calls.append(1)
        if len(calls) == 2:
            raise comfy.model_management.InterruptProcessingException()

    monkeypatch.setattr(comfy.model_management, "throw_exception_if_processing_interrupted", interrupt_on_second)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        evaluate(pack, toy, slider_name)
    assert len(calls) == 2, "the cancel lands at the next sample"


def test_clip_weights_may_name_a_folder_in_comfyuis_clip_vision_folder(pack, tmp_path):
    fields = pack.module.nodes.eval_spec_fields
    (tmp_path / "my-clip").mkdir()
    (tmp_path / "my-clip" / "config.json").write_text("{}")
    data = {"evaluators": {"clip": {"weights": "my-clip"}, "pixel": {}}}
    resolved = fields.with_clip_vision_folder(data, [str(tmp_path)])
    assert resolved["evaluators"]["clip"]["weights"] == str(tmp_path / "my-clip") and data["evaluators"]["clip"]["weights"] == "my-clip"
    outside = {"evaluators": {"clip": {"weights": "../x"}}}
    assert fields.with_clip_vision_folder(outside, [str(tmp_path)]) == outside
