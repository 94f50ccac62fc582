"""`loba convert-args`: an sd-scripts LECO command line (train_leco.py / sdxl_train_leco.py) as a LOBA run file.

    loba convert-args --out run.toml -- accelerate launch sdxl_train_leco.py --pretrained_model_name_or_path=x ...

The options keep their meaning (loba.config.sdscripts turns them into LOBA's names and refuses what LOBA
cannot do, with the reason); the file is checked like `loba train` reads it, and the command prints the
`loba train` line that runs it.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
from typing import Any

from ..errors import ConfigError

SCRIPTS = {"train_leco.py": False, "sdxl_train_leco.py": True}
FLAGS = {"v2", "v_parameterization", "zero_terminal_snr", "fp8_base", "gradient_checkpointing", "sdpa", "xformers", "mem_eff_attn",
         "dim_from_weights", "network_train_unet_only", "network_train_text_encoder_only", "no_metadata", "lowram",
         "highvram", "full_fp16", "full_bf16", "cache_latents", "cache_latents_to_disk", "deepspeed",
         "persistent_data_loader_workers", "scale_v_pred_loss_like_noise_pred", "no_half_vae"}
MULTI = {"network_args", "optimizer_args", "lr_scheduler_args"}
STRINGS = {"output_name", "output_dir", "prompts_file", "pretrained_model_name_or_path", "network_module", "optimizer_type",
           "lr_scheduler", "save_precision", "mixed_precision", "save_model_as", "network_weights", "training_comment",
           "logging_dir", "log_with", "vae"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="the run file to write (TOML)")
    parser.add_argument("command_line", nargs=argparse.REMAINDER,
                        help="the sd-scripts command line after --, or one quoted string")


def _value(key: str, text: str) -> Any:
    if key in STRINGS:
        return text
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_command_line(tokens: list[str]) -> dict[str, Any]:
    """The script's own options ({name: value}); `sdxl` set for sdxl_train_leco.py."""
    if len(tokens) == 1 and " " in tokens[0]:
        tokens = shlex.split(tokens[0])
    tokens = [t for t in tokens if t != "--"] if tokens[:1] == ["--"] else tokens
    scripts = [i for i, t in enumerate(tokens) if t.endswith(".py")]
    table: dict[str, Any] = {}
    if scripts:
        script = Path(tokens[scripts[0]]).name
        if script not in SCRIPTS:
            raise ConfigError("command_line", f"{script} is not an sd-scripts LECO script (train_leco.py, sdxl_train_leco.py)")
        if SCRIPTS[script]:
            table["sdxl"] = True
        tokens = tokens[scripts[0] + 1:]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise ConfigError("command_line", f"unexpected {token!r}: options look like --name=value or --name value")
        key, sep, text = token[2:].partition("=")
        key = key.replace("-", "_")
        i += 1
        if key in MULTI:
            values = [text] if sep else []
            while not sep and i < len(tokens) and not tokens[i].startswith("--"):
                values.append(tokens[i])
                i += 1
            table[key] = values
        elif key in FLAGS and not sep:
            table[key] = True
        else:
            if not sep:
                if i >= len(tokens):
                    raise ConfigError(key, f"--{key} needs a value")
                text, i = tokens[i], i + 1
            table[key] = _value(key, text)
    return table


def convert(tokens: list[str], out: Path) -> tuple[Path, str]:
    """Write the run file; returns (its path, the `loba train` command that runs it)."""
    from ..config.runfile import MODEL_KEYS
    from ..config.sdscripts import from_sdscripts
    from ..config.toml_write import dumps
    from ..config.train_config import config_from_dict
    from ..prompts.loader import training_option_keys
    from ..sliders.atomic import atomic_write_text

    table = from_sdscripts(parse_command_line(tokens))
    table.setdefault("output_dir", "output")
    for key in ("prompts_file", "output_dir"):  # sd-scripts reads them from the working folder; a run file from its own
        table[key] = os.path.relpath(Path(table[key]).resolve(), Path(out).resolve().parent) if key in table else None
    if table["prompts_file"] is None:
        del table["prompts_file"]
    training = training_option_keys()
    unknown = sorted(set(table) - training - set(MODEL_KEYS))
    if unknown:
        raise ConfigError(unknown[0], f"--{unknown[0]} is not an sd-scripts LECO option LOBA knows")
    config_from_dict({k: v for k, v in table.items() if k in training}, where="the command line")
    atomic_write_text(out, dumps(table, "Converted from an sd-scripts LECO command line by `loba convert-args`."))
    return Path(out), f"loba train {shlex.quote(str(out))}   (output folder: output_dir, or pass --out DIR)"


def run(args: argparse.Namespace) -> int:
    path, command = convert(list(args.command_line), args.out)
    print(f"wrote {path}; run it with:\n  {command}")
    return 0
