"""kohya file names of diffusers' FluxTransformer2DModel modules, and the q/k/v fusion they need.

kohya's sd-scripts, ComfyUI and BFL's reference code name Flux modules double_blocks.N.img_attn.qkv,
single_blocks.N.linear1, ... where diffusers splits the fused projections:
    double_blocks.N.img_attn.qkv  <- transformer_blocks.N.attn.to_q | to_k | to_v         (rows in that order)
    double_blocks.N.txt_attn.qkv  <- transformer_blocks.N.attn.add_q_proj | add_k_proj | add_v_proj
    single_blocks.N.linear1       <- single_transformer_blocks.N.attn.to_q | to_k | to_v | proj_mlp
    final_layer.adaLN_modulation.1 <- norm_out.linear with its output halves swapped (diffusers: scale, shift)
A LoRA on each part becomes one LoRA on the fused layer: the downs stacked, the ups block-diagonal (the delta of
every part's rows is its own up @ down, exactly); diffusers' kohya loader recognises that block structure and
splits it back into per-part LoRAs of the original rank. Reading a fused file back gives each part the shared
down and its rows of the up, which is the same delta for any fused LoRA (LOBA's or another trainer's).

Inside LOBA (the adapter network, checkpoints) each diffusers module keeps its own stem, OneTrainer's
lora_transformer_<diffusers name> form; only files are written in the fused lora_unet_ form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import AdapterFileError, UnsupportedModelError
from .naming import KOHYA_UNET_PREFIX

INTERNAL_PREFIX = "lora_transformer_"
DOWN, UP, ALPHA = "lora_down.weight", "lora_up.weight", "alpha"

_DOUBLE = {
    "attn.to_q": ("img_attn.qkv", 0, 3), "attn.to_k": ("img_attn.qkv", 1, 3), "attn.to_v": ("img_attn.qkv", 2, 3),
    "attn.add_q_proj": ("txt_attn.qkv", 0, 3), "attn.add_k_proj": ("txt_attn.qkv", 1, 3),
    "attn.add_v_proj": ("txt_attn.qkv", 2, 3),
    "attn.to_out.0": ("img_attn.proj", 0, 1), "attn.to_add_out": ("txt_attn.proj", 0, 1),
    "norm1.linear": ("img_mod.lin", 0, 1), "norm1_context.linear": ("txt_mod.lin", 0, 1),
    "ff.net.0.proj": ("img_mlp.0", 0, 1), "ff.net.2": ("img_mlp.2", 0, 1),
    "ff_context.net.0.proj": ("txt_mlp.0", 0, 1), "ff_context.net.2": ("txt_mlp.2", 0, 1),
}
_SINGLE = {
    "attn.to_q": ("linear1", 0, 4), "attn.to_k": ("linear1", 1, 4), "attn.to_v": ("linear1", 2, 4),
    "proj_mlp": ("linear1", 3, 4), "proj_out": ("linear2", 0, 1), "norm.linear": ("modulation.lin", 0, 1),
}
_BASIC = {
    "x_embedder": "img_in", "context_embedder": "txt_in", "proj_out": "final_layer.linear",
    "norm_out.linear": "final_layer.adaLN_modulation.1",
    "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
    "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
    "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
    "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
}
SWAPPED = "final_layer.adaLN_modulation.1"  # BFL: (shift, scale); diffusers' AdaLayerNormContinuous: (scale, shift)


@dataclass(frozen=True)
class Part:
    """Where a diffusers module sits in its BFL layer: part `index` of `count`, `rows` output rows."""

    bfl: str
    index: int
    count: int
    rows: int


def bfl_name(module_name: str) -> tuple[str, int, int] | None:
    """(BFL layer name, part index, part count) of a diffusers Flux module name, None when it has none."""
    if module_name in _BASIC:
        return _BASIC[module_name], 0, 1
    for prefix, table, target in (("transformer_blocks.", _DOUBLE, "double_blocks."),
                                  ("single_transformer_blocks.", _SINGLE, "single_blocks.")):
        if module_name.startswith(prefix):
            index, _, leaf = module_name[len(prefix):].partition(".")
            if index.isdigit() and leaf in table:
                layer, part, count = table[leaf]
                return f"{target}{index}.{layer}", part, count
    return None


def internal_stem(module_name: str) -> str:
    return INTERNAL_PREFIX + module_name.replace(".", "_")


def file_stem(bfl: str) -> str:
    return KOHYA_UNET_PREFIX + bfl.replace(".", "_")


class FluxNames:
    """Both directions of one transformer's naming: internal stems for the adapter network, and the fused
    kohya layout of files (to_file / from_file)."""

    def __init__(self, transformer: nn.Module):
        self._parts: dict[str, Part] = {}
        self._module_of_stem: dict[str, str] = {}
        for name, module in transformer.named_modules():
            where = bfl_name(name) if isinstance(module, nn.Linear) else None
            if where is not None:
                self._parts[name] = Part(*where, rows=module.out_features)
                self._module_of_stem[internal_stem(name)] = name
        self._groups: dict[str, list[tuple[str, Part]]] = {}
        for name, part in self._parts.items():
            self._groups.setdefault(part.bfl, []).append((name, part))
        for members in self._groups.values():
            members.sort(key=lambda item: item[1].index)

    def kohya_name(self, module_name: str) -> str:
        if module_name not in self._parts:
            raise UnsupportedModelError(f"module '{module_name}' has no kohya Flux name")
        return internal_stem(module_name)

    def module_name_from_kohya(self, stem: str) -> str | None:
        return self._module_of_stem.get(stem)

    def to_file(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Internal per-module tensors -> the fused kohya file tensors (alpha = rank, the scale in the up)."""
        states = _by_stem(tensors)
        out: dict[str, torch.Tensor] = {}
        for stem, state in states.items():
            if not stem.startswith(INTERNAL_PREFIX):
                out.update({f"{stem}.{key}": value for key, value in state.items()})  # text-encoder layers
        for bfl, members in self._groups.items():
            present = {name: states[internal_stem(name)] for name, _ in members if internal_stem(name) in states}
            if present:
                out.update(_fuse(bfl, members, present))
        return out

    def from_file(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A fused kohya Flux file's tensors -> internal per-module ones (each part: the shared down, its up rows).
        Stems of no Flux layer pass through unchanged (the caller reports them as foreign)."""
        by_file = {file_stem(bfl): bfl for bfl in self._groups}
        out: dict[str, torch.Tensor] = {}
        for stem, state in _by_stem(tensors).items():
            bfl = by_file.get(stem)
            if bfl is None:
                out.update({f"{stem}.{key}": value for key, value in state.items()})
                continue
            out.update(_split(stem, self._groups[bfl], state))
        return out


def _by_stem(tensors: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    states: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        suffix = next((s for s in (DOWN, UP, ALPHA) if key.endswith("." + s)), None)
        if suffix is None:
            raise AdapterFileError(f"Flux files hold plain LoRA (lora_down/lora_up/alpha) only; '{key}' is not one "
                                   "(set algo = lora for Flux sliders)")
        states.setdefault(key[: -len(suffix) - 1], {})[suffix] = value
    return states


def _swap_halves(up: torch.Tensor) -> torch.Tensor:
    first, second = up.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _fuse(bfl: str, members: list[tuple[str, Part]], present: dict[str, dict]) -> dict[str, torch.Tensor]:
    """One LoRA on the BFL layer whose delta is, row block by row block, each present part's own."""
    downs, ups = [], []
    for name, _ in members:
        if name in present:
            state = present[name]
            down, up = state[DOWN].float(), state[UP].float()
            alpha = float(state[ALPHA]) if ALPHA in state else down.shape[0]
            downs.append(down)
            ups.append(up * (alpha / down.shape[0]))  # diffusers ignores alpha on some layers: fold it in
    rank = sum(d.shape[0] for d in downs)
    up = torch.zeros(sum(part.rows for _, part in members), rank)
    row = col = 0
    taken = iter(ups)
    for name, part in members:
        if name in present:
            block = next(taken)
            up[row:row + part.rows, col:col + block.shape[1]] = block
            col += block.shape[1]
        row += part.rows
    if bfl == SWAPPED:
        up = _swap_halves(up)
    stem = file_stem(bfl)
    return {f"{stem}.{DOWN}": torch.cat(downs, dim=0), f"{stem}.{UP}": up, f"{stem}.{ALPHA}": torch.tensor(float(rank))}


def _split(stem: str, members: list[tuple[str, Part]], state: dict) -> dict[str, torch.Tensor]:
    if DOWN not in state or UP not in state:
        raise AdapterFileError(f"'{stem}' lacks its lora_down or lora_up weight")
    up = state[UP]
    if sum(part.rows for _, part in members) != up.shape[0]:
        raise AdapterFileError(f"'{stem}' has {up.shape[0]} output rows; this Flux model's layer has "
                               f"{sum(part.rows for _, part in members)}: the file was made for another model")
    if members[0][1].bfl == SWAPPED:
        up = _swap_halves(up)
    alpha = state.get(ALPHA, torch.tensor(float(state[DOWN].shape[0])))
    out, row = {}, 0
    for name, part in members:
        internal = internal_stem(name)
        out[f"{internal}.{DOWN}"] = state[DOWN]
        out[f"{internal}.{UP}"] = up[row:row + part.rows].contiguous()
        out[f"{internal}.{ALPHA}"] = alpha
        row += part.rows
    return out
