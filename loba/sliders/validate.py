"""What makes a kohya LoRA/LoCon (or LyCORIS LoHa/LoKr/DoRA: lycoris_keys.py) tensor set usable: key names,
partners, shapes, rank, dtype, finite values.

Checked on every read and write (and by the nodes before they apply, bake or merge a slider), so a broken
file is refused with the module and the problem named, instead of being written on or failing deep inside
a host's LoRA code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ..errors import AdapterFileError
from .lycoris_keys import DORA_KEY, SUFFIXES, check_lycoris_module, layout_of

DOWN, UP, ALPHA = "lora_down.weight", "lora_up.weight", "alpha"
KEY = re.compile(r"^(lora_(?:unet|te|te1|te2)_\w+)\.(lora_down\.weight|lora_up\.weight|alpha|"
                 + "|".join(SUFFIXES) + r")$")


def validate_tensors(tensors: Mapping[str, torch.Tensor], where) -> None:
    """Raise AdapterFileError naming `where` (a path or a node input) and the module for the first problem."""
    parts: dict[str, set[str]] = {}
    for key, value in tensors.items():
        match = KEY.match(key)
        if match is None:
            raise AdapterFileError(f"{where}: key '{key}' is not in kohya LoRA form "
                                   "(lora_unet_<module>.lora_down.weight / .lora_up.weight / .alpha, or LyCORIS "
                                   "LoHa hada_*, LoKr lokr_*, DoRA dora_scale); diffusers/peft-format files are not supported")
        if not isinstance(value, torch.Tensor):
            raise AdapterFileError(f"{where}: '{key}' is a {type(value).__name__}, not a tensor")
        parts.setdefault(match.group(1), set()).add(match.group(2))
    for stem, found in sorted(parts.items()):
        if layout_of(found) in ("loha", "lokr"):
            check_lycoris_module(stem, {key: tensors[f"{stem}.{key}"] for key in found}, where)
            continue
        for needed in (DOWN, UP):
            if needed not in found:
                raise AdapterFileError(f"{where}: '{stem}' has no {needed} partner (found: {', '.join(sorted(found))})")
        _check_module(stem, tensors[f"{stem}.{DOWN}"], tensors[f"{stem}.{UP}"], tensors.get(f"{stem}.{ALPHA}"), where)
        if DORA_KEY in found:
            _check_dora(stem, tensors[f"{stem}.{DORA_KEY}"], tensors[f"{stem}.{DOWN}"], where)


def _check_dora(stem: str, scale: torch.Tensor, down: torch.Tensor, where) -> None:
    """dora_scale: one magnitude per input column [1, in(, 1, 1)] or per output row [out, 1(, 1, 1)], finite."""
    if not scale.dtype.is_floating_point or not bool(torch.isfinite(scale).all()):
        raise AdapterFileError(f"{where}: '{stem}' dora_scale is not finite floating point; the file is damaged")
    if scale.ndim != down.ndim or 1 not in tuple(scale.shape[:2]):
        raise AdapterFileError(f"{where}: '{stem}' dora_scale has shape {tuple(scale.shape)}; DoRA needs "
                               "[1, in] or [out, 1] (4-d for convolutions)")


def _check_module(stem: str, down: torch.Tensor, up: torch.Tensor, alpha, where) -> None:
    for name, tensor in (("lora_down", down), ("lora_up", up)) + ((("alpha", alpha),) if alpha is not None else ()):
        if not tensor.dtype.is_floating_point:
            raise AdapterFileError(f"{where}: '{stem}' {name} has dtype {str(tensor.dtype).replace('torch.', '')}; "
                                   "LoRA tensors are floating point (float32, fp16 or bf16)")
    if down.ndim not in (2, 4) or up.ndim != down.ndim or up.shape[1] != down.shape[0] \
            or (up.ndim == 4 and tuple(up.shape[2:]) != (1, 1)):
        raise AdapterFileError(f"{where}: '{stem}' has inconsistent shapes down {tuple(down.shape)}, up {tuple(up.shape)} "
                               "(need down [rank, in(, kh, kw)] and up [out, rank(, 1, 1)])")
    if down.shape[0] == 0 or down.numel() == 0 or up.numel() == 0:
        raise AdapterFileError(f"{where}: '{stem}' has rank or size 0 (down {tuple(down.shape)}, up {tuple(up.shape)})")
    if alpha is not None and alpha.numel() != 1:
        raise AdapterFileError(f"{where}: '{stem}' alpha must be a single number, got shape {tuple(alpha.shape)}")
    for name, tensor in (("lora_down", down), ("lora_up", up)) + ((("alpha", alpha),) if alpha is not None else ()):
        if not bool(torch.isfinite(tensor).all()):
            raise AdapterFileError(f"{where}: '{stem}' {name} holds NaN or infinite values; the file is damaged "
                                   "(or was saved from a diverged training run)")
