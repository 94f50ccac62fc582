"""UNet module names: diffusers <-> LDM (ComfyUI, original SD/SGM code), and kohya file stems.

kohya files of SD1/SD2 use diffusers module names, SDXL files use LDM names (the UNets kohya's
sd-scripts trains on). A backend whose module names differ from its family's file scheme maps
through these tables. Both directions are computed by walking the model's actual block structure,
so any number of blocks, layers per block and attention/no-attention blocks is handled.

LDM indices (N blocks, L_i resnets in down block i; up blocks have L+1 layers):
  down_blocks.i.resnets.j      -> input_blocks.{1 + sum_{k<i}(L_k+1) + j}.0   (attentions.j -> ....1)
  down_blocks.i.downsamplers.0 -> input_blocks.{next index}.0 (conv -> op)
  mid_block.resnets.0 / attentions.0 / resnets.1 -> middle_block.0 / 1 / 2
  up_blocks.i.resnets.j        -> output_blocks.{sum_{k<i}(L_k+1) + j}.0      (attentions.j -> ....1)
  up_blocks.i.upsamplers.0     -> output_blocks.{last layer of block i}.{2 with attention, else 1}
This is the table of ComfyUI's comfy.utils.unet_to_diffusers (which this module does not import).

Flux.1 files use BFL's own module names (double_blocks.0.img_attn.qkv -> lora_unet_double_blocks_0_img_attn_qkv),
which are ComfyUI's Flux module names: the "flux" scheme is the identity for a model that has double_blocks.
"""

from __future__ import annotations

from torch import nn

from ..errors import UnsupportedModelError

KOHYA_UNET_PREFIX = "lora_unet_"
# Which module-naming scheme the kohya files of each family use.
KOHYA_SCHEMES = {"sd1": "diffusers", "sd2": "diffusers", "sdxl": "ldm", "flux": "flux"}

# Leaf names inside one block, diffusers -> LDM. Attention blocks keep their inner names.
_SUFFIXES = {
    "resnet": {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"},
    "downsampler": {"conv": "op"},
    "upsampler": {"conv": "conv"},
}
# Modules outside the block structure, diffusers -> LDM.
_BASIC = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
          "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
          "class_embedding.linear_1": "label_emb.0.0", "class_embedding.linear_2": "label_emb.0.2",
          "conv_norm_out": "out.0", "conv_out": "out.2"}

Block = tuple[str, str, str]  # (diffusers prefix, LDM prefix, kind)


def naming_scheme(unet: nn.Module) -> str:
    """ "diffusers", "ldm" or "flux" (BFL's Flux names), from the model's top-level children."""
    if hasattr(unet, "double_blocks") and hasattr(unet, "single_blocks"):
        return "flux"
    if hasattr(unet, "down_blocks"):
        return "diffusers"
    if hasattr(unet, "input_blocks"):
        return "ldm"
    raise UnsupportedModelError(f"{type(unet).__name__} is neither a diffusers UNet (down_blocks) "
                                "nor an LDM UNet (input_blocks)")


def _has(module: nn.Module, name: str) -> bool:
    return getattr(module, name, None) is not None


def _count(module: nn.Module, name: str) -> int:
    children = getattr(module, name, None)
    return len(children) if children is not None else 0


def _blocks_from_diffusers(unet: nn.Module) -> list[Block]:
    blocks: list[Block] = []
    n = 1
    for i, down in enumerate(unet.down_blocks):
        for j in range(len(down.resnets)):
            blocks.append((f"down_blocks.{i}.resnets.{j}", f"input_blocks.{n}.0", "resnet"))
            if j < _count(down, "attentions"):
                blocks.append((f"down_blocks.{i}.attentions.{j}", f"input_blocks.{n}.1", "attention"))
            n += 1
        if _count(down, "downsamplers"):
            blocks.append((f"down_blocks.{i}.downsamplers.0", f"input_blocks.{n}.0", "downsampler"))
            n += 1
    if _has(unet, "mid_block"):
        index = 0
        for j in range(len(unet.mid_block.resnets)):
            if 0 < j <= _count(unet.mid_block, "attentions"):
                blocks.append((f"mid_block.attentions.{j - 1}", f"middle_block.{index}", "attention"))
                index += 1
            blocks.append((f"mid_block.resnets.{j}", f"middle_block.{index}", "resnet"))
            index += 1
    n = 0
    for i, up in enumerate(unet.up_blocks):
        layers = len(up.resnets)
        for j in range(layers):
            blocks.append((f"up_blocks.{i}.resnets.{j}", f"output_blocks.{n}.0", "resnet"))
            has_attention = j < _count(up, "attentions")
            if has_attention:
                blocks.append((f"up_blocks.{i}.attentions.{j}", f"output_blocks.{n}.1", "attention"))
            if j == layers - 1 and _count(up, "upsamplers"):
                blocks.append((f"up_blocks.{i}.upsamplers.0", f"output_blocks.{n}.{2 if has_attention else 1}", "upsampler"))
            n += 1
    return blocks


def _ldm_kind(module: nn.Module) -> str | None:
    if _has(module, "in_layers"):
        return "resnet"
    if _has(module, "transformer_blocks"):
        return "attention"
    if _has(module, "op"):
        return "downsampler"
    if _has(module, "conv"):
        return "upsampler"
    return None


