"""Targeting presets on diffusers and LDM names, include/exclude, per-layer patterns, the report."""

import re

import pytest
from support.tiny_models import tiny_unet
from torch import nn

from loba.adapters import AdapterNetwork
from loba.adapters.targeting import TARGETING_PRESETS, adapter_parameters, describe, preset_families, select_targets
from loba.config import NetworkConfig
from loba.errors import ConfigError

UNETS = {}


def unet(kind: str, layers: int):
    if (kind, layers) not in UNETS:
        UNETS[kind, layers] = tiny_unet(kind, layers_per_block=layers)
    return UNETS[kind, layers]


def names(root, preset: str, **options) -> set[str]:
    return {t.name for t in select_targets(root, NetworkConfig(preset=preset, **options))}


MODELS = [("sd1", 1), ("sd1", 2), ("sdxl", 1), ("sdxl", 2)]
ATTENTION_LEAF = re.compile(r"\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$")
RESNET_LEAF = re.compile(r"\.resnets\.\d+\.(conv1|conv2|time_emb_proj|conv_shortcut)$")


@pytest.mark.parametrize("kind,layers", MODELS)
def test_presets_select_the_expected_families(kind, layers):
    root = unet(kind, layers)
    attention = names(root, "attention")
    cross = names(root, "cross_attention")
    attention_mlp = names(root, "attention_mlp")
    all_linear = names(root, "all_linear")
    all_conv = names(root, "all_linear_conv")
    no_cross = names(root, "no_cross_attention")

    assert attention and all(ATTENTION_LEAF.search(n) for n in attention)
    assert any(".attn1." in n for n in attention) and any(n.endswith("to_out.0") for n in attention)
    assert cross == {n for n in attention if ".attn2." in n} and len(cross) * 2 == len(attention)
    assert attention_mlp - attention == {n for n in attention_mlp if ".ff.net." in n} != set()
    assert attention_mlp < all_linear
    assert all_linear - attention_mlp == {n for n in all_linear if n.endswith(("proj_in", "proj_out"))}
    assert all_linear < all_conv
    conv_part = all_conv - all_linear
    assert conv_part and all(RESNET_LEAF.search(n) or "samplers.0.conv" in n for n in conv_part)
    assert any(n.endswith("time_emb_proj") for n in conv_part) and any("downsamplers" in n for n in conv_part)
    assert not {"conv_in", "conv_out", "time_embedding.linear_1"} & all_conv
    assert no_cross == {n for n in all_conv if ".attn2." not in n}
    assert any(n.endswith("conv1") for n in no_cross)


def test_kinds_and_default_ranks_follow_the_layer_type():
    cfg = NetworkConfig(preset="all_linear_conv", network_dim=4, network_alpha=2.0, conv_dim=3, conv_alpha=1.5)
    root = unet("sd1", 1)
    for spec in select_targets(root, cfg):
        module = root.get_submodule(spec.name)
        is_kxk = isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1)
        assert spec.kind == ("locon" if is_kxk else "lora")
        assert (spec.rank, spec.alpha) == ((3, 1.5) if is_kxk else (4, 2.0))
        assert spec.lr_multiplier == 1.0


class FakeLdmUNet(nn.Module):
    """Only names matter to the presets: leaves of ComfyUI's UNetModel at their LDM paths."""

    def __init__(self, leaves: dict[str, nn.Module]):
        super().__init__()
        for name, module in leaves.items():
            parent = self
            *path, leaf = name.split(".")
            for part in path:
                if not hasattr(parent, part):
                    parent.add_module(part, nn.Module())
                parent = getattr(parent, part)
            parent.add_module(leaf, module)


LDM_EXPECTED = {  # name -> presets that must select it
    "input_blocks.1.1.transformer_blocks.0.attn1.to_q": {"attention", "attention_mlp", "all_linear", "all_linear_conv",
                                                          "no_cross_attention"},
    "middle_block.1.transformer_blocks.0.attn2.to_out.0": {"attention", "cross_attention", "attention_mlp", "all_linear",
                                                            "all_linear_conv"},
    "output_blocks.3.1.transformer_blocks.0.ff.net.0.proj": {"attention_mlp", "all_linear", "all_linear_conv", "no_cross_attention"},
    "output_blocks.3.1.proj_in": {"all_linear", "all_linear_conv", "no_cross_attention"},
    "input_blocks.1.0.in_layers.2": {"all_linear_conv", "no_cross_attention"},
    "input_blocks.1.0.emb_layers.1": {"all_linear_conv", "no_cross_attention"},
    "middle_block.2.out_layers.3": {"all_linear_conv", "no_cross_attention"},
    "output_blocks.0.0.skip_connection": {"all_linear_conv", "no_cross_attention"},
    "input_blocks.3.0.op": {"all_linear_conv", "no_cross_attention"},
    "output_blocks.2.1.conv": {"all_linear_conv", "no_cross_attention"},
    "output_blocks.5.2.conv": {"all_linear_conv", "no_cross_attention"},
    "input_blocks.0.0": set(),
    "out.2": set(),
    "time_embed.0": set(),
    "label_emb.0.0": set(),
}


def ldm_module(name: str) -> nn.Module:
    if name.endswith(("in_layers.2", "out_layers.3", ".op", ".conv", "input_blocks.0.0", "out.2")):
        return nn.Conv2d(4, 4, 3)
    if name.endswith("skip_connection") or name.endswith("proj_in"):
        return nn.Conv2d(4, 4, 1)
    return nn.Linear(4, 4)


@pytest.mark.parametrize("name", list(LDM_EXPECTED))
def test_presets_work_on_ldm_names(name):
    module = ldm_module(name)
    chosen = {preset for preset, predicate in TARGETING_PRESETS.items() if predicate(name, module)}
    assert chosen == LDM_EXPECTED[name]


