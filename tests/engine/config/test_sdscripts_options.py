"""sd-scripts' LECO options under their own names: each one accepted (as LOBA's option) or refused with the
reason, per-block dims / alphas / lr weights on the same blocks as sd-scripts' get_block_index."""

from __future__ import annotations

import re

import pytest
from support.tiny_models import tiny_unet

from loba.adapters.targeting import select_targets
from loba.config.runfile import load_run_file
from loba.config.sdscripts import SUPPORT, from_sdscripts
from loba.config.train_config import config_from_dict
from loba.errors import ConfigError
from loba.models.naming import KohyaNames

PROMPTS = '[[prompts]]\ntarget = "van gogh"\n'


def _config(**options):
    return config_from_dict(from_sdscripts(options))


@pytest.mark.parametrize("module, args, algo", [
    ("networks.lora", [], "lora"), ("lycoris.kohya", ["algo=locon"], "lora"), ("lycoris.kohya", ["algo=loha"], "loha"),
    ("lycoris.kohya", ["algo=lokr", "factor=-1"], "lokr"), ("lycoris.kohya", ["algo=lora", "dora_wd=True"], "dora"),
])
def test_network_module_and_algo(module, args, algo):
    assert _config(network_module=module, network_args=args).network.algo == algo


def test_network_args_and_dropouts():
    config = _config(network_args=["conv_dim=8", "conv_alpha=2", "rank_dropout=0.1", "module_dropout=0.2"], network_dropout=0.05)
    net = config.network
    assert (net.conv_dim, net.conv_alpha, net.rank_dropout, net.module_dropout, net.dropout) == (8, 2.0, 0.1, 0.2, 0.05)
    assert _config(network_args={"dropout": 0.3}).network.dropout == 0.3


def test_optimizer_learning_rates_and_saving():
    config = _config(optimizer_type="AdamW8bit", optimizer_args=["weight_decay=0.1", "betas=(0.9,0.99)"],
                     learning_rate=1e-3, unet_lr=2e-4, save_precision="fp16", save_every_n_steps=100, save_model_as="safetensors")
    assert config.optimizer.optimizer == "adamw8bit" and config.optimizer.optimizer_args == {"weight_decay": 0.1, "betas": (0.9, 0.99)}
    assert config.optimizer.learning_rate == 2e-4  # sd-scripts' LECO: unet_lr wins
    assert (config.save_precision, config.save_every_n_steps) == ("fp16", 100)
    assert _config(optimizer_type="Lion").optimizer.optimizer == "lion"


@pytest.mark.parametrize("options, field, message", [
    ({"max_train_epochs": 10}, "max_train_epochs", "not supported for LECO \\(the training loop is step-based only\\)"),
    ({"save_model_as": "ckpt"}, "save_model_as", "safetensors only"),
    ({"network_module": "networks.dylora"}, "network_module", "not supported"),
    ({"network_module": "lycoris.kohya", "network_args": ["algo=ia3"]}, "network_args", "'ia3' is not supported"),
    ({"network_args": ["nope=1"]}, "network_args", "'nope' is not a network argument"),
    ({"network_args": ["conv_dim"]}, "network_args", "not key=value"),
    ({"optimizer_type": "DAdaptation"}, "optimizer_type", "not supported"),
    ({"full_bf16": True}, "full_bf16", "float32"),
    ({"network_args": ["block_dims=1,2,3"]}, "block_dims", "25 values"),
    ({"network_args": ["down_lr_weight=wave"]}, "down_lr_weight", "preset 'wave' is not one of sd-scripts'"),
])
def test_refusals_name_the_option_and_the_reason(options, field, message):
    with pytest.raises(ConfigError, match=message) as error:
        from_sdscripts(options)
    assert error.value.field == field


def test_gradient_accumulation_passes_through_and_reaches_the_config():
    assert from_sdscripts({"gradient_accumulation_steps": 4}) == {"gradient_accumulation_steps": 4}
    assert _config(gradient_accumulation_steps=4).gradient_accumulation_steps == 4


def test_text_encoder_and_start_weight_options_pass_through_under_their_names():
    assert from_sdscripts({"text_encoder_lr": 1e-5, "network_weights": "a.safetensors", "dim_from_weights": True}) == {
        "text_encoder_lr": 1e-5, "network_weights": "a.safetensors", "dim_from_weights": True}
    assert from_sdscripts({"network_train_text_encoder_only": True}) == {"train_text_encoder": "only"}
    # sd-scripts' text_encoder_lr = 0 trains no text encoder: LOBA's default; LOBA's own 0 would mean learning_rate.
    assert from_sdscripts({"text_encoder_lr": 0}) == {}
    assert _config(text_encoder_lr=5e-5).optimizer.text_encoder_lr == 5e-5
    assert _config(network_train_text_encoder_only=True).network.train_text_encoder == "only"


def test_every_listed_option_is_accepted_or_refused():
    assert {"network_module", "network_args", "optimizer_type", "optimizer_args", "unet_lr", "text_encoder_lr", "clip_skip",
            "v2", "v_parameterization", "zero_terminal_snr", "network_weights", "dim_from_weights", "save_model_as",
            "save_precision", "output_name", "save_every_n_steps", "max_train_epochs"} <= set(SUPPORT)


