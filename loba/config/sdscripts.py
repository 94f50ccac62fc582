"""sd-scripts' LECO options (train_leco.py / sdxl_train_leco.py) under their own names, turned into LOBA's.

`from_sdscripts(table)` takes a run table that may use sd-scripts' names (a `loba train` TOML, or what
`loba convert-args` parsed from a command line) and returns it with LOBA's: network_module + network_args
become algo / conv_dim / dropouts / per-block tables, optimizer_type becomes optimizer, unet_lr becomes
learning_rate, and so on. Options LOBA cannot honour are refused with the reason; SUPPORT is the README's
parity table.
"""

from __future__ import annotations

import ast
from typing import Any

from ..errors import ConfigError
from .sdscripts_blocks import block_tables

# option -> (status, LOBA's name or what happens)
SUPPORT = {
    "network_module": ("supported", "algo (networks.lora -> lora; lycoris.kohya with algo=locon|lora|loha|lokr, dora_wd -> dora)"),
    "network_args": ("supported", "conv_dim, conv_alpha, algo, dropout, rank_dropout, module_dropout, dora_wd, block_dims, "
                                  "block_alphas, conv_block_dims, conv_block_alphas, down/mid/up_lr_weight"),
    "network_dim": ("supported", "network_dim"),
    "network_alpha": ("supported", "network_alpha"),
    "network_dropout": ("supported", "dropout"),
    "optimizer_type": ("supported", "optimizer (AdamW, AdamW8bit, Lion, SGD, Prodigy)"),
    "optimizer_args": ("supported", "optimizer_args"),
    "learning_rate": ("supported", "learning_rate"),
    "unet_lr": ("supported", "learning_rate (sd-scripts' LECO: unet_lr wins over learning_rate)"),
    "text_encoder_lr": ("supported", "text_encoder_lr (used with train_text_encoder = alongside | only; sd-scripts' 0, "
                                     "no text-encoder training, is LOBA's default train_text_encoder = off)"),
    "network_weights": ("supported", "network_weights (one file or a list; network_weights_multipliers, "
                                     "network_weights_merge = sum | concat | svd)"),
    "dim_from_weights": ("supported", "dim_from_weights"),
    "clip_skip": ("supported", "clip_skip"),
    "v2": ("supported", "v2 (accepted; SD2 is detected from the model's weights)"),
    "v_parameterization": ("supported", "v_parameterization"),
    "zero_terminal_snr": ("supported", "zero_terminal_snr"),
    "fp8_base": ("supported", "fp8_base (the frozen UNet / Flux transformer stored as float8 e4m3, computed in model_dtype)"),
    "save_model_as": ("supported", "safetensors only (ckpt/pt refused: pickles can run code when loaded)"),
    "save_precision": ("supported", "save_precision (float, fp16, bf16)"),
    "output_name": ("supported", "output_name (OUT/<output_name>.safetensors)"),
    "output_dir": ("supported", "loba train --out"),
    "save_every_n_steps": ("supported", "save_every_n_steps (checkpoint + slider-NNNNNN.safetensors every N steps)"),
    "max_train_steps": ("supported", "max_train_steps"),
    "max_train_epochs": ("refused", "not supported for LECO (the training loop is step-based only); use max_train_steps"),
    "max_denoising_steps": ("supported", "max_denoising_steps"),
    "leco_denoise_guidance_scale": ("supported", "leco_denoise_guidance_scale"),
    "prompts_file": ("supported", "prompts_file"),
    "pretrained_model_name_or_path": ("supported", "pretrained_model_name_or_path"),
    "gradient_accumulation_steps": ("supported", "gradient_accumulation_steps (draws per optimizer step)"),
    "full_fp16": ("refused", "the adapter trains in float32 (use mixed_precision = fp16)"),
    "full_bf16": ("refused", "the adapter trains in float32 (use mixed_precision = bf16)"),
    "network_train_text_encoder_only": ("supported", "train_text_encoder = only (sd-scripts' LECO refuses it; LOBA trains "
                                                     "the text encoder alone)"),
}
REFUSED_FLAGS = ("full_fp16", "full_bf16")
# Accepted and without effect on what is trained (memory/speed switches LOBA decides itself, logging, metadata).
IGNORED = {"sdpa", "xformers", "mem_eff_attn", "no_metadata", "network_train_unet_only", "training_comment", "lowram",
           "highvram", "cache_latents", "cache_latents_to_disk", "log_prefix",
           "persistent_data_loader_workers", "max_data_loader_n_workers", "console_log_level", "deepspeed"}
OPTIMIZER_NAMES = {"adamw": "adamw", "adamw8bit": "adamw8bit", "lion": "lion", "sgd": "sgd", "sgdnesterov": "sgd",
                   "prodigy": "prodigy", "adam": "adam"}
NETWORK_ARGS = {"conv_dim": "conv_dim", "conv_alpha": "conv_alpha", "dropout": "dropout", "rank_dropout": "rank_dropout",
                "module_dropout": "module_dropout"}
