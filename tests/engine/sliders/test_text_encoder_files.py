"""Text-encoder sliders as files: diffusers' load_lora_weights (kohya conversion, peft) puts the lora_te /
lora_te1 / lora_te2 layers where LOBA trained them, so its text encoders then encode what LOBA's adapters did."""

import pytest
import torch
from support.tiny_models import tiny_pipeline

from loba.adapters.text_encoder import adapter_root, split_name
from loba.config import TrainConfig
from loba.models.diffusers_backend import DiffusersBackend
from loba.prompts import PromptPair, PromptSet
from loba.sliders.kohya import load_slider
from loba.sliders.trained import save_trained_slider
from loba.train.loop import build_network


def _randomize(network, seed=0, scale=0.05):
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for param in network.parameters():
            param.copy_(torch.randn_like(param) * scale)


def _encodings(encoders, ids):
    return [encoder(ids, output_hidden_states=True).hidden_states[-2] for encoder in encoders]


@pytest.mark.parametrize("kind", ["sd1", "sdxl"])
def test_diffusers_load_lora_weights_reproduces_the_text_encoder_adapters(kind, tmp_path):
    pipe = tiny_pipeline(tmp_path / "pipe", kind=kind)
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if kind == "sdxl" else [])
    backend = DiffusersBackend(pipe.unet, encoders, [pipe.tokenizer] * len(encoders), pipe.scheduler.alphas_cumprod)
    config = TrainConfig().replace(train_text_encoder="alongside", network_dim=2, network_alpha=1.0)
    network = build_network(backend, config)
    _randomize(network)
    path = save_trained_slider(tmp_path / "slider.safetensors", network, backend, config, PromptSet(entries=(PromptPair(target="x"),)), 1)
    stems = load_slider(path).module_stems()
    assert sum(stem.startswith("lora_te") for stem in stems) == sum(bool(split_name(n)) for n in network.names) > 0
    ids = torch.tensor([[49406 % 514, 5, 17, 99, 513] + [513] * 3])
    with torch.no_grad():
        base = _encodings(encoders, ids)
        with network.attached(adapter_root(backend, network.names)):
            ours = _encodings(encoders, ids)
        pipe.load_lora_weights(str(path))
        theirs = _encodings(encoders, ids)
    for b, o, t in zip(base, ours, theirs):
        assert (o - b).abs().max() > 1e-3
        torch.testing.assert_close(t, o, rtol=0, atol=1e-5)
