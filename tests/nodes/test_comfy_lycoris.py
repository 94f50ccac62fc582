"""LOBA's LyCORIS sliders (LoHa, LoKr, DoRA) load through ComfyUI's stock LoRA path with every key consumed, and
reproduce the hooked student's output at several strengths (the same check test_comfy_interop.py makes for
LoRA/LoCon). A real ComfyUI in-process; skipped with one loud line when none is found."""

from __future__ import annotations

import logging

import pytest
import torch
from support.backends import make_backend
from support.comfy import COMFY_MARKS, comfy_adm, comfy_eps, comfy_model_from_diffusers, require_comfyui

from loba.config import TrainConfig
from loba.models.backend import Conditioning
from loba.prompts import PromptPair, PromptSet
from loba.sliders.kohya import load_slider
from loba.sliders.trained import save_trained_slider
from loba.train.loop import build_network

require_comfyui()
pytestmark = COMFY_MARKS

LORA_TOLERANCE = 1e-5  # the brief's bound; the LoRA/LoCon round trip measures <= 1.5e-6
STRENGTHS = (1.0, 0.5, -1.0)


def _inputs(backend):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, backend.latent_channels, 8, 8, generator=gen)
    conds = backend.encode_prompts(["a photo of a cat", "an oil painting"])
    return x, torch.tensor([37.0, 801.0]), Conditioning.cat([conds["a photo of a cat"], conds["an oil painting"]])


