"""End to end through a real ComfyUI server: `main.py --cpu` on 127.0.0.1 with the pack in custom_nodes under the
folder name `loba` (the same name as the engine package inside it), graphs queued over HTTP, the websocket
followed. Toy-world loader -> prompts -> train -> preview grid; the saved file through the stock LoRA loader;
re-queue served from cache; cancel through /interrupt keeps the partial slider and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.comfy import COMFY_MARKS, COMFYUI, REPO_ROOT, require_comfyui

from devtools.comfy_server import get_json as _get
from devtools.comfy_server import of_type as _of_type
from devtools.comfy_server import run_graph as _run
from devtools.comfy_server import start_server, stop_server

require_comfyui()
pytestmark = COMFY_MARKS + [pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("comfy-base"))
    yield running
    stop_server(running)


def training_graph(prefix: str, steps: int, preview_every: int = 2) -> dict:
    return {
        "1": {"class_type": "LOBA_ToyWorldLoader", "inputs": {}},
        "2": {"class_type": "LOBA_PromptPair", "inputs": {
            "target": "a red circle", "action": "erase", "positive": "", "unconditional": "a circle", "neutral": "",
            "guidance_scale": 1.0, "resolution": 0, "batch_size": 1, "weight": 1.0, "multiplier": 1.0}},
        "3": {"class_type": "LOBA_TrainSlider", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "prompts": ["2", 0], "max_train_steps": steps,
            "learning_rate": 2e-3, "network_dim": 4, "network_alpha": 4.0, "seed": 0, "resolution": 0, "max_denoising_steps": 4,
            "leco_denoise_guidance_scale": 5.0, "denoise_with_adapter": False, "mixed_precision": "no",
            "gradient_checkpointing": False, "save_precision": "float", "save_every_n_steps": 0, "preview_every": preview_every,
            "preview_weights": "-1, 0, 1", "filename_prefix": prefix, "resume_file": ""}},
        "4": {"class_type": "LOBA_SliderPreviewGrid", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "slider": ["3", 0], "prompts": "a red circle\na blue square",
            "negative": "", "weights": "-1, 0, 1", "seed": 0, "steps": 4, "cfg": 5.0, "sampler_name": "euler",
            "scheduler": "normal", "width": 64, "height": 64}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["3", 1]}},
    }


def stock_lora_graph(lora_name: str) -> dict:
    return {
        "1": {"class_type": "LOBA_ToyWorldLoader", "inputs": {}},
        "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": lora_name,
                                                     "strength_model": 1.0, "strength_clip": 1.0}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": "a red circle"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": ""}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0],
                                                   "seed": 0, "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
                                                   "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
    }


def test_object_info_lists_the_nodes_with_tooltips(server):
    info = _get(server, "/object_info")
    assert "LOBA_TrainSlider" in info and "LOBA_ToyWorldLoader" in info
    train = info["LOBA_TrainSlider"]
    assert train["category"] == "LOBA" and all(spec[1].get("tooltip") for spec in train["input"]["required"].values())
    log = server.log.read_text()
    assert not [line for line in log.splitlines() if "Cannot import" in line and "custom_nodes" in line and "loba" in line], log[-3000:]


def test_train_preview_save_then_stock_loader_then_cache(server):
    seen = asyncio.run(_run(server, training_graph("loba/e2e", steps=4)))
    assert seen["ended"]["type"] == "execution_success", seen["ended"]
    losses = _of_type(seen, "loba.loss")
    assert [d["step"] for d in losses] == [1, 2, 3, 4] and all(d["node"] == "3" for d in losses)
    progress = [d for d in _of_type(seen, "progress") if d.get("node") == "3"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 4
    assert seen["binary"] >= 2, "progress previews (steps 2 and 4) reach the browser"
    assert _of_type(seen, "loba.done")[0]["steps_done"] == 4
    outputs = {d["node"]: d["output"] for d in _of_type(seen, "executed")}
    assert outputs["5"]["images"] and outputs["6"]["images"]
    saved = sorted((server.base / "models" / "loras" / "loba").glob("e2e_*.safetensors"))
    assert len(saved) == 1

    again = asyncio.run(_run(server, training_graph("loba/e2e", steps=4)))  # ComfyUI caches the last prompt's outputs
    assert again["ended"]["type"] == "execution_success"
    cached = {node for d in _of_type(again, "execution_cached") for node in d["nodes"]}
    assert "3" in cached and not _of_type(again, "loba.loss"), "an unchanged graph does not retrain"
    assert len(list((server.base / "models" / "loras" / "loba").glob("e2e_*.safetensors"))) == 1

    stock = asyncio.run(_run(server, stock_lora_graph("loba/" + saved[0].name)))
    assert stock["ended"]["type"] == "execution_success", stock["ended"]
    assert "lora key not loaded" not in server.log.read_text()

    changed = asyncio.run(_run(server, training_graph("loba/e2e", steps=3)))
    assert [d["step"] for d in _of_type(changed, "loba.loss")] == [1, 2, 3], "a changed input retrains"


def test_interrupt_keeps_the_partial_slider_and_the_server_serves_on(server):
    interrupted = {"sent": False}

    async def interrupt_after_first_steps(session, event):
        if event["type"] == "loba.loss" and event["data"]["step"] >= 2 and not interrupted["sent"]:
            interrupted["sent"] = True
            async with session.post(f"{server.url}/interrupt", json={}) as response:
                assert response.status == 200

    seen = asyncio.run(_run(server, training_graph("loba/cancel", steps=2000, preview_every=0), interrupt_after_first_steps))
    assert seen["ended"]["type"] == "execution_interrupted", seen["ended"]
    steps = [d["step"] for d in _of_type(seen, "loba.loss")]
    assert 2 <= steps[-1] <= 4, f"cancel honored within a step or so, got {steps[-1]}"
    done = _of_type(seen, "loba.done")[0]
    assert done["stopped"] and done["steps_done"] == steps[-1]
    (partial,) = (server.base / "models" / "loras" / "loba").glob("cancel_*.safetensors")
    from safetensors import safe_open

    with safe_open(str(partial), "pt") as handle:
        assert handle.metadata()["ss_steps"] == str(steps[-1])
    assert _get(server, "/system_stats")["system"]
    after = asyncio.run(_run(server, training_graph("loba/after", steps=2, preview_every=0)))
    assert after["ended"]["type"] == "execution_success"


def test_bad_input_is_reported_on_the_node_and_the_server_keeps_serving(server):
    graph = training_graph("loba/bad", steps=2)
    graph["2"]["inputs"]["target"] = ""
    seen = asyncio.run(_run(server, graph))
    assert seen["ended"]["type"] == "execution_error"
    error = seen["ended"]["data"]
    assert error["node_id"] == "2" and "LOBA Prompt Pair" in error["exception_message"] and "target" in error["exception_message"]
    assert _get(server, "/system_stats")["system"]


def test_pack_folder_name_does_not_matter(tmp_path):
    """The engine is imported relatively: the pack works under any folder name (here not `loba`)."""
    folder = tmp_path / "ComfyUI-LOBA-main"
    folder.symlink_to(REPO_ROOT, target_is_directory=True)
    code = ("import sys, asyncio, importlib.util; sys.path.insert(0, sys.argv[1]); "
            "import comfy.cli_args; comfy.cli_args.args.cpu = True; "
            "s = importlib.util.spec_from_file_location(sys.argv[2].replace('.', '_x_'), sys.argv[2] + '/__init__.py', "
            "submodule_search_locations=[sys.argv[2]]); m = importlib.util.module_from_spec(s); sys.modules[s.name] = m; "
            "s.loader.exec_module(m); e = asyncio.run(m.comfy_entrypoint()); print(len(asyncio.run(e.get_node_list())))")
    out = subprocess.run([sys.executable, "-c", code, str(COMFYUI), str(folder)], capture_output=True, text=True, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    declared = {m for f in (REPO_ROOT / "nodes").glob("*.py") for m in re.findall(r'node_id="(\w+)"', f.read_text())}
    assert out.stdout.strip().splitlines()[-1] == str(len(declared))
    assert Path(folder).exists()
