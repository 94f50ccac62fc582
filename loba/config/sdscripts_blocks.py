"""sd-scripts' per-block network_args (block_dims, block_alphas, conv_block_dims, conv_block_alphas,
down_lr_weight / mid_lr_weight / up_lr_weight) as LOBA's rank_pattern / alpha_pattern / lr_pattern tables.

sd-scripts numbers the UNet blocks (networks/lora.py get_block_index): SD1/SD2 25 blocks, 0 = none, 1-11 the
down blocks (3 * i + j + 1; downsamplers j = 2), 12 the mid block, 13-24 the up blocks (13 + 3 * i + j;
upsamplers j = 2); SDXL 23 blocks, 1-9 input_blocks 0-8, 10-12 middle_block 0-2, 13-21 output_blocks 0-8.
Each block becomes one regex over LOBA's module names, which are diffusers or LDM (ComfyUI) names.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from ..errors import ConfigError

BLOCKS = {"sd": 25, "sdxl": 23}
DOWN_MID = {"sd": (12, 1), "sdxl": (9, 3)}
# The 3x3 convolutions conv_block_dims applies to (resnet and sampler convolutions, both naming schemes).
CONV_LEAF = r"(.*\.)?(conv1|conv2|conv|in_layers\.2|out_layers\.3|op)$"  # after a block regex, which ends in "\."
SDXL_MID = ("resnets\\.0", "attentions\\.0", "resnets\\.1")


def _diffusers(side: str, i: int, j: int) -> str:
    sampler = "downsamplers" if side == "down" else "upsamplers"
    layers = rf"^{side}_blocks\.{i}\.(attentions|resnets)\.{j}\."
    return rf"{layers}|^{side}_blocks\.{i}\.{sampler}\." if j == 2 else layers


def block_regex(family: str, block: int) -> Optional[str]:
    """The regex of sd-scripts block `block` over module names, or None for blocks that hold no LoRA."""
    if family == "sd":
        if 1 <= block <= 11:
            i, j = divmod(block - 1, 3)
            down = rf"^down_blocks\.{i}\.downsamplers\." if j == 2 else _diffusers("down", i, j)
            return rf"{down}|^input_blocks\.{block}\."
        if block == 12:
            return r"^mid_block\.|^middle_block\."
        if 13 <= block <= 24:
            i, j = divmod(block - 13, 3)
            return rf"{_diffusers('up', i, j)}|^output_blocks\.{block - 13}\."
        return None
    if 2 <= block <= 9:  # input_blocks.0 is conv_in: no LoRA
        i, j = divmod(block - 2, 3)
        down = rf"^down_blocks\.{i}\.downsamplers\." if j == 2 else _diffusers("down", i, j)
        return rf"{down}|^input_blocks\.{block - 1}\."
    if 10 <= block <= 12:
        return rf"^mid_block\.{SDXL_MID[block - 10]}\.|^middle_block\.{block - 10}\."
    if 13 <= block <= 21:
        i, j = divmod(block - 13, 3)
        return rf"{_diffusers('up', i, j)}|^output_blocks\.{block - 13}\."
    return None


def _numbers(name: str, value: Any, cast) -> list:
    items = value.split(",") if isinstance(value, str) else [value] if isinstance(value, (int, float)) else list(value)
    try:
        return [cast(float(str(item).strip())) if str(item).strip() else cast(0) for item in items]
    except ValueError:
        raise ConfigError(name, f"{value!r} is not a comma-separated list of numbers") from None


def family_of(values: dict, sdxl: Optional[bool]) -> str:
    """sdxl when the run says so, else from the list lengths (23 SDXL, 25 SD1/SD2)."""
    if sdxl is not None:
        return "sdxl" if sdxl else "sd"
    for key in ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas"):
        if key in values:
            return "sdxl" if len(_numbers(key, values[key], float)) == BLOCKS["sdxl"] else "sd"
    down = values.get("down_lr_weight")
    return "sdxl" if down is not None and not isinstance(down, str) and len(_numbers("down_lr_weight", down, float)) == 9 else "sd"


def _per_block(name: str, value: Any, family: str, cast) -> list:
    numbers = _numbers(name, value, cast)
    if len(numbers) != BLOCKS[family]:
        raise ConfigError(name, f"{name} must have {BLOCKS[family]} values for {'SDXL' if family == 'sdxl' else 'SD1/SD2'} "
                                f"(sd-scripts' block count), got {len(numbers)}")
    return numbers


def _preset(key: str, text: str, length: int) -> list:
    """sd-scripts' named lr-weight curves (get_block_lr_weight's get_list), NAME or NAME+base."""
    name, _, base = text.strip().partition("+")
    try:
        base_lr = float(base) if base else 0.0
    except ValueError:
        raise ConfigError(key, f"{text!r}: the part after + must be a number, e.g. sine+0.5") from None
    steps = [i / (length - 1) for i in range(length)]
    curves = {"sine": [math.sin(math.pi * s / 2) for s in steps], "cosine": [math.sin(math.pi * s / 2) for s in reversed(steps)],
              "linear": steps, "reverse_linear": list(reversed(steps)), "zeros": [0.0] * length}
    if name not in curves:
        raise ConfigError(key, f"the preset {name!r} is not one of sd-scripts' ({', '.join(curves)}); or give {length} numbers")
    return [value + base_lr for value in curves[name]]


def _lr_weights(values: dict, family: str) -> Optional[list]:
    """sd-scripts' parse_block_lr_kwargs: lists padded with 1 (or cut) to the block count; presets refused."""
    if not any(key in values for key in ("down_lr_weight", "mid_lr_weight", "up_lr_weight")):
        return None
    sides, mid = DOWN_MID[family]

    def side(key: str, length: int) -> list:
        if key not in values:
            return [1.0] * length
        if isinstance(values[key], str) and "," not in values[key] and not values[key].strip().replace(".", "").isdigit():
            return _preset(key, values[key], length)
        numbers = _numbers(key, values[key], float)[:length]
        return numbers + [1.0] * (length - len(numbers))

    weights = side("down_lr_weight", sides) + side("mid_lr_weight", mid) + side("up_lr_weight", sides)
    threshold = float(values.get("block_lr_zero_threshold", 0.0))  # sd-scripts: weights not above it become 0
    weights = [w if w > threshold else 0.0 for w in weights]
    return [1.0] + weights + [1.0] if family == "sdxl" else weights


