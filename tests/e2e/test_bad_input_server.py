"""Bad input through one real ComfyUI server (`main.py --cpu`): a representative part of the corpus
(tests/nodes/test_bad_input_corpus.py) posted over HTTP. Each prompt ends in execution_error on the right node,
naming the node and the input; nothing outside ComfyUI's input folder is read (nor comes back in a message or
in a slider's metadata at /view_metadata); nothing is written; and the server then serves the next prompt.
"""

from __future__ import annotations

import asyncio

import pytest
import torch
from safetensors.torch import save_file
from support.comfy import COMFY_MARKS, require_comfyui

from devtools.comfy_server import get_json, run_graph, start_server, stop_server

require_comfyui()
pytestmark = COMFY_MARKS + [pytest.mark.slow]

SECRET = "the-secret-line-outside-comfyui"
GOOD_TOML = '[[prompts]]\ntarget = "a red circle"\nunconditional = "a circle"\nresolution = 64\n'
STEM = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k"


def slider_file(path, base_model: str, nan: bool = False):
    down, up = torch.randn(2, 64) * 0.01, torch.randn(64, 2) * 0.01
    if nan:
        down[0, 0] = float("nan")
    save_file({f"{STEM}.lora_down.weight": down, f"{STEM}.lora_up.weight": up, f"{STEM}.alpha": torch.tensor(2.0)},
              str(path), metadata={"ss_base_model_version": base_model})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy-bad-input")
    outside = base.parent / f"{base.name}-outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    inside, loras = base / "input", base / "models" / "loras"
    inside.mkdir(parents=True)
    loras.mkdir(parents=True)
    (inside / "neutrals.txt").write_text("a shape\n")
    (inside / "binary.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    (inside / "link.txt").symlink_to(outside / "secret.txt")
    (base / "secret.toml").write_text(GOOD_TOML + f'neutral_prompt_file = "{outside / "secret.txt"}"\n')
    slider_file(loras / "nan.safetensors", "sd_v1", nan=True)
    slider_file(loras / "sd1.safetensors", "sd_v1")
    slider_file(loras / "sdxl.safetensors", "sdxl_base_v1-0")
    checkpoints = base / "output" / "loba_checkpoints" / "bad"
    checkpoints.mkdir(parents=True)
    (checkpoints / "empty.pt").write_bytes(b"")
    running = start_server(base)
    running.outside = outside
    yield running
    stop_server(running)


def train_graph(toml: str = GOOD_TOML, file: str = "", **train) -> dict:
    inputs = {"model": ["1", 0], "clip": ["1", 1], "prompts": ["2", 0], "max_train_steps": 1, "learning_rate": 1e-3,
              "network_dim": 2, "network_alpha": 2.0, "seed": 0, "resolution": 0, "max_denoising_steps": 2,
              "leco_denoise_guidance_scale": 3.0, "denoise_with_adapter": False, "mixed_precision": "no",
              "gradient_checkpointing": False, "save_precision": "float", "save_every_n_steps": 0, "preview_every": 0,
              "preview_weights": "-1, 0, 1", "filename_prefix": "loba/bad", "resume_file": ""}
    return {"1": {"class_type": "LOBA_ToyWorldLoader", "inputs": {}},
            "2": {"class_type": "LOBA_LoadPromptToml", "inputs": {"toml": toml, "file": file}},
            "3": {"class_type": "LOBA_TrainSlider", "inputs": {**inputs, **train}},
            "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 1]}}}


def merge_graph(first: str, second: str) -> dict:
    return {"1": {"class_type": "LOBA_LoadSlider", "inputs": {"lora_name": first}},
            "2": {"class_type": "LOBA_LoadSlider", "inputs": {"lora_name": second}},
            "3": {"class_type": "LOBA_MergeSliders", "inputs": {
                "slider_1": ["1", 0], "weight_1": 1.0, "slider_2": ["2", 0], "weight_2": 1.0, "mode": "concat", "rank": 8,
                "weight_3": 1.0, "weight_4": 1.0}},
            "4": {"class_type": "LOBA_SaveSlider", "inputs": {"slider": ["3", 0], "filename_prefix": "loba/merged",
                                                              "precision": "float"}}}


def outside(server) -> str:
    return str(server.outside / "secret.txt")


# (graph, node id that fails, its display name, the input the message names)
CASES = [
    (lambda s: train_graph("", "../secret.toml"), "2", "LOBA Load Prompt TOML", "file"),
    (lambda s: train_graph("", str(s.base / "secret.toml")), "2", "LOBA Load Prompt TOML", "file"),
    (lambda s: train_graph("", "binary.toml"), "2", "LOBA Load Prompt TOML", "file"),
    (lambda s: train_graph(GOOD_TOML + f'neutral_prompt_file = "{outside(s)}"\n'), "2", "LOBA Load Prompt TOML",
     "neutral_prompt_file"),
    (lambda s: train_graph(GOOD_TOML + 'prompt_file = "link.txt"\n'), "2", "LOBA Load Prompt TOML", "prompt_file"),
    (lambda s: train_graph(GOOD_TOML + f'mask = "{s.outside}/secret.txt"\n'), "2", "LOBA Load Prompt TOML", "mask"),
    (lambda s: train_graph(GOOD_TOML.replace("resolution = 64", "resolution = 8000000")), "2", "LOBA Load Prompt TOML",
     "resolutions"),
    (lambda s: train_graph(GOOD_TOML + "batch_size = 512\n"), "2", "LOBA Load Prompt TOML", "batch_size"),
    (lambda s: train_graph(leco_denoise_guidance_scale=float("nan")), "3", "LOBA Train Slider", "denoise_cfg"),
    (lambda s: train_graph(preview_every=1, preview_weights="1,,2"), "3", "LOBA Train Slider", "preview_weights"),
    (lambda s: train_graph(resume_file=outside(s)), "3", "LOBA Train Slider", "resume_file"),
    (lambda s: train_graph(resume_file="loba_checkpoints/bad/empty.pt"), "3", "LOBA Train Slider", "resume_file"),
    (lambda s: merge_graph("nan.safetensors", "sd1.safetensors"), "1", "LOBA Load Slider", "lora_name"),
    (lambda s: merge_graph("sd1.safetensors", "sdxl.safetensors"), "3", "LOBA Merge Sliders", "slider_2"),
]


def written(server) -> set[str]:
    return {str(p) for folder in ("models/loras", "output") for p in (server.base / folder).rglob("*.safetensors")}


def test_bad_prompts_fail_on_their_node_read_nothing_outside_write_nothing_and_the_server_serves_on(server):
    before = written(server)
    for i, (graph, node_id, display, field) in enumerate(CASES):
        seen = asyncio.run(run_graph(server, graph(server), timeout=300))
        ended = seen["ended"]
        assert ended["type"] == "execution_error", (i, ended)
        data = ended["data"]
        message = data["exception_message"]
        assert data["node_id"] == node_id and message.startswith(f"{display}, input '{field}'"), (i, message)
        assert SECRET not in message and "weights_only=False" not in message, (i, message)
        assert SECRET not in "".join(data.get("traceback", [])), i
        assert written(server) == before, (i, "a refused prompt wrote a slider")
    good = asyncio.run(run_graph(server, train_graph(GOOD_TOML + 'neutral_prompt_file = "neutrals.txt"\n'), timeout=300))
    assert good["ended"]["type"] == "execution_success", good["ended"]
    (saved,) = written(server) - before
    metadata = get_json(server, "/view_metadata/loras?filename=loba/" + saved.rsplit("/", 1)[-1])
    assert "a shape" in metadata["loba_prompts"], "a neutral file inside the input folder is read"
    assert SECRET not in str(metadata)
