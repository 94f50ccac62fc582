"""Diffusers modules <-> ONE original-format (LDM / CompVis / SGM) checkpoint, the layout users' files have.

The file has `model.diffusion_model.*` UNet keys, `first_stage_model.*` VAE keys and the text encoders
under their original prefixes. The key tables follow the well-known diffusers -> original conversion,
generalized to any number of blocks and layers per block (tiny and toy models too), and are computed
from the modules' actual block structure. Every tensor must find a name: an unmapped key raises
instead of silently dropping weights. The inverse (`ldm_to_diffusers`) is the SD1 layout, used to load
LOBA's own files without diffusers' single-file machinery (which wants a config folder or the Hub).
"""

from __future__ import annotations

import torch
from torch import nn

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_TEXT_PREFIX = "cond_stage_model.transformer."
# Where each family's text encoders live in an original checkpoint, and in which layout.
TEXT_ENCODER_LAYOUTS = {
    "sd1": [("text_encoder", SD1_TEXT_PREFIX, "hf_clip")],
    "sd2": [("text_encoder", "cond_stage_model.model.", "open_clip")],
    "sdxl": [("text_encoder", "conditioner.embedders.0.transformer.", "hf_clip"),
             ("text_encoder_2", "conditioner.embedders.1.model.", "open_clip")],
}

# UNet modules outside the block structure, diffusers -> LDM.
_UNET_TOP_LEVEL = {"conv_in.": "input_blocks.0.0.", "time_embedding.linear_1.": "time_embed.0.",
                   "time_embedding.linear_2.": "time_embed.2.", "add_embedding.linear_1.": "label_emb.0.0.",
                   "add_embedding.linear_2.": "label_emb.0.2.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
# Inside a UNet resnet block, diffusers -> LDM (attention blocks keep their inner names).
_UNET_RESNET = {"norm1.": "in_layers.0.", "conv1.": "in_layers.2.", "time_emb_proj.": "emb_layers.1.",
                "norm2.": "out_layers.0.", "conv2.": "out_layers.3.", "conv_shortcut.": "skip_connection."}
# Inside a VAE resnet / mid attention block, diffusers -> LDM.
_VAE_RESNET = {"norm1.": "norm1.", "conv1.": "conv1.", "norm2.": "norm2.", "conv2.": "conv2.", "conv_shortcut.": "nin_shortcut."}
_VAE_ATTENTION = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}
_KEEP = {"": ""}  # an inner table that keeps every name
# Inside one transformer layer, transformers CLIP -> OpenCLIP (q/k/v are fused separately).
_OPEN_CLIP_LAYER = {"layer_norm1.": "ln_1.", "layer_norm2.": "ln_2.", "self_attn.out_proj.": "attn.out_proj.",
                    "mlp.fc1.": "mlp.c_fc.", "mlp.fc2.": "mlp.c_proj."}
# Buffers that modules rebuild themselves and original checkpoints may omit.
_DERIVED = ("embeddings.position_ids",)

Blocks = dict[str, tuple[str, dict[str, str]]]  # {diffusers prefix: (LDM prefix, table for the rest of the key)}


def _rename(key: str, table: dict[str, str]) -> str | None:
    """Replace the first matching prefix of `key` from `table`; None when nothing matches."""
    for old, new in table.items():
        if key.startswith(old):
            return new + key[len(old):]
    return None


def _unmapped(kind: str, keys: list[str]) -> None:
    if keys:
        raise KeyError(f"{kind} keys without a counterpart: {keys[:5]}{' ...' if len(keys) > 5 else ''}")


def block_key_to_ldm(key: str, blocks: Blocks) -> str | None:
    """The LDM name of `key` from the block it lies in; None when no block (or inner name) matches."""
    for prefix, (ldm_prefix, inner) in blocks.items():
        if key.startswith(prefix):
            renamed = _rename(key[len(prefix):], inner)
            return None if renamed is None else ldm_prefix + renamed
    return None


