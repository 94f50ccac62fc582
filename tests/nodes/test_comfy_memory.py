"""The ComfyUI backend trains without a second copy of the UNet, and its gradient checkpointing is real.

Real ComfyUI in-process (skipped with one loud line when none is found), the toy-world architecture with
random weights built under torch.inference_mode() as the executor builds models.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from support.comfy import COMFY_MARKS, require_comfyui
from support.pack import import_pack
from support.toy_models import random_components

from loba.config import TrainConfig
from loba.prompts import PromptPair, PromptSet
from loba.toyworld.model import LATENT_SIZE
from loba.train.callbacks import TrainCallbacks
from loba.train.loop import train

require_comfyui()
pytestmark = COMFY_MARKS

PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="a red circle", neutral="a circle",
                                        unconditional="a circle", resolutions=((64, 64),)),))
CONFIG = TrainConfig().replace(max_train_steps=2, max_denoising_steps=3, learning_rate=1e-2, seed=3)


def _module(name: str):
    return importlib.import_module(f"{import_pack().__name__}.nodes.{name}")


@pytest.fixture(scope="module")
def host(comfy, tmp_path_factory):
    from loba.toyworld.files import save_toy_checkpoint

    root = tmp_path_factory.mktemp("comfy-memory")
    path = save_toy_checkpoint(root / "toy.safetensors", random_components(seed=4, tokenizer_folder=root / "tok"), {})
    with torch.inference_mode():
        model, clip, _ = _module("toyworld_comfy").load_toyworld_comfy(path, dtype=torch.float32)
        backend = _module("comfy_backend").ComfyBackend(model, clip)
    return backend


def _state(unet):
    with torch.inference_mode():
        return {k: v.clone() for k, v in unet.state_dict().items()}, {n: p for n, p in unet.named_parameters()}


def _assert_untouched(unet, before):
    values, params = before
    assert all(torch.equal(values[k], v) for k, v in unet.state_dict().items()), "base bit-identical"
    assert all(p is params[n] for n, p in unet.named_parameters()), "the original parameter objects are back"
    assert all(p.is_inference() for p in unet.parameters())
    assert not any(m._forward_hooks for m in unet.modules())
    assert not any("forward" in m.__dict__ for m in unet.modules()), "checkpoint wrappers removed"


def test_the_session_aliases_the_weights_instead_of_copying_them(host):
    unet = host.denoiser()
    originals = {n: p.data_ptr() for n, p in unet.named_parameters()}
    x = torch.randn(1, 4, LATENT_SIZE, LATENT_SIZE, requires_grad=True)
    with torch.inference_mode():
        cond = host.encode_prompts(["a circle"])["a circle"]
        with host.training_session():
            inside = dict(unet.named_parameters())
            assert not any(p.is_inference() for p in inside.values())
            assert {n: p.data_ptr() for n, p in inside.items()} == originals, "no parameter was copied"
            host.predict(x, torch.tensor([500]), cond).sum().backward()  # autograd may save the aliases
    assert x.grad is not None and torch.isfinite(x.grad).all()


class _StopAfterOne(TrainCallbacks):
    def __init__(self, fail: bool):
        self.fail, self.steps = fail, 0

    def on_step(self, report, network) -> None:
        self.steps += 1
        if self.fail:
            raise RuntimeError("boom")

    def should_stop(self) -> bool:
        return self.steps >= 1


@pytest.mark.parametrize("outcome", ["success", "cancel", "failure"])
def test_the_base_is_bit_identical_after_success_cancel_and_failure(host, outcome):
    unet = host.denoiser()
    before = _state(unet)
    config = CONFIG.replace(gradient_checkpointing=True)
    with torch.inference_mode():
        if outcome == "failure":
            with pytest.raises(RuntimeError, match="boom"):
                train(host, PROMPTS, config, callbacks=_StopAfterOne(fail=True))
        else:
            result = train(host, PROMPTS, config, callbacks=_StopAfterOne(False) if outcome == "cancel" else None)
            assert result.steps_done == (1 if outcome == "cancel" else 2)
    _assert_untouched(unet, before)
    assert not host.gradient_checkpointing()


def _student_backward(host, network, checkpointed: bool) -> tuple[int, int, dict]:
    """(forward calls of the UNet's convs in forward, in backward, the adapter's gradients)."""
    unet = host.denoiser()
    counts = {"calls": 0}
    handles = [m.register_forward_hook(lambda *_: counts.__setitem__("calls", counts["calls"] + 1))
               for m in unet.modules() if isinstance(m, torch.nn.Conv2d)]
    x = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(1))
    try:
        with torch.inference_mode():
            cond = host.encode_prompts(["a red circle"])["a red circle"]
        cond = cond.repeat(2)  # outside inference mode: a normal tensor
        with host.training_session(), network.attached(unet):
            host.set_gradient_checkpointing(checkpointed)
            try:
                loss = host.predict(x, torch.tensor([300, 700]), cond).float().square().mean()
                forward = counts["calls"]
                network.zero_grad(set_to_none=True)
                loss.backward()
            finally:
                host.set_gradient_checkpointing(False)
    finally:
        for handle in handles:
            handle.remove()
    return forward, counts["calls"] - forward, {n: p.grad.clone() for n, p in network.named_parameters()}


def test_gradient_checkpointing_recomputes_the_blocks_in_backward_with_the_same_gradients(host):
    from loba.train.loop import build_network

    network = build_network(host, CONFIG)
    with torch.no_grad():
        for lora in network.loras.values():
            lora.lora_up.weight.normal_(0, 0.1)  # a non-zero up: gradients reach the down weights too
    forward, recomputed, plain = _student_backward(host, network, checkpointed=False)
    assert forward > 0 and recomputed == 0
    forward_ck, recomputed_ck, grads = _student_backward(host, network, checkpointed=True)
    assert forward_ck == forward
    assert 0 < recomputed_ck <= forward, "the block layers ran again inside backward"
    assert all(torch.allclose(grads[n], plain[n], rtol=1e-4, atol=1e-6) for n in plain)
    assert any(g.abs().sum() > 0 for g in grads.values())
    assert not host.gradient_checkpointing()
