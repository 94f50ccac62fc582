"""Adapter dropout (network, rank, module) acts only on the student forward of training, and the EMA of the
adapter weights is saved beside the slider; both are in the checkpoint, so resuming stays exact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from loba.adapters import AdapterNetwork
from loba.adapters.dropout import AdapterDropout
from loba.adapters.target_spec import TargetSpec
from loba.config import TrainConfig
from loba.errors import ConfigError
from loba.prompts import PromptPair, PromptSet
from loba.sliders.kohya import load_slider
from loba.sliders.trained import TrainedSlider, ema_path
from loba.train.loop import train

PROMPTS = PromptSet(entries=(PromptPair(target="a photo of a cat", positive="a photo of a big cat"),))
FAST = TrainConfig().replace(max_denoising_steps=4, max_train_steps=4, learning_rate=1e-3, seed=11)


def _network(algo: str = "lora", **dropout) -> tuple[nn.Module, AdapterNetwork]:
    torch.manual_seed(0)
    root = nn.Sequential(nn.Linear(8, 16)).requires_grad_(False)
    network = AdapterNetwork([TargetSpec("0", algo, 4, 4.0)], root)
    with torch.no_grad():
        for param in network.parameters():
            param.add_(torch.randn_like(param) * 0.3)
    network.dropout = AdapterDropout(**dropout, seed=5)
    return root, network


X = torch.randn(4, 3, 8)


@pytest.mark.parametrize("algo", ["lora", "loha", "lokr", "dora"])
def test_dropout_only_in_training_with_autograd(algo):
    root, plain = _network(algo)
    with torch.no_grad(), plain.attached(root):
        expected = root(X)
    root, network = _network(algo, dropout=0.5, rank_dropout=0.5)
    with network.attached(root):
        with torch.no_grad():  # the partial denoise, teachers and previews run without autograd
            assert torch.equal(root(X), expected)
        network.eval()
        assert torch.equal(root(X), expected)
        network.train()
        dropped = root(X)
    assert not torch.allclose(dropped, expected)
    assert set(network.dropout.state_dict()) == {"cpu"}


def test_zero_dropout_draws_nothing_and_module_dropout_skips_whole_layers():
    root, network = _network()
    with network.attached(root):
        root(X)
    assert network.dropout.state_dict() == {}  # no generator made: old runs unchanged
    root, network = _network(module_dropout=0.5)
    base = root(X).detach()
    with network.attached(root):
        outs = [root(X).detach() for _ in range(20)]
    skipped = sum(torch.equal(out, base) for out in outs)
    assert 0 < skipped < 20


def test_dropout_masks_repeat_from_the_saved_generator_state():
    root, network = _network(dropout=0.3, rank_dropout=0.2, module_dropout=0.1)
    with network.attached(root):
        root(X)
        state = {key: value.clone() for key, value in network.dropout.state_dict().items()}
        first = [root(X).detach() for _ in range(3)]
        network.dropout.load_state_dict(state)
        again = [root(X).detach() for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_dropout_with_gradient_checkpointing_is_refused_and_bounds_hold():
    with pytest.raises(ConfigError, match="gradient_checkpointing"):
        TrainConfig().replace(dropout=0.1, gradient_checkpointing=True)
    with pytest.raises(ConfigError, match="rank_dropout"):
        TrainConfig().replace(rank_dropout=1.0)
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig().replace(ema_decay=1.0)


def test_ema_and_dropout_resume_exactly_and_the_ema_slider_is_saved_beside(sd1_backend, tmp_path):
    config = FAST.replace(save_every_n_steps=2, ema_decay=0.9, dropout=0.1, rank_dropout=0.1, module_dropout=0.1)
    full = train(sd1_backend, PROMPTS, config, out_dir=tmp_path / "full")
    ema = full.network.ema
    assert ema is not None
    raw = full.network.module_state()
    name = next(iter(raw))
    assert not torch.equal(ema.state[name]["lora_up.weight"], raw[name]["lora_up.weight"])
    resumed = train(sd1_backend, PROMPTS, config, out_dir=tmp_path / "resumed",
                    resume=tmp_path / "full" / "checkpoints" / "step-000002.pt")
    assert resumed.losses == full.losses[2:]
    for module, tensors in raw.items():
        for key, tensor in tensors.items():
            assert torch.equal(resumed.network.module_state()[module][key], tensor), (module, key)
            assert torch.equal(resumed.network.ema.state[module][key], ema.state[module][key]), (module, key)
    slider = TrainedSlider(full.network, sd1_backend, config, PROMPTS, 4, False)
    path = slider.save(tmp_path / "out" / "slider.safetensors")
    saved = load_slider(ema_path(path))
    assert ema_path(path).name == "slider-ema.safetensors" and saved.metadata["loba_ema_decay"] == "0.9"
    assert set(saved.tensors) == set(load_slider(path).tensors)
    stem = sd1_backend.kohya_name(name)
    assert torch.equal(saved.tensors[f"{stem}.lora_up.weight"], ema.state[name]["lora_up.weight"])


def test_ema_average_is_the_decayed_mean():
    root, network = _network()
    from loba.adapters.ema import AdapterEMA

    ema = AdapterEMA(network, 0.5)
    start = network.lora("0").lora_up.weight.detach().clone()
    with torch.no_grad():
        network.lora("0").lora_up.weight.add_(1.0)
    ema.update(network)
    assert torch.allclose(ema.state["0"]["lora_up.weight"], start + 0.5)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_dropout_draws_only_in_the_student_forward_of_a_training_step(request, family, monkeypatch):
    """The partial denoise runs with the adapter on (denoise_with_adapter) and the teachers with it off: neither
    may drop; only the student forward (autograd on) does."""
    calls = []
    original = AdapterDropout.skip_module

    def recording(self, device):
        calls.append(torch.is_grad_enabled())
        return original(self, device)

    monkeypatch.setattr(AdapterDropout, "skip_module", recording)
    config = FAST.replace(max_train_steps=1, max_denoising_steps=2, module_dropout=0.1, dropout=0.1, denoise_with_adapter=True,
                          ema_decay=0.9)
    result = train(request.getfixturevalue(f"{family}_backend"), PROMPTS, config)
    assert calls and all(calls)
    assert result.network.ema is not None and set(result.network.ema.state) == set(result.network.names)