def _key_map(module: nn.Module, blocks: Blocks, kind: str) -> dict[str, str]:
    """{module state-dict key: LDM key} for every tensor of `module`; raises when one has no name."""
    names = {key: block_key_to_ldm(key, blocks) for key in module.state_dict()}
    _unmapped(kind, [key for key, name in names.items() if name is None])
    return names


# -- UNet -----------------------------------------------------------------------------------------
def unet_block_prefixes(unet: nn.Module) -> Blocks:
    """Every block of a diffusers UNet with its LDM prefix.

    LDM numbers layers flatly: each down level has L resnet layers plus one downsampler layer,
    each up level L+1 layers whose last one also holds the upsampler (after the attention, if any).
    """
    blocks: Blocks = {diffusers: (ldm, _KEEP) for diffusers, ldm in _UNET_TOP_LEVEL.items()}
    index = 1
    for i, down in enumerate(unet.down_blocks):
        for j in range(len(down.resnets)):
            blocks[f"down_blocks.{i}.resnets.{j}."] = (f"input_blocks.{index}.0.", _UNET_RESNET)
            if getattr(down, "attentions", None) is not None:
                blocks[f"down_blocks.{i}.attentions.{j}."] = (f"input_blocks.{index}.1.", _KEEP)
            index += 1
        if getattr(down, "downsamplers", None) is not None:
            blocks[f"down_blocks.{i}.downsamplers.0.conv."] = (f"input_blocks.{index}.0.op.", _KEEP)
            index += 1
    for j in range(len(unet.mid_block.resnets)):
        blocks[f"mid_block.resnets.{j}."] = (f"middle_block.{2 * j}.", _UNET_RESNET)
    for j in range(len(getattr(unet.mid_block, "attentions", None) or [])):
        blocks[f"mid_block.attentions.{j}."] = (f"middle_block.{2 * j + 1}.", _KEEP)
    index = 0
    for i, up in enumerate(unet.up_blocks):
        has_attention = getattr(up, "attentions", None) is not None
        for j in range(len(up.resnets)):
            blocks[f"up_blocks.{i}.resnets.{j}."] = (f"output_blocks.{index}.0.", _UNET_RESNET)
            if has_attention:
                blocks[f"up_blocks.{i}.attentions.{j}."] = (f"output_blocks.{index}.1.", _KEEP)
            index += 1
        if getattr(up, "upsamplers", None) is not None:
            blocks[f"up_blocks.{i}.upsamplers.0."] = (f"output_blocks.{index - 1}.{2 if has_attention else 1}.", _KEEP)
    return blocks


def unet_to_ldm(unet: nn.Module) -> dict[str, torch.Tensor]:
    """Every UNet tensor (norms included) under its LDM name, without the `model.diffusion_model.` prefix."""
    state = unet.state_dict()
    return {name: state[key] for key, name in _key_map(unet, unet_block_prefixes(unet), "UNet").items()}


# -- VAE ------------------------------------------------------------------------------------------
def _vae_block_prefixes(vae: nn.Module) -> Blocks:
    """{diffusers prefix: (LDM prefix, inner table)}; the LDM decoder numbers its levels bottom-up."""
    blocks: Blocks = {}
    for i, down in enumerate(vae.encoder.down_blocks):
        for j in range(len(down.resnets)):
            blocks[f"encoder.down_blocks.{i}.resnets.{j}."] = (f"encoder.down.{i}.block.{j}.", _VAE_RESNET)
        blocks[f"encoder.down_blocks.{i}.downsamplers.0.conv."] = (f"encoder.down.{i}.downsample.conv.", _KEEP)
    levels = len(vae.decoder.up_blocks)
    for i, up in enumerate(vae.decoder.up_blocks):
        for j in range(len(up.resnets)):
            blocks[f"decoder.up_blocks.{i}.resnets.{j}."] = (f"decoder.up.{levels - 1 - i}.block.{j}.", _VAE_RESNET)
        blocks[f"decoder.up_blocks.{i}.upsamplers.0.conv."] = (f"decoder.up.{levels - 1 - i}.upsample.conv.", _KEEP)
    for coder in ("encoder", "decoder"):
        for j in range(len(getattr(vae, coder).mid_block.resnets)):
            blocks[f"{coder}.mid_block.resnets.{j}."] = (f"{coder}.mid.block_{j + 1}.", _VAE_RESNET)
        blocks[f"{coder}.mid_block.attentions.0."] = (f"{coder}.mid.attn_1.", _VAE_ATTENTION)
        blocks[f"{coder}.conv_norm_out."] = (f"{coder}.norm_out.", _KEEP)
        for conv in ("conv_in", "conv_out"):
            blocks[f"{coder}.{conv}."] = (f"{coder}.{conv}.", _KEEP)
    for conv in ("quant_conv", "post_quant_conv"):
        blocks[f"{conv}."] = (f"{conv}.", _KEEP)
    return blocks


