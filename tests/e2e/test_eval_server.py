"""LOBA Evaluate Slider in a real ComfyUI server (`main.py --cpu`) on the embedded toy world: the metrics it reports
(the JSON behind its report image, read back from the run's history) are the numbers `loba eval --model toyworld`
writes for the same seeds and settings."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch
from support.comfy import COMFY_MARKS, require_comfyui
from support.sliders import save_slider

from devtools.comfy_server import of_type, run_graph, start_server, stop_server

require_comfyui()
pytestmark = COMFY_MARKS + [pytest.mark.slow]

TOML = """target_prompts = ["a large red circle on a dark background"]
control_prompts = ["a small blue square"]
weights = [0, 1]
seeds = [0, 1]
steps = 2
cfg = 5.0
[evaluators.pixel]
[evaluators.reader]
"""


def write_slider(path):
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
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_slider(path, network, KohyaNames(unet, "sd1").kohya_name)


def test_evaluate_node_in_a_server_matches_loba_eval(tmp_path):
    from loba.cli.main import main
    from loba.eval.report_table import summary_rows

    base = tmp_path / "comfy-base"
    slider = write_slider(base / "models" / "loras" / "eval_toy.safetensors")
    (base / "input").mkdir(parents=True)
    (base / "input" / "eval_spec.toml").write_text(TOML)
    server = start_server(base)
    try:
        graph = {"1": {"class_type": "LOBA_ToyWorldLoader", "inputs": {}},
                 "2": {"class_type": "LOBA_EvaluateSlider", "inputs": {
                     "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "slider_name": "eval_toy.safetensors",
                     "spec_file": "eval_spec.toml", "target_prompts": "", "control_prompts": "", "canary_prompts": "",
                     "negative_prompt": "", "weights": "0", "seeds": "0", "sampler_name": "ddim", "scheduler": "ddim_uniform",
                     "steps": 1, "cfg": 1.0, "width": 0, "height": 0, "evaluators": "pixel", "evaluator_settings": ""}},
                 "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 2]}}}
        seen = asyncio.run(run_graph(server, graph))
    finally:
        stop_server(server)
    assert seen["ended"]["type"] == "execution_success", seen["ended"]
    progress = [d for d in of_type(seen, "progress") if d.get("node") == "2"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 8, "one progress step per sample"
    executed = {d["node"]: d["output"] for d in of_type(seen, "executed")}
    node = json.loads(executed["2"]["loba_metrics"][0])
    assert executed["2"]["images"], "the report image is shown on the node"
    (tmp_path / "spec.toml").write_text(TOML)
    assert main(["eval", "--model", "toyworld", "--slider", str(slider), "--spec", str(tmp_path / "spec.toml"),
                 "--out", str(tmp_path / "out")]) == 0
    headless = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert list(summary_rows(node)) == list(summary_rows(headless)), "the report's table shows loba eval's numbers"
    assert node["per_prompt"].keys() == headless["per_prompt"].keys()
