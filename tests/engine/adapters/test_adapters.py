"""Hook-based LoRA/LoCon: exact no-op at multiplier 0, symmetric +/-, clean detach, float32 masters."""

import pytest
import torch
from support.backends import randomize_up, unet_inputs
from support.tiny_models import tiny_unet
from torch import nn

from loba.adapters import ADAPTERS, AdapterNetwork, LoRAModule, adapter_kind
from loba.adapters.targeting import TargetSpec, select_targets
from loba.config import NetworkConfig
from loba.errors import AdapterFileError, UnsupportedModelError


def unet_network(unet, preset: str = "all_linear_conv") -> AdapterNetwork:
    network = AdapterNetwork(select_targets(unet, NetworkConfig(preset=preset)), unet)
    randomize_up(network)
    return network


def no_hooks_left(module: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in module.modules())


@pytest.fixture(scope="module")
def unet():
    return tiny_unet("sd1")


def test_fresh_adapter_is_a_no_op_with_kohya_init():
    lora = LoRAModule(nn.Linear(8, 6), rank=4, alpha=1.0)
    assert torch.count_nonzero(lora.lora_up.weight) == 0
    assert torch.count_nonzero(lora.lora_down.weight) > 0
    assert torch.equal(lora.delta(torch.randn(3, 8)), torch.zeros(3, 6))
    assert lora.kind == "lora" and float(lora.scale) == 0.25


def test_alpha_zero_means_alpha_equals_rank_as_in_kohya():
    assert float(LoRAModule(nn.Linear(8, 6), rank=4, alpha=0).alpha) == 4.0


def test_multiplier_zero_is_bit_identical_to_the_plain_model(unet):
    x, t, ctx = unet_inputs(unet)
    network = unet_network(unet)
    with torch.no_grad():
        base = unet(x, t, ctx).sample
        with network.attached(unet):
            network.multiplier = 0.0
            untouched = unet(x, t, ctx).sample
            network.multiplier = 1.0
            changed = unet(x, t, ctx).sample
    assert torch.equal(untouched, base)
    assert not torch.allclose(changed, base)


def test_positive_and_negative_multipliers_give_opposite_deltas():
    torch.manual_seed(0)
    root = nn.Sequential(nn.Linear(8, 8))
    network = AdapterNetwork([TargetSpec("0", "lora", 4, 2.0)], root)
    randomize_up(network)
    x = torch.randn(5, 8)
    with torch.no_grad():
        base = root(x)
        with network.attached(root):
            network.multiplier = 1.5
            plus = root(x) - base
            network.multiplier = -1.5
            minus = root(x) - base
    assert torch.count_nonzero(plus) > 0
    torch.testing.assert_close(plus, -minus, rtol=0, atol=1e-6)
    torch.testing.assert_close(plus, 1.5 * network.lora("0").delta(x), rtol=0, atol=1e-6)


def test_attach_detach_leaves_the_model_bit_identical_even_after_an_exception(unet):
    before = {name: t.clone() for name, t in unet.state_dict().items()}
    flags = {name: p.requires_grad for name, p in unet.named_parameters()}
    network = unet_network(unet)
    x, t, ctx = unet_inputs(unet)
    with pytest.raises(RuntimeError, match="boom"):
        with network.attached(unet):
            with torch.no_grad():
                unet(x, t, ctx)
            assert not no_hooks_left(unet)
            raise RuntimeError("boom")
    assert no_hooks_left(unet) and not network.is_attached
    after = unet.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert {name: p.requires_grad for name, p in unet.named_parameters()} == flags
    network.detach()  # idempotent


def test_attach_twice_and_missing_or_mismatched_modules_are_refused(unet):
    network = unet_network(unet, "cross_attention")
    with network.attached(unet):
        with pytest.raises(RuntimeError, match="already attached"):
            network.attach(unet)
    with pytest.raises(UnsupportedModelError, match="does not exist"):
        AdapterNetwork([TargetSpec("nope.to_k", "lora", 2, 1.0)], unet)
    other = tiny_unet("sdxl")  # same names in places, other shapes / missing modules
    with pytest.raises(UnsupportedModelError):
        network.attach(other)
    assert no_hooks_left(other) and no_hooks_left(unet)