def test_model_keys_in_a_run_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('pretrained_model_name_or_path = "m"\nv2 = true\nv_parameterization = true\nzero_terminal_snr = true\n'
                    'clip_skip = 2\noutput_name = "my_slider"\noutput_dir = "out"\nnetwork_module = "lycoris.kohya"\n'
                    'network_args = ["algo=loha", "conv_dim=2"]\n' + PROMPTS)
    run = load_run_file(path)
    assert (run.prediction_type, run.zero_terminal_snr, run.clip_skip, run.output_name, run.output_dir) == \
        ("v_prediction", True, 2, "my_slider", "out")
    assert (run.config.network.algo, run.config.network.conv_dim) == ("loha", 2)
    path.write_text('pretrained_model_name_or_path = "m"\noutput_name = "../x"\n' + PROMPTS)
    with pytest.raises(ConfigError, match="plain file name"):
        load_run_file(path)


# -- per-block options: sd-scripts' own block numbering (networks/lora.py get_block_index), written out here
def _kohya_block(stem: str, sdxl: bool) -> int:
    name = stem.removeprefix("lora_unet_")
    if sdxl:
        for prefix, base in (("input_blocks_", 1), ("middle_block_", 10), ("output_blocks_", 13)):
            if name.startswith(prefix):
                return base + int(name.split("_")[2])
        return -1
    match = re.search(r"(down|up)_blocks_(\d+)_(resnets|attentions|upsamplers|downsamplers)_(\d+)_", name)
    if match:
        side, i, kind, j = match.group(1), int(match.group(2)), match.group(3), int(match.group(4))
        idx = 3 * i + (2 if kind.endswith("samplers") else j)
        return 1 + idx if side == "down" else 13 + idx
    return 12 if "mid_block_" in name else -1


def _sdxl_layout_unet():
    """SDXL's block layout (3 levels, 2 layers each, transformer depths 0/2/3) at tiny width: the diffusers names
    then number the blocks as the real SDXL's LDM names do (for SD1, sd-scripts numbers diffusers names itself)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(sample_size=8, layers_per_block=2, norm_num_groups=8, attention_head_dim=8,
                                block_out_channels=(32, 64, 64), cross_attention_dim=64, use_linear_projection=True,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                                transformer_layers_per_block=(1, 2, 3), addition_embed_type="text_time",
                                addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 6 * 8)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_block_dims_alphas_and_lr_weights_follow_sd_scripts_blocks(family):
    sdxl = family == "sdxl"
    count = 23 if sdxl else 25
    dims = [b % 5 + 1 for b in range(count)]
    conv_dims = [b % 3 + 6 for b in range(count)]
    alphas = [b / 2 for b in range(count)]
    down = [0.1 * (k + 1) for k in range(9 if sdxl else 12)]
    options = {"network_args": [f"block_dims={','.join(map(str, dims))}", f"block_alphas={','.join(map(str, alphas))}",
                                f"conv_block_dims={','.join(map(str, conv_dims))}", f"down_lr_weight={','.join(map(str, down))}",
                                "mid_lr_weight=0.5", "conv_dim=4"], "sdxl": sdxl}
    config = config_from_dict({k: v for k, v in from_sdscripts(options).items() if k != "sdxl"}).replace(preset="all_linear_conv")
    unet = _sdxl_layout_unet() if sdxl else tiny_unet(family)
    names = KohyaNames(unet, family)
    targets = select_targets(unet, config.network)
    checked = 0
    for spec in targets:
        block = _kohya_block(names.kohya_name(spec.name), sdxl)
        if block < 0:
            continue
        checked += 1
        conv = spec.kind == "locon"
        assert spec.rank == (conv_dims if conv else dims)[block], spec.name
        assert spec.alpha == (alphas[block] if not conv else config.network.conv_alpha), spec.name
        weights = ([1.0] if sdxl else []) + down + [0.5] + [1.0] * 40  # sd-scripts pads a short mid list with 1
        assert spec.lr_multiplier == pytest.approx(weights[block]), spec.name
    assert checked == len(targets) and {spec.kind for spec in targets} == {"lora", "locon"}


def test_block_dim_zero_leaves_the_block_out():
    dims = ["4"] * 25
    dims[12] = "0"
    config = config_from_dict(from_sdscripts({"network_args": [f"block_dims={','.join(dims)}"]}))
    names = [spec.name for spec in select_targets(tiny_unet("sd1"), config.network)]
    assert names and not any(name.startswith("mid_block.") for name in names)


def test_lr_weight_zero_and_block_lr_zero_threshold_leave_blocks_out():
    # sd-scripts indexes the down list by block: entry 0 is block 0 (conv_in, no LoRA), entry 1 block 1, ...
    tables = from_sdscripts({"network_args": ["down_lr_weight=1,0.05,0.5", "block_lr_zero_threshold=0.1"]})
    assert list(tables["lr_pattern"].values()) == [0.5]  # block 2; blocks 3.. stay 1 (no entry)
    config = config_from_dict(tables).replace(preset="all_linear_conv")
    unet = tiny_unet("sd1")
    block_1 = ("down_blocks.0.attentions.0.", "down_blocks.0.resnets.0.")
    assert any(name.startswith(block_1) for name, _ in unet.named_modules())
    names = [spec.name for spec in select_targets(unet, config.network)]
    assert names and not any(name.startswith(block_1) for name in names)


def test_lr_weight_presets_are_sd_scripts_curves():
    import math

    tables = from_sdscripts({"network_args": ["down_lr_weight=sine+0.5", "up_lr_weight=reverse_linear"]})
    weights = list(tables["lr_pattern"].values())
    down = [math.sin(math.pi * (i / 11) / 2) + 0.5 for i in range(12)][1:]  # entry 0 is block 0 (no LoRA)
    up = [i / 11 for i in reversed(range(12))]
    expected = [w for w in down + up if w != 1.0]
    assert weights[:len(down)] == pytest.approx(down)
    assert len(tables["exclude"]) == 1 and weights == pytest.approx(expected[:len(weights)])  # up's last weight is 0