def block_tables(values: dict, sdxl: Optional[bool]) -> dict[str, Any]:
    """rank_pattern / alpha_pattern / lr_pattern / exclude for the block keys present in `values`."""
    family = family_of(values, sdxl)
    rank: dict[str, int] = {}
    alpha: dict[str, float] = {}
    lr: dict[str, float] = {}
    exclude: list[str] = []
    for conv, prefix in ((True, "conv_block_"), (False, "block_")):  # conv first: the first matching regex wins
        dims = _per_block(f"{prefix}dims", values[f"{prefix}dims"], family, int) if f"{prefix}dims" in values else None
        alphas = _per_block(f"{prefix}alphas", values[f"{prefix}alphas"], family, float) if f"{prefix}alphas" in values else None
        for block in range(BLOCKS[family]):
            regex = block_regex(family, block)
            if regex is None:
                continue
            # block_dims / block_alphas are the linear (and 1x1) layers'; 3x3 convolutions have their own lists.
            regex = f"(?:{regex}){CONV_LEAF}" if conv else f"(?:{regex})(?!{CONV_LEAF})"
            if dims is not None and dims[block] == 0:
                exclude.append(regex)  # sd-scripts makes no module for a block of dim 0
            elif dims is not None:
                rank[regex] = dims[block]
            if alphas is not None:
                alpha[regex] = alphas[block]
    weights = _lr_weights(values, family)
    for block, weight in enumerate(weights or ()):  # indexed by block, as sd-scripts' block_lr_weight[block_idx]
        regex = block_regex(family, block)
        if regex is not None and weight == 0:
            exclude.append(f"(?:{regex})")  # sd-scripts makes no module where the lr weight is 0
        elif regex is not None and weight != 1.0:
            lr[f"(?:{regex})"] = weight
    tables = {"rank_pattern": rank, "alpha_pattern": alpha, "lr_pattern": lr, "exclude": tuple(exclude)}
    return {key: value for key, value in tables.items() if value}
