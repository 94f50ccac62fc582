"""LoHa, LoKr and DoRA adapters: fresh ones change nothing, the hook equals the merged-weight layer of the
formulas ComfyUI/A1111 use, gradients start the learning, state round-trips, the multiplier scales linearly."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from loba.adapters import ADAPTERS, AdapterNetwork
from loba.adapters.lokr import factorization
from loba.adapters.target_spec import TargetSpec

ALGOS = ("loha", "lokr", "dora")


def _layers():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 20), nn.Conv2d(6, 8, 3, stride=2, padding=1))


def _randomize(network: AdapterNetwork) -> None:
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(3)
        for name, param in network.named_parameters():
            param.copy_(param * (1 + 0.1 * torch.randn_like(param)) if "dora_scale" in name else torch.randn_like(param) * 0.2)


def _network(root, algo: str) -> AdapterNetwork:
    return AdapterNetwork([TargetSpec("0", algo, 4, 2.0), TargetSpec("1", algo, 2, 1.0)], root)


def _reference_weight(lora, base) -> torch.Tensor:
    """W + dW from the file tensors, written out independently of the adapter classes."""
    w, scale, shape = base.weight.detach().float(), float(lora.alpha) / lora.rank, base.weight.shape
    if lora.algo == "loha":
        dw = (lora.hada_w1_a @ lora.hada_w1_b) * (lora.hada_w2_a @ lora.hada_w2_b) * scale
        return w + dw.reshape(shape)
    if lora.algo == "lokr":
        return w + (torch.kron(lora.lokr_w1, lora.lokr_w2_a @ lora.lokr_w2_b) * scale).reshape(shape)
    merged = w + (lora.lora_up.weight.flatten(1) @ lora.lora_down.weight.flatten(1)).reshape(shape) * scale
    norm = merged.transpose(0, 1).reshape(shape[1], -1).norm(dim=1).reshape(1, shape[1], *[1] * (w.ndim - 2))
    return merged * lora.dora_scale / (norm + torch.finfo(torch.float32).eps)


def _forward(base, weight, x):
    if isinstance(base, nn.Conv2d):
        return F.conv2d(x, weight, base.bias, base.stride, base.padding)
    return F.linear(x, weight, base.bias)


INPUTS = (torch.randn(3, 5, 12), torch.randn(2, 6, 9, 9))


@pytest.mark.parametrize("algo", ALGOS)
def test_fresh_adapter_changes_nothing_bit_for_bit(algo):
    root = _layers()
    network = _network(root, algo)
    for index, x in enumerate(INPUTS):
        plain = root[index](x)
        with network.attached(root):
            assert torch.equal(root[index](x), plain)


@pytest.mark.parametrize("algo", ALGOS)
def test_hook_equals_the_merged_weight_at_every_strength(algo):
    root = _layers()
    network = _network(root, algo)
    _randomize(network)
    for index, x in enumerate(INPUTS):
        base = root[index]
        lora = network.lora(str(index))
        with torch.no_grad():
            merged = _reference_weight(lora, base)
            for strength in (1.0, 0.5, -1.0):
                network.multiplier = strength
                with network.attached(root):
                    got = base(x)
                weight = base.weight + strength * (merged - base.weight)
                assert (got - _forward(base, weight, x)).abs().max() < 1e-5
                assert (got - base(x)).abs().max() > 1e-3


@pytest.mark.parametrize("algo", ALGOS)
def test_gradients_reach_the_adapter_from_a_fresh_start(algo):
    root = _layers().requires_grad_(False)
    network = _network(root, algo)
    with network.attached(root):
        root[0](INPUTS[0]).square().sum().backward()
    grads = {name: p.grad for name, p in network.named_parameters() if name.startswith("loras.0.")}
    assert any(g is not None and g.abs().sum() > 0 for g in grads.values())
    assert all(p.grad is None for p in root.parameters())


@pytest.mark.parametrize("algo", ALGOS)
def test_state_round_trip_rebuilds_the_same_adapters(algo):
    root = _layers()
    network = _network(root, algo)
    _randomize(network)
    rebuilt = AdapterNetwork.from_state(root, network.module_state())
    assert [(n, lora.algo, lora.rank, float(lora.alpha)) for n, lora in rebuilt.items()] == \
           [(n, lora.algo, lora.rank, float(lora.alpha)) for n, lora in network.items()]
    for index, x in enumerate(INPUTS):
        with torch.no_grad(), network.attached(root):
            expected = root[index](x)
        with torch.no_grad(), rebuilt.attached(root):
            assert torch.equal(root[index](x), expected)


def test_lokr_factorization_is_lycoris_and_other_factorizations_load():
    assert factorization(320) == (16, 20) and factorization(12) == (3, 4) and factorization(7) == (1, 7)
    assert factorization(64, 4) == (4, 16)
    root = _layers()
    network = _network(root, "lokr")
    assert tuple(network.lora("0").lokr_w1.shape) == (4, 3)  # out 20 = 4 * 5, in 12 = 3 * 4
    state = network.module_state()
    state["0"] = {"lokr_w1": torch.randn(2, 6), "lokr_w2_a": torch.randn(10, 4), "lokr_w2_b": torch.randn(4, 2),
                  "alpha": torch.tensor(2.0)}
    rebuilt = AdapterNetwork.from_state(root, state)
    expected = torch.kron(state["0"]["lokr_w1"], state["0"]["lokr_w2_a"] @ state["0"]["lokr_w2_b"]) * 0.5
    assert torch.allclose(rebuilt.lora("0").delta_weight(root[0]), expected)


def test_registry_holds_the_lycoris_adapters():
    assert {"lora", "locon", "loha", "lokr", "dora"} <= set(ADAPTERS.names())
    with pytest.raises(TypeError, match="nn.Linear or nn.Conv2d"):
        ADAPTERS.get("loha")(nn.LayerNorm(4), 2, 1.0)
