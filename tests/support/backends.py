"""Tiny diffusers backends built offline, and the checks that a model was left exactly as it was."""

from __future__ import annotations

import torch
from support.tiny_models import sd_alphas_cumprod, tiny_text_encoder, tiny_unet

from loba.adapters import AdapterNetwork
from loba.models.diffusers_backend import DiffusersBackend


def make_backend(tokenizer, kind: str = "sd1", prediction_type: str = "epsilon", seed: int = 0) -> DiffusersBackend:
    unet = tiny_unet(kind, seed)
    if kind == "sdxl":
        encoders = [tiny_text_encoder(32, seed=seed), tiny_text_encoder(32, with_projection=True, seed=seed + 1)]
        return DiffusersBackend(unet, encoders, [tokenizer, tokenizer], sd_alphas_cumprod(), prediction_type)
    return DiffusersBackend(unet, [tiny_text_encoder(32, seed=seed)], [tokenizer], sd_alphas_cumprod(), prediction_type)


def snapshot(module: torch.nn.Module) -> dict:
    """Every parameter and buffer (cloned) and every requires_grad flag, to compare later."""
    return {"tensors": {name: t.detach().clone() for name, t in module.state_dict().items()},
            "grad_flags": {name: p.requires_grad for name, p in module.named_parameters()}}


def assert_bit_identical(module: torch.nn.Module, before: dict) -> None:
    """Same tensors bit for bit, same requires_grad flags, no hook and no grad left behind."""
    after = module.state_dict()
    assert set(after) == set(before["tensors"])
    for name, tensor in before["tensors"].items():
        assert torch.equal(after[name], tensor), f"{name} changed"
    for name, param in module.named_parameters():
        assert param.requires_grad == before["grad_flags"][name], f"requires_grad of {name} changed"
        assert param.grad is None, f"{name} has a gradient left"
    for sub in module.modules():
        assert not sub._forward_hooks and not sub._forward_pre_hooks, f"hook left on {type(sub).__name__}"


def randomize_up(network: AdapterNetwork, seed: int = 0, scale: float = 0.1) -> None:
    """Fresh adapters have zero up weights (a no-op); tests need a real update."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, lora in network.items():
            lora.lora_up.weight.copy_(torch.randn(lora.lora_up.weight.shape, generator=gen) * scale)


def unet_inputs(unet, batch: int = 2, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, 8, 8, generator=gen)
    context = torch.randn(batch, 77, unet.config.cross_attention_dim, generator=gen)
    return x, torch.tensor([10, 600][:batch]), context
