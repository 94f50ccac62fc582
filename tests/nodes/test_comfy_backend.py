"""The engine trains through ComfyUI's own MODEL and CLIP exactly as through diffusers.

Real ComfyUI in-process (skipped with one loud line when none is found); the toy-world architecture
with random weights, loaded by both hosts from one file, built under torch.inference_mode() as the
executor builds models, and trained under inference mode as a node runs.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
import torch
from support.comfy import COMFY_MARKS, require_comfyui
from support.pack import import_pack
from support.toy_models import random_components

from loba.config import TrainConfig
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.toyworld.backend import toy_backend
from loba.toyworld.files import load_toy_components, save_toy_checkpoint
from loba.toyworld.model import LATENT_SIZE
from loba.train.loop import train

require_comfyui()
pytestmark = COMFY_MARKS

PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="a red circle", neutral="a circle",
                                        unconditional="a circle", resolutions=((64, 64),)),),
                    anchors=(AnchorPrompt("a blue square"),))
CONFIG = TrainConfig().replace(max_train_steps=3, max_denoising_steps=4, learning_rate=1e-2, seed=5)


def _load_by_path(name: str):
    # The pack's modules as ComfyUI loads them (ComfyUI's own top-level `nodes` module shadows ours).
    return importlib.import_module(f"{import_pack().__name__}.nodes.{name}")


@pytest.fixture(scope="module")
def hosts(comfy, tmp_path_factory):
    root = tmp_path_factory.mktemp("comfy-backend")
    path = save_toy_checkpoint(root / "toy.safetensors", random_components(seed=2, tokenizer_folder=root / "tok"), {})
    loader, backend_module = _load_by_path("toyworld_comfy"), _load_by_path("comfy_backend")
    with torch.inference_mode():
        model, clip, _ = loader.load_toyworld_comfy(path, dtype=torch.float32)
        comfy_backend = backend_module.ComfyBackend(model, clip)
    return SimpleNamespace(comfy=comfy_backend, diffusers=toy_backend(load_toy_components(path)), model=model, module=backend_module)


def test_family_schedule_and_prediction_match_the_diffusers_backend(hosts):
    assert hosts.comfy.family == "sd1" and hosts.comfy.prediction_type == "epsilon"
    assert torch.allclose(hosts.comfy.alphas_cumprod(), hosts.diffusers.alphas_cumprod(), rtol=1e-4)
    with torch.inference_mode():
        comfy_cond = hosts.comfy.encode_prompts(["a red circle"])["a red circle"]
    diffusers_cond = hosts.diffusers.encode_prompts(["a red circle"])["a red circle"]
    assert not comfy_cond.context.is_inference()
    assert (comfy_cond.context - diffusers_cond.context).abs().max() <= 1e-4
    x = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([50, 700])
    with torch.no_grad(), hosts.comfy.training_session():
        ours = hosts.comfy.predict(x, t, comfy_cond.repeat(2))
    reference = hosts.diffusers.predict(x, t, diffusers_cond.repeat(2))
    assert (ours.float() - reference).abs().max() <= 1e-4


def test_training_under_inference_mode_leaves_the_model_exactly_as_it_was(hosts, comfy):
    unet = hosts.model.model.diffusion_model
    with torch.inference_mode():
        before = {k: v.clone() for k, v in unet.state_dict().items()}
        params_before = {name: p for name, p in unet.named_parameters()}
        result = train(hosts.comfy, PROMPTS, CONFIG)
    assert result.steps_done == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items())
    assert all(p is params_before[name] for name, p in unet.named_parameters()), "original parameters restored"
    assert all(not m._forward_hooks for m in unet.modules())


def test_a_saved_slider_reloaded_by_the_stock_lora_path_reproduces_the_student(hosts, comfy, tmp_path):
    from loba.sliders.trained import save_trained_slider

    with torch.inference_mode():
        result = train(hosts.comfy, PROMPTS, CONFIG)
    path = save_trained_slider(tmp_path / "slider.safetensors", result.network, hosts.comfy, CONFIG, PROMPTS, 3)
    x = torch.randn(1, 4, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([400])
    with torch.inference_mode():
        cond = hosts.comfy.encode_prompts(["a red circle"])["a red circle"]
    with torch.no_grad(), hosts.comfy.training_session(), result.network.attached(hosts.comfy.denoiser()):
        result.network.multiplier = 1.0
        student = hosts.comfy.predict(x, t, cond).float().clone()
    with torch.inference_mode():
        lora = comfy.utils.load_torch_file(str(path), safe_load=True)
        patched, _ = comfy.sd.load_lora_for_models(hosts.model, None, lora, 1.0, 0)
        comfy.model_management.load_models_gpu([patched])
        stock = patched.model.diffusion_model(x, t.float(), context=cond.context).float().clone()
        comfy.model_management.load_models_gpu([hosts.model])  # back to the base weights for other tests
    assert (student - stock).abs().max() <= 1e-5
    assert (student - hosts.diffusers.predict(x, t, hosts.diffusers.encode_prompts(["a red circle"])["a red circle"])).abs().max() > 0


def test_unsupported_models_are_named(hosts):
    class FakeConfig:
        pass

    fake = SimpleNamespace(model_config=FakeConfig())
    with pytest.raises(Exception, match="SD1.x, SD2.x"):
        hosts.module.model_family(fake)
