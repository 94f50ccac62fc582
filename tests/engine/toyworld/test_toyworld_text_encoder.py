"""The toy world's sampler and `loba eval` apply text-encoder sliders: the lora_te layers load onto its text encoder,
weight 0 is the base model, and the embeddings follow the weight (none cached across weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.toy_models import random_components

from loba.adapters.text_encoder import split_name
from loba.config import TrainConfig
from loba.prompts import PromptPair, PromptSet
from loba.sliders.trained import save_trained_slider
from loba.toyworld.backend import toy_backend
from loba.toyworld.sampling import ToySampler, load_slider_network
from loba.train.loop import build_network


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return random_components(seed=0, tokenizer_folder=tmp_path_factory.mktemp("tokenizer"))


def test_text_encoder_slider_samples_at_each_weight(components, tmp_path):
    backend = toy_backend(components)
    config = TrainConfig().replace(train_text_encoder="only", network_dim=2)
    network = build_network(backend, config)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        for _, lora in network.items():
            lora.lora_up.weight.copy_(torch.randn_like(lora.lora_up.weight) * 0.2)
    path = save_trained_slider(tmp_path / "te.safetensors", network, backend, config, PromptSet(entries=(PromptPair(target="x"),)), 1)
    slider = load_slider_network(path, components.unet, components)
    assert sorted(slider.names) == sorted(network.names) and all(split_name(name) for name in slider.names)
    sampler = ToySampler(components)
    prompts, seeds = ["a red circle", "a blue square"], [5, 6]
    base = sampler.sample(prompts, seeds, None, 0.0, steps=3)
    assert np.array_equal(sampler.sample(prompts, seeds, slider, 0.0, steps=3), base)
    assert not np.array_equal(sampler.sample(prompts, seeds, slider, 1.0, steps=3), base)
    assert np.array_equal(sampler.sample(prompts, seeds, None, 0.0, steps=3), base)  # no slider embedding left cached
    assert not slider.is_attached