def test_masters_stay_float32_on_a_bfloat16_model():
    model = tiny_unet("sd1").to(torch.bfloat16)
    network = unet_network(model, "all_linear_conv")
    x, t, ctx = unet_inputs(model)
    with torch.no_grad(), network.attached(model):
        out = model(x.bfloat16(), t, ctx.bfloat16()).sample
    assert out.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in network.parameters())
    assert all(b.dtype == torch.float32 for b in network.buffers())
    linear = next(lora for _, lora in network.items() if isinstance(lora.lora_down, nn.Linear))
    assert linear.delta(torch.randn(2, linear.lora_down.in_features, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_adapter_math_stays_float32_under_autocast():
    root = nn.Sequential(nn.Linear(8, 8))
    network = AdapterNetwork([TargetSpec("0", "lora", 4, 4.0)], root)
    randomize_up(network)
    x = torch.randn(3, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert network.lora("0").delta_float(x).dtype == torch.float32


def test_gradients_reach_only_the_adapter(unet):
    network = unet_network(unet, "all_linear_conv")
    x, t, ctx = unet_inputs(unet)
    flags = {name: p.requires_grad for name, p in unet.named_parameters()}
    unet.requires_grad_(False)
    try:
        with network.attached(unet):
            unet(x, t, ctx).sample.square().mean().backward()
    finally:
        for name, p in unet.named_parameters():
            p.requires_grad_(flags[name])
    assert all(p.grad is None for p in unet.parameters())
    for _, lora in network.items():
        assert lora.lora_down.weight.grad is not None and lora.lora_up.weight.grad is not None
    assert sum(float(lora.lora_down.weight.grad.abs().sum()) for _, lora in network.items()) > 0


def test_gradient_checkpointing_gives_the_same_gradients():
    model = tiny_unet("sd1").requires_grad_(False)
    network = unet_network(model, "all_linear")
    x, t, ctx = unet_inputs(model)

    def grads():
        network.zero_grad(set_to_none=True)
        with network.attached(model):
            model(x, t, ctx).sample.square().mean().backward()
        return [p.grad.clone() for p in network.parameters()]

    plain = grads()
    model.train()
    model.enable_gradient_checkpointing()
    checkpointed = grads()
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_locon_on_a_strided_3x3_conv_equals_the_merged_weight():
    conv = nn.Conv2d(6, 10, 3, stride=2, padding=1)
    lora = ADAPTERS.get("locon")(conv, 3, 1.5)
    nn.init.normal_(lora.lora_up.weight)
    assert lora.kind == "locon" and adapter_kind(conv) == "locon"
    x = torch.randn(2, 6, 9, 9)
    merged = torch.einsum("or,rikl->oikl", lora.lora_up.weight[:, :, 0, 0], lora.lora_down.weight) * (1.5 / 3)
    expected = nn.functional.conv2d(x, merged, stride=2, padding=1)
    delta = lora.delta(x)
    assert delta.shape == conv(x).shape
    torch.testing.assert_close(delta, expected, rtol=1e-5, atol=1e-5)


def test_registry_kinds_check_the_base_layer():
    assert {"lora", "locon"} <= set(ADAPTERS.names())
    assert adapter_kind(nn.Conv2d(4, 4, 1)) == "lora" and adapter_kind(nn.GroupNorm(2, 4)) is None
    with pytest.raises(TypeError, match="locon"):
        ADAPTERS.get("lora")(nn.Conv2d(4, 4, 3), 2, 1.0)
    with pytest.raises(TypeError, match="lora"):
        ADAPTERS.get("locon")(nn.Linear(4, 4), 2, 1.0)


class HostLinear(nn.Linear):
    """Stands in for comfy.ops' Linear: a subclass whose forward takes *args/**kwargs."""

    def forward(self, *args, **kwargs):
        return super().forward(*args, **kwargs)


def test_subclassed_layers_called_with_keywords_are_adapted():
    root = nn.Sequential(HostLinear(8, 4))
    network = AdapterNetwork([TargetSpec("0", "lora", 2, 1.0)], root)
    randomize_up(network)
    x = torch.randn(3, 8)
    with torch.no_grad():
        base = root[0](input=x)
        with network.attached(root):
            adapted = root[0](input=x)
    torch.testing.assert_close(adapted - base, network.lora("0").delta(x), rtol=0, atol=1e-6)


def test_param_groups_follow_lr_multipliers_and_freeze_zero():
    root = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4))
    specs = [TargetSpec("0", "lora", 2, 1.0, 1.0), TargetSpec("1", "lora", 2, 1.0, 0.5),
             TargetSpec("2", "lora", 2, 1.0, 0.0), TargetSpec("3", "lora", 2, 1.0, 0.5)]
    network = AdapterNetwork(specs, root)
    groups = network.param_groups(1e-3)
    assert [(g["lr"], g["lr_multiplier"], len(g["params"])) for g in groups] == [(1e-3, 1.0, 2), (5e-4, 0.5, 4)]
    assert not any(p.requires_grad for p in network.lora("2").parameters())
    assert network.num_parameters() == 4 * 2 * (4 + 4)


def test_module_state_round_trip_and_from_state(unet):
    network = unet_network(unet, "all_linear_conv")
    state = network.module_state()
    assert set(state) == set(network.names)
    assert all(set(tensors) == {"lora_down.weight", "lora_up.weight", "alpha"} for tensors in state.values())
    rebuilt = AdapterNetwork.from_state(unet, state)
    assert [t.kind for t in rebuilt.targets] == [t.kind for t in network.targets]
    for name in network.names:
        for key, tensor in rebuilt.module_state()[name].items():
            assert torch.equal(tensor, state[name][key])
    x, t, ctx = unet_inputs(unet)
    with torch.no_grad():
        with network.attached(unet):
            first = unet(x, t, ctx).sample
        with rebuilt.attached(unet):
            second = unet(x, t, ctx).sample
    assert torch.equal(first, second)


def test_load_module_state_refuses_other_shapes_and_names(unet):
    network = unet_network(unet, "cross_attention")
    state = network.module_state()
    name = network.names[0]
    bad = {**state, name: {**state[name], "lora_down.weight": torch.zeros(3, 5)}}
    with pytest.raises(AdapterFileError, match=name.replace(".", r"\.")):
        network.load_module_state(bad)
    with pytest.raises(AdapterFileError, match="missing"):
        network.load_module_state({k: v for k, v in state.items() if k != name})


def test_multiplier_zero_skips_the_adapter_compute():
    root = nn.Sequential(nn.Linear(4, 4))
    network = AdapterNetwork([TargetSpec("0", "lora", 2, 1.0)], root)

    def fail(x):
        raise AssertionError("adapter computed at multiplier 0")

    network.lora("0").delta_float = fail
    network.multiplier = 0
    with network.attached(root), torch.no_grad():
        root(torch.randn(2, 4))
    with pytest.raises(ValueError, match="finite"):
        network.multiplier = float("nan")
