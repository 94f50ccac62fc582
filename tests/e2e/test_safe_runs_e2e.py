"""Safe runs through a real ComfyUI server: an interrupt that lands in a progress preview still saves the partial
slider; cancel is honoured inside a long Preview Grid and over-long weight lists are refused up front; runs with the
same name keep their own checkpoint folders and resume = auto finds them.
"""

from __future__ import annotations

import asyncio

import pytest
from support import interrupt_pack
from support.comfy import COMFY_MARKS, require_comfyui

from devtools.comfy_server import of_type as _of_type
from devtools.comfy_server import run_graph as _run
from devtools.comfy_server import start_server, stop_server

require_comfyui()
pytestmark = COMFY_MARKS + [pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy-base")
    interrupt_pack.install(base)
    running = start_server(base)
    yield running
    stop_server(running)


def train_graph(prefix: str, steps: int, preview_every: int = 0, checkpoint_every: int = 0, resume: str = "",
                weights: str = "-1, 0, 1") -> dict:
    return {
        "1": {"class_type": "LOBA_ToyWorldLoader", "inputs": {}},
        "2": {"class_type": "LOBA_PromptPair", "inputs": {
            "target": "a red circle", "action": "erase", "positive": "", "unconditional": "a circle", "neutral": "",
            "guidance_scale": 1.0, "resolution": 0, "batch_size": 1, "weight": 1.0, "multiplier": 1.0}},
        "3": {"class_type": "LOBA_TrainSlider", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "prompts": ["2", 0], "max_train_steps": steps,
            "learning_rate": 2e-3, "network_dim": 4, "network_alpha": 4.0, "seed": 0, "resolution": 0, "max_denoising_steps": 4,
            "leco_denoise_guidance_scale": 5.0, "denoise_with_adapter": False, "mixed_precision": "no",
            "gradient_checkpointing": False, "save_precision": "float", "save_every_n_steps": checkpoint_every,
            "preview_every": preview_every, "preview_weights": weights, "filename_prefix": prefix, "resume_file": resume}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 1]}},
    }


def loras(server, pattern: str) -> list:
    return sorted((server.base / "models" / "loras").glob(pattern))


def saved_steps(path) -> tuple[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return handle.metadata()["ss_steps"], handle.metadata()["loba_stopped_early"]


@pytest.mark.parametrize("kind, at", [("preview", 1), ("preview", 3), ("progress", 2)])
def test_an_interrupt_inside_a_progress_update_still_saves_the_partial_slider(server, kind, at):
    """The interrupt is raised by ComfyUI's own progress hook, inside the Nth update with (or without) a preview."""
    interrupt_pack.plan(server.base, kind, at)
    prefix = f"cancel-{kind}-{at}/slider"
    seen = asyncio.run(_run(server, train_graph(prefix, steps=200, preview_every=1)))
    assert seen["ended"]["type"] == "execution_interrupted", seen["ended"]
    done = _of_type(seen, "loba.done")[0]
    assert done["stopped"] and 1 <= done["steps_done"] <= at + 1
    (partial,) = loras(server, prefix + "_*.safetensors")
    assert saved_steps(partial) == (str(done["steps_done"]), "true")
    after = asyncio.run(_run(server, train_graph(f"after-{kind}-{at}/slider", steps=1)))
    assert after["ended"]["type"] == "execution_success", "the interrupt flag is not left up for the next prompt"


def grid_graph(prefix: str, weights: str, prompts: str, steps: int) -> dict:
    graph = train_graph(prefix, steps=1)
    graph["5"] = {"class_type": "LOBA_SliderPreviewGrid", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "slider": ["3", 0], "prompts": prompts, "negative": "",
        "weights": weights, "seed": 0, "steps": steps, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
        "width": 64, "height": 64}}
    graph["6"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}
    return graph


def test_a_long_preview_grid_honours_cancel_within_a_sampler_step(server):
    sent = {"done": False}

    async def interrupt(session, event):
        if event["type"] == "progress" and event["data"].get("node") == "5" and not sent["done"]:
            sent["done"] = True
            async with session.post(f"{server.url}/interrupt", json={}) as response:
                assert response.status == 200

    seen = asyncio.run(_run(server, grid_graph("grid/slider", "-1, 0, 1", "a red circle\na blue square", 200), interrupt))
    assert seen["ended"]["type"] == "execution_interrupted", seen["ended"]
    ticks = [d for d in _of_type(seen, "progress") if d.get("node") == "5"]
    assert ticks[-1]["max"] == 2 * 3 * 200 and ticks[-1]["value"] < 200, "stopped inside the first cell's sampling"
    after = asyncio.run(_run(server, train_graph("after-grid/slider", steps=1)))
    assert after["ended"]["type"] == "execution_success"


@pytest.mark.parametrize("node, field", [("3", "preview_weights"), ("5", "weights"), ("5", "prompts")])
def test_over_long_lists_are_refused_before_any_work(server, node, field):
    many = ", ".join(["0.5"] * 10_000)
    graph = grid_graph("long/slider", "-1, 1", "a red circle", 2)
    graph["3"]["inputs"]["preview_every"] = 1
    if field == "prompts":
        graph["5"]["inputs"]["prompts"] = "\n".join(["a red circle"] * 10_000)
    else:
        graph[node]["inputs"][field] = many
    seen = asyncio.run(_run(server, graph))
    assert seen["ended"]["type"] == "execution_error", seen["ended"]
    error = seen["ended"]["data"]
    assert error["node_id"] == node and f"'{field}'" in error["exception_message"], error["exception_message"]
    assert "at most 16" in error["exception_message"]
    assert not _of_type(seen, "loba.loss") or node == "5", "the Train node refuses its list before training"


def test_every_run_has_its_own_checkpoint_folder_and_resume_auto_finds_it(server):
    root = server.base / "output" / "loba_checkpoints"
    for prefix, seed in (("a/x/same", 0), ("b/y/same", 0), ("a/x/same", 1)):  # same last name, and the same prefix twice
        graph = train_graph(prefix, steps=2, checkpoint_every=1)
        graph["3"]["inputs"]["seed"] = seed
        assert asyncio.run(_run(server, graph))["ended"]["type"] == "execution_success"
    folders = sorted(str(p.relative_to(root)) for p in root.rglob("same_*_"))
    assert folders == ["a/x/same_00001_", "a/x/same_00002_", "b/y/same_00001_"]
    import torch

    for folder, seed in (("a/x/same_00001_", 0), ("a/x/same_00002_", 1), ("b/y/same_00001_", 0)):
        names = sorted(p.name for p in (root / folder / "checkpoints").iterdir())
        assert names == ["step-000001.pt"], names
        assert torch.load(root / folder / "checkpoints" / names[0], weights_only=True)["config"]["seed"] == seed

    resumed = train_graph("a/x/same", steps=3, checkpoint_every=1, resume="auto")
    resumed["3"]["inputs"]["seed"] = 1
    seen = asyncio.run(_run(server, resumed))
    assert seen["ended"]["type"] == "execution_success", seen["ended"]
    assert [d["step"] for d in _of_type(seen, "loba.loss")] == [2, 3], "continued from the newest run's step-1 checkpoint"
    assert (root / "a/x/same_00002_/checkpoints/step-000002.pt").is_file(), "a resumed run goes on in its own folder"
    assert len(list(root.rglob("same_*_"))) == 3
