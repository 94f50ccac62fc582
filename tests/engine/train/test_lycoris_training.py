"""Training LoHa, LoKr and DoRA sliders through the run facade on tiny SD1 and SDXL models: they learn, the
model is left bit-identical, and the saved file rebuilds the trained adapters exactly."""

from __future__ import annotations

import pytest
import torch
from support.backends import assert_bit_identical, snapshot

from loba.config import TrainConfig
from loba.prompts import PromptPair, PromptSet
from loba.sliders.kohya import load_slider, network_from_file
from loba.train.run import RunRequest, run_training

PROMPTS = PromptSet(entries=(PromptPair(target="a photo of a cat", positive="a photo of a big cat"),))


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
@pytest.mark.parametrize("algo", ["loha", "lokr", "dora"])
def test_lycoris_sliders_train_and_save(request, tmp_path, family, algo):
    backend = request.getfixturevalue(f"{family}_backend")
    config = TrainConfig().replace(algo=algo, preset="all_linear_conv", max_denoising_steps=2, max_train_steps=1,
                                   learning_rate=1e-2, seed=3)
    before = snapshot(backend.unet)
    slider = run_training(RunRequest(PROMPTS, config, backend=backend))
    assert_bit_identical(backend.unet, before)
    assert all(torch.isfinite(torch.tensor(slider.losses)))
    state = slider.network.module_state()
    moved = [name for name, tensors in state.items()
             if any(float(t.abs().max()) > 0 for key, t in tensors.items() if key in ("hada_w2_a", "lokr_w2_b", "lora_up.weight"))]
    assert moved, "training changed none of the adapters' zero-initialized factors"
    path = slider.save(tmp_path / "s.safetensors")
    rebuilt = network_from_file(load_slider(path), backend.unet, backend.module_name_from_kohya)
    for name, tensors in rebuilt.module_state().items():
        for key, tensor in tensors.items():
            assert torch.equal(tensor, state[name][key]), (name, key)
