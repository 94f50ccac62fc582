"""p1atdev LECO's YAML files as they are: its train config (prompts_file, pretrained_model, network, train,
save, logging, other) becomes a LOBA run table, and its prompts file (a YAML list of entries whose keys are
sd-scripts' [[prompts]] keys) reads as `[[prompts]]`.

Mapping (p1atdev/LECO config_util.py): pretrained_model.name_or_path / v2 / v_pred / clip_skip ->
pretrained_model_name_or_path / v2 / v_parameterization / clip_skip; network.type lierla (transformer layers)
or c3lier (plus the 3x3 convolutions, same rank and alpha), rank, alpha, training_method -> preset (+ exclude);
train.iterations / lr / optimizer / optimizer_args / lr_scheduler / max_denoising_steps / precision ->
max_train_steps / learning_rate / optimizer / optimizer_args / lr_scheduler / max_denoising_steps /
mixed_precision (the adapter stays float32); save.name / path / per_steps / precision -> output_name /
output_dir / save_every_n_steps / save_precision. logging and other (wandb, xformers) change nothing trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError

PRECISIONS = {"fp32": "float", "float32": "float", "fp16": "fp16", "float16": "fp16", "bf16": "bf16", "bfloat16": "bf16"}
MIXED = {"float": "no", "fp16": "fp16", "bf16": "bf16"}
# (lierla preset, c3lier preset, extra exclude) per training_method (LECO lora.py's create_modules rules).
METHODS = {"full": ("all_linear", "all_linear_conv", ()), "noxattn": ("all_linear", "all_linear_conv", (r"\.attn2\.",)),
           "innoxattn": ("all_linear", "all_linear_conv", (r"\.attn2\.",)), "selfattn": ("attention", "attention", (r"\.attn2\.",)),
           "xattn": ("cross_attention", "cross_attention", ())}
SECTIONS = {"prompts_file", "pretrained_model", "network", "train", "save", "logging", "other"}


def is_leco_config(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("pretrained_model"), dict) and "prompts_file" in data


def _section(data: dict, name: str) -> dict:
    value = data.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(name, f"the LECO config's {name} must be a mapping")
    return value


def _precision(value: Any, name: str) -> str:
    if str(value).lower() not in PRECISIONS:
        raise ConfigError(name, f"{value!r} is not a LECO precision ({', '.join(PRECISIONS)})")
    return PRECISIONS[str(value).lower()]


def _prompts_path(value: Any, base_dir: Path) -> str:
    """LECO resolves prompts_file against the folder it runs in (its examples say ./examples/prompts.yaml);
    the config's own folder first, then the working folder, then the file's name beside the config."""
    path = Path(str(value))
    for candidate in (base_dir / path, Path.cwd() / path, base_dir / path.name):
        if candidate.is_file():
            return str(candidate.resolve())
    return str(value)  # the prompt loader names the missing file


def _network(section: dict) -> dict[str, Any]:
    kind = str(section.get("type", "lierla"))
    if kind not in ("lierla", "c3lier"):
        raise ConfigError("network.type", f"{kind!r} is not a LECO network type (lierla, c3lier)")
    method = str(section.get("training_method", "full"))
    if method not in METHODS:
        raise ConfigError("network.training_method", f"{method!r} is not a LECO training_method ({', '.join(METHODS)})")
    linear, conv, exclude = METHODS[method]
    rank, alpha = section.get("rank", 4), section.get("alpha", 1.0)
    out = {"preset": conv if kind == "c3lier" else linear, "network_dim": rank, "network_alpha": alpha,
           "conv_dim": rank, "conv_alpha": alpha}
    return {**out, "exclude": list(exclude)} if exclude else out


def _train(section: dict) -> dict[str, Any]:
    scheduler = str(section.get("noise_scheduler", "ddim")).lower()
    if scheduler != "ddim":
        raise ConfigError("train.noise_scheduler", f"{scheduler!r}: LOBA's partial denoise is DDIM (LECO's default); "
                                                   "use noise_scheduler: ddim")
    out = {"max_train_steps": section.get("iterations", 500), "learning_rate": section.get("lr", 1e-4),
           "optimizer_type": section.get("optimizer", "adamw"), "lr_scheduler": section.get("lr_scheduler", "constant"),
           "max_denoising_steps": section.get("max_denoising_steps", 50),
           "mixed_precision": MIXED[_precision(section.get("precision", "bfloat16"), "train.precision")]}
    if section.get("optimizer_args"):
        out["optimizer_args"] = str(section["optimizer_args"]).split(" ")  # LECO splits on spaces too
    return out


def from_leco_config(data: dict, base_dir: Path) -> dict:
    """A LECO train config as a LOBA run table (sd-scripts names where they exist); anything else as it is."""
    if not is_leco_config(data):
        return data
    unknown = sorted(set(data) - SECTIONS)
    if unknown:
        raise ConfigError(unknown[0], f"not a section of LECO's config ({', '.join(sorted(SECTIONS))})")
    model = _section(data, "pretrained_model")
    save = _section(data, "save")
    table = {"pretrained_model_name_or_path": model.get("name_or_path"), "prompts_file": _prompts_path(data["prompts_file"], base_dir),
             "v2": bool(model.get("v2", False)), "v_parameterization": bool(model.get("v_pred", False)),
             **_network(_section(data, "network")), **_train(_section(data, "train")),
             "output_name": str(save.get("name", "untitled")), "output_dir": str(save.get("path", "./output")),
             "save_every_n_steps": save.get("per_steps", 200),
             "save_precision": _precision(save.get("precision", "float32"), "save.precision")}
    if model.get("clip_skip") is not None:
        table["clip_skip"] = model["clip_skip"]
    return table