def _blocks_from_ldm(unet: nn.Module) -> list[Block]:
    blocks: list[Block] = []
    level, layer, layers_per_level = 0, 0, []
    for n in range(1, len(unet.input_blocks)):
        children = list(unet.input_blocks[n])
        if _ldm_kind(children[0]) == "downsampler":
            blocks.append((f"down_blocks.{level}.downsamplers.0", f"input_blocks.{n}.0", "downsampler"))
            layers_per_level.append(layer)
            level, layer = level + 1, 0
            continue
        blocks.append((f"down_blocks.{level}.resnets.{layer}", f"input_blocks.{n}.0", "resnet"))
        if len(children) > 1 and _ldm_kind(children[1]) == "attention":
            blocks.append((f"down_blocks.{level}.attentions.{layer}", f"input_blocks.{n}.1", "attention"))
        layer += 1
    layers_per_level.append(layer)
    counts = {"resnet": 0, "attention": 0}
    for index, child in enumerate(getattr(unet, "middle_block", None) or []):
        kind = _ldm_kind(child)
        if kind in counts:
            blocks.append((f"mid_block.{kind}s.{counts[kind]}", f"middle_block.{index}", kind))
            counts[kind] += 1
    n = 0
    for i, down_layers in enumerate(reversed(layers_per_level)):
        for j in range(down_layers + 1):
            blocks.append((f"up_blocks.{i}.resnets.{j}", f"output_blocks.{n}.0", "resnet"))
            for k, child in enumerate(list(unet.output_blocks[n])[1:], start=1):
                kind = _ldm_kind(child)
                if kind == "attention":
                    blocks.append((f"up_blocks.{i}.attentions.{j}", f"output_blocks.{n}.{k}", "attention"))
                elif kind == "upsampler":
                    blocks.append((f"up_blocks.{i}.upsamplers.0", f"output_blocks.{n}.{k}", "upsampler"))
            n += 1
    return blocks


def _translate(name: str, prefixes: dict[str, tuple[str, str]], basic: dict[str, str], to_ldm: bool) -> str | None:
    if name in basic:
        return basic[name]
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in prefixes:
            other, kind = prefixes[prefix]
            suffix = ".".join(parts[cut:])
            if kind == "attention":
                return f"{other}.{suffix}"
            table = _SUFFIXES[kind] if to_ldm else {v: k for k, v in _SUFFIXES[kind].items()}
            return f"{other}.{table[suffix]}" if suffix in table else None
    return None


def _leaf_pairs(unet: nn.Module) -> list[tuple[str, str]]:
    """(diffusers name, LDM name) of every Linear/Conv2d leaf that has a counterpart."""
    from_ldm = naming_scheme(unet) == "ldm"
    blocks = _blocks_from_ldm(unet) if from_ldm else _blocks_from_diffusers(unet)
    if from_ldm:
        prefixes = {ldm: (diffusers, kind) for diffusers, ldm, kind in blocks}
        basic = {ldm: diffusers for diffusers, ldm in _BASIC.items() if not diffusers.startswith("class_")}
    else:
        prefixes = {diffusers: (ldm, kind) for diffusers, ldm, kind in blocks}
        basic = _BASIC
    pairs = []
    for name, module in unet.named_modules():
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            continue
        other = _translate(name, prefixes, basic, to_ldm=not from_ldm)
        if other is not None:
            pairs.append((other, name) if from_ldm else (name, other))
    return pairs


def diffusers_to_ldm_map(unet: nn.Module) -> dict[str, str]:
    """{diffusers module name: LDM module name} for every Linear/Conv2d of a diffusers or LDM UNet."""
    return dict(_leaf_pairs(unet))


def ldm_to_diffusers_map(unet: nn.Module) -> dict[str, str]:
    """{LDM module name: diffusers module name}: the inverse of diffusers_to_ldm_map."""
    return {ldm: diffusers for diffusers, ldm in _leaf_pairs(unet)}


def kohya_stem(module_name: str) -> str:
    """The kohya key stem of a UNet module name in the file's scheme: lora_unet_ + dots as underscores."""
    return KOHYA_UNET_PREFIX + module_name.replace(".", "_")


def file_name_map(root: nn.Module, family: str) -> dict[str, str]:
    """{root module name: module name in the kohya file scheme of `family`} for every Linear/Conv2d."""
    if family not in KOHYA_SCHEMES:
        raise UnsupportedModelError(f"unknown model family '{family}'; known: {', '.join(KOHYA_SCHEMES)}")
    scheme = naming_scheme(root)
    if (scheme == "flux") != (family == "flux"):
        raise UnsupportedModelError(f"a {scheme} model has no kohya {family} names")
    if scheme == KOHYA_SCHEMES[family]:
        return {name: name for name, m in root.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    return diffusers_to_ldm_map(root) if scheme == "diffusers" else ldm_to_diffusers_map(root)


def kohya_index(root: nn.Module, family: str, ldm_map: dict[str, str] | None = None) -> dict[str, str]:
    """{kohya stem: root module name}. `ldm_map` ({root name: file-scheme name}) overrides the computed map."""
    names = ldm_map if ldm_map is not None else file_name_map(root, family)
    return {kohya_stem(file_name): root_name for root_name, file_name in names.items()}


class KohyaNames:
    """Both directions of the kohya naming of one model: what a backend's kohya_name/module_name_from_kohya need."""

    def __init__(self, root: nn.Module, family: str, ldm_map: dict[str, str] | None = None):
        self.family = family
        self._to_module = kohya_index(root, family, ldm_map)
        self._to_stem = {module: stem for stem, module in self._to_module.items()}

    def kohya_name(self, module_name: str) -> str:
        try:
            return self._to_stem[module_name]
        except KeyError:
            raise UnsupportedModelError(f"module '{module_name}' has no kohya {self.family} name") from None

    def module_name_from_kohya(self, stem: str) -> str | None:
        return self._to_module.get(stem)