def _is_vae_attention_weight(ldm_name: str) -> bool:
    # LDM's mid attention projections are 1x1 convs where diffusers has Linear layers.
    return ".mid.attn_1." in ldm_name and ldm_name.endswith(".weight") and not ldm_name.endswith("norm.weight")


def vae_to_ldm(vae: nn.Module) -> dict[str, torch.Tensor]:
    """VAE tensors under their LDM names; the mid attention projections become 1x1 convs as in LDM."""
    state, converted = vae.state_dict(), {}
    for key, name in _key_map(vae, _vae_block_prefixes(vae), "VAE").items():
        tensor = state[key]
        converted[name] = tensor[:, :, None, None] if _is_vae_attention_weight(name) and tensor.ndim == 2 else tensor
    return converted


# -- text encoders --------------------------------------------------------------------------------
def _without_text_model(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # transformers >= 5.6 flattened CLIPTextModel (no `text_model.`); older versions and the
    # WithProjection model keep it. Strip it so both layouts convert the same way.
    return {key.removeprefix("text_model."): tensor for key, tensor in state.items()}


def clip_to_hf_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SD1 / SDXL-first-encoder layout: the transformers names under `text_model.` (as in released checkpoints)."""
    return {"text_model." + key: tensor for key, tensor in _without_text_model(state).items() if key not in _DERIVED}


def clip_to_open_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenCLIP layout (SD2 `cond_stage_model.model.`, SDXL `conditioner.embedders.1.model.`): fused q/k/v."""
    state = _without_text_model(state)
    converted = {"token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
                 "positional_embedding": state.pop("embeddings.position_embedding.weight"),
                 "ln_final.weight": state.pop("final_layer_norm.weight"),
                 "ln_final.bias": state.pop("final_layer_norm.bias")}
    if "text_projection.weight" in state:
        # OpenCLIP multiplies x @ text_projection, a Linear computes x @ weight.T.
        converted["text_projection"] = state.pop("text_projection.weight").T
    state.pop("embeddings.position_ids", None)
    layers = sorted({int(key.split(".")[2]) for key in state if key.startswith("encoder.layers.")})
    for i in layers:
        converted.update(_open_clip_layer(state, i))
    _unmapped("text encoder", sorted(state))
    return converted


def _open_clip_layer(state: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """Pop layer i's tensors from `state` and return them under OpenCLIP's `transformer.resblocks.i.` names."""
    source, target = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
    layer = {}
    for param in ("weight", "bias"):
        fused = [state.pop(f"{source}self_attn.{proj}_proj.{param}") for proj in ("q", "k", "v")]
        layer[f"{target}attn.in_proj_{param}"] = torch.cat(fused, dim=0)
    for key in [k for k in state if k.startswith(source)]:
        renamed = _rename(key[len(source):], _OPEN_CLIP_LAYER)
        if renamed is not None:
            layer[target + renamed] = state.pop(key)
    return layer


# -- whole checkpoints ----------------------------------------------------------------------------
def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + key: tensor for key, tensor in state.items()}


def checkpoint_state(unet: nn.Module, vae: nn.Module, text_encoders: list[nn.Module], kind: str) -> dict[str, torch.Tensor]:
    """One original-format state dict of a family's pipeline (text encoders in TEXT_ENCODER_LAYOUTS order).

    Tensors are detached, contiguous CPU copies: safetensors refuses shared or strided storage."""
    if kind not in TEXT_ENCODER_LAYOUTS:
        raise ValueError(f"unknown kind '{kind}'; known: {', '.join(TEXT_ENCODER_LAYOUTS)}")
    layouts = TEXT_ENCODER_LAYOUTS[kind]
    if len(text_encoders) != len(layouts):
        raise ValueError(f"{kind} has {len(layouts)} text encoders, got {len(text_encoders)}")
    checkpoint = _prefixed(UNET_PREFIX, unet_to_ldm(unet))
    checkpoint.update(_prefixed(VAE_PREFIX, vae_to_ldm(vae)))
    for encoder, (_, prefix, layout) in zip(text_encoders, layouts):
        state = encoder.state_dict()
        checkpoint.update(_prefixed(prefix, clip_to_hf_layout(state) if layout == "hf_clip" else clip_to_open_clip(state)))
    return {key: tensor.detach().to("cpu").contiguous().clone() for key, tensor in checkpoint.items()}


def single_file_state(unet: nn.Module, vae: nn.Module, text_encoder: nn.Module) -> dict[str, torch.Tensor]:
    """SD1 single-file state dict: model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.*."""
    return checkpoint_state(unet, vae, [text_encoder], "sd1")


def _sd1_names(unet: nn.Module, vae: nn.Module, text_encoder: nn.Module) -> dict[str, tuple[str, str]]:
    """{file key: (component, module state-dict key)} of the SD1 layout, derived buffers left out."""
    names = {UNET_PREFIX + ldm: ("unet", key) for key, ldm in _key_map(unet, unet_block_prefixes(unet), "UNet").items()}
    names.update({VAE_PREFIX + ldm: ("vae", key) for key, ldm in _key_map(vae, _vae_block_prefixes(vae), "VAE").items()})
    for key in text_encoder.state_dict():
        short = key.removeprefix("text_model.")
        if short not in _DERIVED:
            names[f"{SD1_TEXT_PREFIX}text_model.{short}"] = ("text_encoder", key)
    return names


def ldm_to_diffusers(checkpoint: dict[str, torch.Tensor], unet: nn.Module, vae: nn.Module,
                     text_encoder: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Split an SD1 single-file state dict into {"unet", "vae", "text_encoder": state dict} for these modules.

    Raises KeyError when a file tensor has no place in the modules or a module tensor is not in the file."""
    names = _sd1_names(unet, vae, text_encoder)
    _unmapped("checkpoint", sorted(set(checkpoint) - set(names)))
    _unmapped("module", sorted(f"{part}: {key}" for name, (part, key) in names.items() if name not in checkpoint))
    states: dict[str, dict[str, torch.Tensor]] = {"unet": {}, "vae": {}, "text_encoder": {}}
    for name, (part, key) in names.items():
        tensor = checkpoint[name]
        states[part][key] = tensor[:, :, 0, 0] if part == "vae" and _is_vae_attention_weight(name) and tensor.ndim == 4 else tensor
    return states


def load_single_file_state(checkpoint: dict[str, torch.Tensor], unet: nn.Module, vae: nn.Module, text_encoder: nn.Module) -> None:
    """Copy an SD1 single-file state dict into the modules (strictly: every tensor, shapes checked by torch)."""
    states = ldm_to_diffusers(checkpoint, unet, vae, text_encoder)
    for module, part in ((unet, "unet"), (vae, "vae"), (text_encoder, "text_encoder")):
        # position_ids is a persistent buffer in older transformers; the module's own value is the right one.
        derived = {key: tensor for key, tensor in module.state_dict().items() if key.removeprefix("text_model.") in _DERIVED}
        module.load_state_dict({**derived, **states[part]}, strict=True)
