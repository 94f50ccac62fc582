"""Shared fixtures: tiny diffusers backends built offline."""

from __future__ import annotations

import pytest
import torch

from loba.backends.diffusers_backend import DiffusersBackend
from loba.tiny_models import sd_alphas_cumprod, tiny_text_encoder, tiny_tokenizer, tiny_unet


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Two-core machines: one intra-op thread keeps runs fast and CPU results bit-reproducible.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def make_backend(tokenizer, kind: str = "sd1", prediction_type: str = "epsilon", seed: int = 0) -> DiffusersBackend:
    unet = tiny_unet(kind, seed)
    if kind == "sdxl":
        encoders = [tiny_text_encoder(32, seed=seed), tiny_text_encoder(32, with_projection=True, seed=seed + 1)]
        return DiffusersBackend(unet, encoders, [tokenizer, tokenizer], sd_alphas_cumprod(), prediction_type)
    return DiffusersBackend(unet, [tiny_text_encoder(32, seed=seed)], [tokenizer], sd_alphas_cumprod(), prediction_type)


@pytest.fixture
def sd1_backend(tokenizer):
    return make_backend(tokenizer, "sd1")


@pytest.fixture
def sdxl_backend(tokenizer):
    return make_backend(tokenizer, "sdxl")


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