def _randomize(network, algo: str) -> None:
    """Non-zero updates on every adapter (fresh ones are a no-op); DoRA's magnitudes moved by up to ~10%."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(1)
        for name, param in network.named_parameters():
            if name.endswith("dora_scale"):
                param.mul_(1 + 0.1 * torch.randn_like(param))
            else:
                param.copy_(torch.randn_like(param) * (0.3 if algo == "loha" else 0.05))


@pytest.mark.parametrize("kind", ["sd1", "sdxl"])
@pytest.mark.parametrize("algo", ["loha", "lokr", "dora"])
def test_lycoris_slider_loads_exactly_through_comfy_lora_loader(comfy, tokenizer, tmp_path, caplog, kind, algo):
    backend = make_backend(tokenizer, kind)
    base = comfy_model_from_diffusers(comfy, backend.unet)
    x, timesteps, cond = _inputs(backend)
    h, w = x.shape[-2] * backend.vae_scale_factor, x.shape[-1] * backend.vae_scale_factor
    y = None if cond.pooled is None else comfy_adm(base, cond.pooled, h, w)
    config = TrainConfig().replace(preset="all_linear_conv", algo=algo, network_dim=4, network_alpha=2.0,
                                   conv_dim=2, conv_alpha=1.0)
    network = build_network(backend, config)
    assert {lora.algo for _, lora in network.items()} == {algo}
    assert {lora.kind for _, lora in network.items()} == {"lora", "locon"}
    _randomize(network, algo)
    expected = {}
    with torch.no_grad(), network.attached(backend.unet):
        for strength in (0.0, *STRENGTHS):
            network.multiplier = strength
            expected[strength] = backend.predict(x, timesteps, cond)
    path = save_trained_slider(tmp_path / f"{algo}.safetensors", network, backend, config,
                               PromptSet(entries=(PromptPair(target="x"),)), steps=1)
    assert load_slider(path).metadata["ss_network_module"] == "lycoris.kohya"
    lora_sd = comfy.utils.load_torch_file(str(path), safe_load=True)
    try:
        for strength in STRENGTHS:
            caplog.clear()
            with caplog.at_level(logging.WARNING), torch.inference_mode():
                patched, _ = comfy.sd.load_lora_for_models(base, None, lora_sd, strength, 0)
            not_loaded = [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage().lower()]
            assert not not_loaded, f"ComfyUI ignored part of the file: {not_loaded[:5]}"
            assert len(patched.patches) == len(network.names)
            got = comfy_eps(comfy, patched, x, timesteps, cond.context, y)
            diff = (got - expected[strength]).abs().max().item()
            print(f"measured: {algo} {kind} strength {strength:+}: max |ComfyUI - LOBA| = {diff:.2e}")  # pytest -s shows it
            assert diff <= LORA_TOLERANCE, f"{algo} strength {strength}: max diff {diff:.3g}"
        assert (expected[1.0] - expected[0.0]).abs().max().item() > 1e-3
    finally:
        comfy.model_management.unload_all_models()


@pytest.mark.parametrize("algo", ["loha", "lokr", "dora"])
def test_training_on_the_comfy_backend_and_the_stock_loader_agree(comfy, tmp_path, algo):
    """ComfyUI's own modules (comfy.ops, inference tensors): the model is left as it was, and the stock loader
    reproduces the trained student."""
    import importlib

    from support.pack import import_pack
    from support.toy_models import random_components

    from loba.sliders.trained import save_trained_slider
    from loba.toyworld.files import save_toy_checkpoint
    from loba.toyworld.model import LATENT_SIZE
    from loba.train.loop import train

    toy = save_toy_checkpoint(tmp_path / "toy.safetensors", random_components(seed=2, tokenizer_folder=tmp_path / "tok"), {})
    loader = importlib.import_module(f"{import_pack().__name__}.nodes.toyworld_comfy")
    backend_module = importlib.import_module(f"{import_pack().__name__}.nodes.comfy_backend")
    with torch.inference_mode():
        model, clip, _ = loader.load_toyworld_comfy(toy, dtype=torch.float32)
        backend = backend_module.ComfyBackend(model, clip)
    prompts = PromptSet(entries=(PromptPair(target="a red circle", neutral="a circle", unconditional="a circle",
                                            resolutions=((64, 64),)),))
    config = TrainConfig().replace(algo=algo, preset="all_linear_conv", max_train_steps=2, max_denoising_steps=3,
                                   learning_rate=3e-2, seed=5)
    unet = model.model.diffusion_model
    with torch.inference_mode():
        before = {k: v.clone() for k, v in unet.state_dict().items()}
        result = train(backend, prompts, config)
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items())
    path = save_trained_slider(tmp_path / "s.safetensors", result.network, backend, config, prompts, 2)
    x = torch.randn(1, 4, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([400])
    with torch.inference_mode():
        cond = backend.encode_prompts(["a red circle"])["a red circle"]
    with torch.no_grad(), backend.training_session(), result.network.attached(backend.denoiser()):
        student = backend.predict(x, t, cond).float().clone()
    try:
        with torch.inference_mode():
            patched, _ = comfy.sd.load_lora_for_models(model, None, comfy.utils.load_torch_file(str(path), safe_load=True), 1.0, 0)
            comfy.model_management.load_models_gpu([patched])
            stock = patched.model.diffusion_model(x, t.float(), context=cond.context).float().clone()
            comfy.model_management.load_models_gpu([model])
            base = model.model.diffusion_model(x, t.float(), context=cond.context).float().clone()
        diff = (student - stock).abs().max().item()
        print(f"measured: {algo} trained on the ComfyUI backend: max |stock loader - student| = {diff:.2e}")
        assert diff <= LORA_TOLERANCE
        assert (student - base).abs().max() > 0
    finally:
        comfy.model_management.unload_all_models()


def test_lycoris_update_is_comfyuis_for_other_trainers_forms(comfy):
    """The update LOBA computes from a file (merge, fit checks) is the one ComfyUI's weight adapters compute, also
    for forms LOBA does not write: LoHa tucker cores, LoKr with factored w1 / full w2. (LoKr with a tucker w2 is left
    out: ComfyUI 0.3.64's own LoKr code fails on it with this torch, torch.kron of a strided einsum result, and logs
    the error instead of patching.)"""
    from loba.sliders.lycoris_keys import lycoris_update

    gen = torch.Generator().manual_seed(3)

    def rand(*shape):
        return torch.randn(*shape, generator=gen)

    modules = {
        "loha_tucker": ({"hada_t1": rand(2, 2, 3, 3), "hada_w1_a": rand(2, 6), "hada_w1_b": rand(2, 4), "hada_t2": rand(2, 2, 3, 3),
                         "hada_w2_a": rand(2, 6), "hada_w2_b": rand(2, 4), "alpha": torch.tensor(1.0)}, (6, 4, 3, 3)),
        "lokr_w1ab": ({"lokr_w1_a": rand(2, 3), "lokr_w1_b": rand(3, 2), "lokr_w2": rand(3, 4), "alpha": torch.tensor(4.0)}, (6, 8)),
        "lokr_plain": ({"lokr_w1": rand(2, 2), "lokr_w2_a": rand(3, 2), "lokr_w2_b": rand(2, 8), "alpha": torch.tensor(1.0)}, (6, 16)),
    }
    for name, (state, shape) in modules.items():
        lora = {f"{name}.{key}": value for key, value in state.items()}
        (adapter,) = comfy.lora.load_lora(lora, {name: name}).values()
        theirs = adapter.calculate_weight(torch.zeros(shape), name, 1.0, 1.0, None, lambda w: w)
        assert (lycoris_update(state) - theirs.reshape(shape[0], -1)).abs().max() < 1e-5, name