def test_ldm_module_tree_selection():
    root = FakeLdmUNet({name: ldm_module(name) for name in LDM_EXPECTED})
    assert names(root, "cross_attention") == {"middle_block.1.transformer_blocks.0.attn2.to_out.0"}
    assert "input_blocks.3.0.op" in names(root, "all_linear_conv")


def test_presets_only_pick_linear_and_conv_layers():
    to_q = "input_blocks.1.1.transformer_blocks.0.attn1.to_q"
    root = FakeLdmUNet({"input_blocks.1.1.proj_in": nn.GroupNorm(2, 4), to_q: nn.Linear(4, 4)})
    assert names(root, "all_linear") == {to_q}


def test_include_and_exclude():
    root = unet("sd1", 1)
    base = names(root, "cross_attention")
    added = names(root, "cross_attention", include=(r"^conv_in$", r"time_embedding\.linear_1"))
    assert added - base == {"conv_in", "time_embedding.linear_1"}
    trimmed = names(root, "cross_attention", exclude=(r"\.to_k$", r"^up_blocks"))
    assert trimmed == {n for n in base if not n.endswith(".to_k") and not n.startswith("up_blocks")}
    assert names(root, "cross_attention", include=("conv_in",), exclude=("conv_in",)) == base


def test_rank_alpha_and_lr_patterns_first_match_wins():
    root = unet("sd1", 1)
    cfg = NetworkConfig(preset="all_linear_conv", network_dim=4, conv_dim=2,
                        rank_pattern={r"attn2": 8, r"to_k": 16, r"resnets\.0\.conv1": 6},
                        alpha_pattern={r"mid_block": 0.5},
                        lr_pattern={r"^up_blocks": 2.0, r"proj_": 0.0})
    specs = {t.name: t for t in select_targets(root, cfg)}
    assert specs["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"].rank == 8  # attn2 listed first
    assert specs["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k"].rank == 16
    assert specs["down_blocks.0.resnets.0.conv1"].rank == 6
    assert specs["down_blocks.0.resnets.0.conv2"].rank == 2
    assert specs["mid_block.attentions.0.transformer_blocks.0.attn1.to_q"].alpha == 0.5
    assert specs["mid_block.resnets.0.conv1"].alpha == 0.5
    assert specs["up_blocks.1.attentions.0.proj_in"].lr_multiplier == 2.0
    assert specs["down_blocks.0.attentions.0.proj_in"].lr_multiplier == 0.0
    assert specs["down_blocks.0.resnets.0.conv2"].lr_multiplier == 1.0


@pytest.mark.parametrize("kind,layers", MODELS)
@pytest.mark.parametrize("preset", ["attention", "all_linear", "all_linear_conv"])
def test_report_counts_equal_the_real_adapter(kind, layers, preset):
    root = unet(kind, layers)
    targets = select_targets(root, NetworkConfig(preset=preset, network_dim=3, conv_dim=2, rank_pattern={"attn1": 5}))
    report = describe(targets, root)
    network = AdapterNetwork(targets, root)
    assert report.num_parameters == network.num_parameters()
    assert report.num_modules == len(targets) == sum(report.by_kind.values())
    assert all(len(v) <= 3 for v in report.examples.values())
    assert str(report.num_modules) in report.summary()


def test_adapter_parameters_formula():
    assert adapter_parameters(select_targets(nn.Sequential(nn.Linear(5, 7)), NetworkConfig(include=("0",), network_dim=2))[0],
                              nn.Linear(5, 7)) == 2 * (5 + 7)


@pytest.mark.parametrize("field", ["include", "exclude"])
def test_bad_regex_names_the_field_and_pattern(field):
    with pytest.raises(ConfigError, match=rf"{field}: pattern '\(unclosed' is not a valid regular expression"):
        select_targets(unet("sd1", 1), NetworkConfig(**{field: ("(unclosed",)}))


@pytest.mark.parametrize("field", ["rank_pattern", "alpha_pattern", "lr_pattern"])
def test_bad_pattern_tables(field):
    with pytest.raises(ConfigError, match=field):
        select_targets(unet("sd1", 1), NetworkConfig(**{field: {"[": 1}}))


@pytest.mark.parametrize("rank", [0, -2, 2.5, "x"])
def test_invalid_pattern_ranks(rank):
    with pytest.raises(ConfigError, match="rank_pattern"):
        select_targets(unet("sd1", 1), NetworkConfig(rank_pattern={"attn": rank}))


def test_empty_selection_says_how_many_modules_were_scanned():
    root = unet("sd1", 1)
    scanned = sum(1 for _, m in root.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    with pytest.raises(ConfigError, match=rf"preset: .*none of the {scanned} .*try preset"):
        select_targets(root, NetworkConfig(preset="attention", exclude=("attn",)))
    with pytest.raises(ConfigError, match="preset"):
        select_targets(root, NetworkConfig(preset="no_such_preset"))


def test_comfyui_ldm_unet_selects_the_same_layers_as_diffusers():
    from support.comfy_unets import comfy_ldm_unet

    from loba.models.naming import diffusers_to_ldm_map

    for kind in ("sd1", "sdxl"):
        diffusers_unet, ldm_unet = unet(kind, 2), comfy_ldm_unet(kind, 2)
        mapping = diffusers_to_ldm_map(diffusers_unet)
        for preset in TARGETING_PRESETS.names():
            if kind not in preset_families(preset):
                continue  # Flux presets: test_flux_presets.py
            assert {mapping[n] for n in names(diffusers_unet, preset)} == names(ldm_unet, preset), preset
