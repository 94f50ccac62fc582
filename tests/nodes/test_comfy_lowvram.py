"""ComfyUI's low-VRAM modes inside the training session: under --lowvram / --novram LOBA asks load_models_gpu for
no full load (ComfyUI's partial load decides, as when sampling); otherwise the model is loaded fully as before.
LOBA's own offload option is refused on ComfyUI's backend (it would fight model_management)."""

from __future__ import annotations

import importlib

import pytest
import torch
from support.comfy import COMFY_MARKS, require_comfyui
from support.pack import import_pack
from support.toy_models import random_components

from loba.config import TrainConfig
from loba.errors import ConfigError
from loba.prompts import PromptPair, PromptSet
from loba.toyworld.files import save_toy_checkpoint
from loba.train.loop import train

require_comfyui()
pytestmark = COMFY_MARKS


def _load_by_path(name: str):
    return importlib.import_module(f"{import_pack().__name__}.nodes.{name}")


@pytest.fixture(scope="module")
def backend(comfy, tmp_path_factory):
    root = tmp_path_factory.mktemp("comfy-lowvram")
    path = save_toy_checkpoint(root / "toy.safetensors", random_components(seed=2, tokenizer_folder=root / "tok"), {})
    with torch.inference_mode():
        model, clip, _ = _load_by_path("toyworld_comfy").load_toyworld_comfy(path, dtype=torch.float32)
        return _load_by_path("comfy_backend").ComfyBackend(model, clip)


@pytest.mark.parametrize("state, full", [("LOW_VRAM", False), ("NO_VRAM", False), ("NORMAL_VRAM", True)])
def test_training_session_leaves_lowvram_to_comfyui(backend, monkeypatch, state, full):
    import comfy.model_management as mm

    calls = []
    original = mm.load_models_gpu

    def recorded(models, *args, **kwargs):
        calls.append(kwargs.get("force_full_load", False))
        return original(models, *args, **kwargs)

    monkeypatch.setattr(mm, "load_models_gpu", recorded)
    monkeypatch.setattr(mm, "vram_state", getattr(mm.VRAMState, state))
    with backend.training_session():
        pass
    assert calls == [full]


def test_offload_option_is_refused_in_comfyui(backend):
    prompts = PromptSet(entries=(PromptPair(target="a red circle", positive="red", resolutions=((64, 64),)),))
    config = TrainConfig().replace(max_train_steps=1, max_denoising_steps=2, offload="sequential")
    with pytest.raises(ConfigError, match="offload = sequential would fight"):
        train(backend, prompts, config)