BLOCK_ARGS = {"block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas", "down_lr_weight", "mid_lr_weight",
              "up_lr_weight", "block_lr_zero_threshold"}


def literal(text: Any) -> Any:
    """sd-scripts reads key=value arguments with ast.literal_eval, falling back to the string."""
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def key_values(name: str, value: Any) -> dict[str, Any]:
    """["k=v", ...] (a command line's nargs='*'), "k=v k=v", or a table -> {k: v}."""
    if isinstance(value, dict):
        return dict(value)
    items = value.split() if isinstance(value, str) else list(value or ())
    pairs = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(name, f"{item!r} is not key=value, e.g. {name} = [\"conv_dim=4\"]")
        pairs[key.strip()] = literal(text.strip())
    return pairs


def _algo(module: str, args: dict[str, Any]) -> str:
    if module in ("networks.lora", "lora"):
        return "lora"
    if module != "lycoris.kohya":
        raise ConfigError("network_module", f"{module!r} is not supported; use networks.lora or lycoris.kohya "
                                            "(algo = lora, locon, loha, lokr; dora_wd = true for DoRA)")
    algo = str(args.pop("algo", "lora")).lower()
    dora = str(args.pop("dora_wd", False)).lower() in ("true", "1")
    if algo in ("lora", "locon"):
        return "dora" if dora else "lora"
    if algo in ("loha", "lokr") and not dora:
        return algo
    raise ConfigError("network_args", f"lycoris algo {algo!r}{' with dora_wd' if dora else ''} is not supported; "
                                      "LOBA trains lora/locon, loha, lokr, and DoRA (algo=lora dora_wd=True)")


def _network(table: dict[str, Any], out: dict[str, Any]) -> None:
    args = key_values("network_args", table.pop("network_args", None))
    module = table.pop("network_module", None)
    if module is not None or "algo" in args:
        out["algo"] = _algo(str(module or "lycoris.kohya"), args)
    for key in ("wd_on_output", "factor", "use_tucker", "use_scalar", "rank_dropout_scale", "train_norm", "preset"):
        if key in args and not (key == "factor" and int(args[key]) == -1) and not (key == "wd_on_output" and not args[key]):
            raise ConfigError("network_args", f"{key}={args[key]!r} is not supported (LOBA: LyCORIS defaults, "
                                              "DoRA over input columns, LoKr factor -1)")
        args.pop(key, None)
    blocks = {key: args.pop(key) for key in list(args) if key in BLOCK_ARGS}
    for key in list(args):
        if key not in NETWORK_ARGS:
            raise ConfigError("network_args", f"{key!r} is not a network argument LOBA knows; known: "
                                              f"{', '.join(sorted(set(NETWORK_ARGS) | BLOCK_ARGS | {'algo', 'dora_wd'}))}")
        out[NETWORK_ARGS[key]] = args.pop(key)
    if "network_dropout" in table:
        value = table.pop("network_dropout")
        if value is not None:
            out["dropout"] = value
    if blocks:
        tables = block_tables(blocks, table.get("sdxl"))
        for key, value in tables.items():
            out[key] = value


def from_sdscripts(table: dict[str, Any]) -> dict[str, Any]:
    """The run table with sd-scripts' option names turned into LOBA's (LOBA's own names pass through)."""
    table = dict(table)
    if "max_train_epochs" in table:
        raise ConfigError("max_train_epochs", "--max_train_epochs is not supported for LECO (the training loop is "
                                              "step-based only); set max_train_steps instead")
    for key in REFUSED_FLAGS:
        if table.get(key):
            raise ConfigError(key, f"{key} is not supported: {SUPPORT[key][1]}")
        table.pop(key, None)
    for key in IGNORED & set(table):
        table.pop(key)
    out: dict[str, Any] = {}
    _network(table, out)
    if "optimizer_type" in table:
        name = str(table.pop("optimizer_type"))
        if name.lower() not in OPTIMIZER_NAMES:
            raise ConfigError("optimizer_type", f"{name!r} is not supported; use one of AdamW, AdamW8bit, Lion, SGD, Prodigy")
        out["optimizer"] = OPTIMIZER_NAMES[name.lower()]
    if "optimizer_args" in table and not isinstance(table["optimizer_args"], dict):
        out["optimizer_args"] = key_values("optimizer_args", table.pop("optimizer_args"))
    if table.pop("network_train_text_encoder_only", False):
        out["train_text_encoder"] = "only"
    if table.get("text_encoder_lr") == 0:
        table.pop("text_encoder_lr")  # sd-scripts: no text-encoder training, LOBA's default; LOBA's 0 would mean learning_rate
    unet_lr = table.pop("unet_lr", None)
    if unet_lr is not None:
        out["learning_rate"] = unet_lr
    _save_model_as(table.pop("save_model_as", None))
    return {**table, **out}


def _save_model_as(value: Any) -> None:
    if value not in (None, "safetensors"):
        raise ConfigError("save_model_as", f"{value!r}: LOBA writes .safetensors only (ckpt/pt are pickles, which can "
                                           "run code when loaded)")
