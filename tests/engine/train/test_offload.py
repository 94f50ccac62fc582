"""offload = blocks | sequential on a tiny diffusers UNet: the same loss as no offload, every block brought in
and dropped again around each forward (a fake device whose offloaded weights are NaN, so a forward on an
offloaded block cannot go unnoticed), nothing left behind, the model bit-identical afterwards."""

from __future__ import annotations

import pytest
import torch
from support.backends import assert_bit_identical, snapshot

from loba.config import TrainConfig
from loba.errors import ConfigError
from loba.prompts import PromptPair, PromptSet
from loba.train import loop
from loba.train.offload import OFFLOAD_MODES, BlockSwap, TensorMover, offloaded, swap_blocks

PAIR = PromptSet(entries=(PromptPair(target="a red circle", positive="red", resolutions=((64, 64),)),))
SHORT = TrainConfig().replace(max_denoising_steps=3, max_train_steps=2, seed=2)


class NanDevice(TensorMover):
    """The 'device' copy is a clone of the stored weights; while offloaded a block holds NaNs of the same shape."""

    def bring(self, stored):
        return stored.clone()

    def placeholder(self, stored):
        return torch.full_like(stored, float("nan")) if stored.is_floating_point() else stored


def test_block_swap_moves_every_block_per_pass_and_trains_the_same(sd1_backend, monkeypatch):
    before = snapshot(sd1_backend.unet)
    plain = loop.train(sd1_backend, PAIR, SHORT)
    swaps = []

    def counted(backend, mode, mover=None):
        assert mode == "blocks"
        swap = BlockSwap(backend.denoiser(), NanDevice(backend.device))
        swaps.append(swap)
        return swap.active()

    monkeypatch.setattr(loop, "offloaded", counted)
    forwards = []
    counter = sd1_backend.unet.register_forward_pre_hook(lambda module, args: forwards.append(torch.is_grad_enabled()))
    try:
        swapped = loop.train(sd1_backend, PAIR, SHORT.replace(offload="blocks"))
    finally:
        counter.remove()
    # bit-equal: the same weights reached every forward and every backward (an offloaded block holds NaNs)
    assert swapped.losses == plain.losses
    (swap,) = swaps
    names = [type(b).__name__ for b in swap.blocks]
    assert "CrossAttnDownBlock2D" in names and "UNetMidBlock2DCrossAttn" in names and "UpBlock2D" in names
    assert forwards.count(True) == SHORT.max_train_steps and len(forwards) > 2 * SHORT.max_train_steps
    assert all(moves >= len(forwards) for moves in swap.moves_in)  # every block in for every UNet forward ...
    assert swap.moves_in == swap.moves_out  # ... and out again: none left on the device
    backward_moves = [moves - len(forwards) for moves in swap.moves_in]
    assert max(backward_moves) == SHORT.max_train_steps  # the student's blocks came back once per backward
    assert not any(b._forward_hooks or b._forward_pre_hooks for b in sd1_backend.unet.modules())
    assert_bit_identical(sd1_backend.unet, before)


def test_block_swap_holds_the_placeholder_between_forwards_and_restores_after_an_error(sd1_backend):
    before = snapshot(sd1_backend.unet)
    weight = sd1_backend.unet.conv_in.weight
    with pytest.raises(RuntimeError, match="boom"):
        with sd1_backend.training_session(), BlockSwap(sd1_backend.unet, NanDevice(sd1_backend.device)).active():
            assert torch.isnan(sd1_backend.unet.conv_in.weight).all()
            raise RuntimeError("boom")
    assert sd1_backend.unet.conv_in.weight is weight
    assert not any(b._forward_hooks or b._forward_pre_hooks for b in sd1_backend.unet.modules())
    assert_bit_identical(sd1_backend.unet, before)


def test_sequential_offload_trains_the_same_and_leaves_no_hook(sd1_backend, monkeypatch):
    before = snapshot(sd1_backend.unet)
    plain = loop.train(sd1_backend, PAIR, SHORT)
    seen = []

    class Watch(loop.TrainCallbacks):
        def on_step(self, report, network):  # between forwards: accelerate keeps the weights on meta
            seen.append(sd1_backend.unet.conv_in.weight.device.type)

    offloaded_run = loop.train(sd1_backend, PAIR, SHORT.replace(offload="sequential"), callbacks=Watch())
    torch.testing.assert_close(torch.tensor(offloaded_run.losses), torch.tensor(plain.losses), rtol=1e-6, atol=0)
    assert seen == ["meta", "meta"]
    assert not any(hasattr(m, "_hf_hook") or hasattr(m, "_old_forward") for m in sd1_backend.unet.modules())
    assert_bit_identical(sd1_backend.unet, before)


def test_offload_option_choices_and_refusals(sd1_backend):
    assert set(OFFLOAD_MODES.names()) == {"none", "blocks", "sequential"}
    assert TrainConfig().offload == "none"  # configs and slider files from before the option read as no offload
    with pytest.raises(ConfigError, match="offload"):
        TrainConfig().replace(offload="disk")
    with pytest.raises(ConfigError, match="offload = blocks moves each block out"):
        TrainConfig().replace(offload="blocks", gradient_checkpointing=True)
    with pytest.raises(ConfigError, match="offload = sequential puts each layer"):
        TrainConfig().replace(offload="sequential", algo="dora")
    assert len(swap_blocks(sd1_backend.unet)) > 6
    with pytest.raises(ConfigError, match="unknown offload mode 'disk'"):
        offloaded(sd1_backend, "disk")


def test_a_host_that_manages_memory_refuses_offload(sd1_backend, monkeypatch):
    monkeypatch.setattr(type(sd1_backend), "host_manages_memory", True, raising=False)
    with pytest.raises(ConfigError, match="offload = blocks would fight the host's own memory management"):
        loop.train(sd1_backend, PAIR, SHORT.replace(offload="blocks"))
    with offloaded(sd1_backend, "none"):
        pass
