"""Write a saved diffusers pipeline as ONE original-format (LDM / CompVis / SGM) checkpoint, as users have them.

Test helper for `DiffusersBackend.from_single_file`: the file has `model.diffusion_model.*` UNet keys,
`first_stage_model.*` VAE keys and the text encoders under their original prefixes. The key tables
follow the well-known diffusers -> original conversion, generalized to any number of blocks and
layers per block so they cover the tiny test models. Every tensor must find a name: an unmapped key
raises instead of silently dropping weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
# Where each family's text encoders live in an original checkpoint, and in which layout.
TEXT_ENCODER_LAYOUTS = {
    "sd1": [("text_encoder", "cond_stage_model.transformer.", "hf_clip")],
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


def write_single_file_checkpoint(pipe_folder: Path, out_path: Path, kind: str) -> Path:
    """Convert the pipeline that `tiny_pipeline(pipe_folder, kind)` saved into one `.safetensors` file."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    if kind not in TEXT_ENCODER_LAYOUTS:
        raise ValueError(f"unknown kind '{kind}'; known: {', '.join(TEXT_ENCODER_LAYOUTS)}")
    pipe_folder = Path(pipe_folder)
    unet = UNet2DConditionModel.from_pretrained(pipe_folder, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(pipe_folder, subfolder="vae")
    checkpoint = _prefixed(UNET_PREFIX, unet_to_ldm(unet))
    checkpoint.update(_prefixed(VAE_PREFIX, vae_to_ldm(vae)))
    for subfolder, prefix, layout in TEXT_ENCODER_LAYOUTS[kind]:
        state = _load_text_encoder(pipe_folder / subfolder).state_dict()
        converted = clip_to_hf_layout(state) if layout == "hf_clip" else clip_to_open_clip(state)
        checkpoint.update(_prefixed(prefix, converted))
    # safetensors refuses shared or strided storage; a real checkpoint is plain contiguous tensors anyway.
    save_file({key: tensor.detach().contiguous().clone() for key, tensor in checkpoint.items()}, str(out_path))
    return Path(out_path)


def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + key: tensor for key, tensor in state.items()}


def _load_text_encoder(folder: Path) -> nn.Module:
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    architecture = json.loads((folder / "config.json").read_text())["architectures"][0]
    cls = CLIPTextModelWithProjection if architecture == "CLIPTextModelWithProjection" else CLIPTextModel
    return cls.from_pretrained(folder)


def _rename(key: str, table: dict[str, str]) -> str | None:
    """Replace the first matching prefix of `key` from `table`; None when nothing matches."""
    for old, new in table.items():
        if key.startswith(old):
            return new + key[len(old):]
    return None


def _unmapped(kind: str, keys: list[str]) -> None:
    if keys:
        raise KeyError(f"{kind} keys without an original-format name: {keys[:5]}{' ...' if len(keys) > 5 else ''}")


# -- UNet -----------------------------------------------------------------------------------------
Blocks = dict[str, tuple[str, dict[str, str]]]  # {diffusers prefix: (LDM prefix, table for the rest of the key)}


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
    blocks = unet_block_prefixes(unet)
    converted, missing = {}, []
    for key, tensor in unet.state_dict().items():
        name = block_key_to_ldm(key, blocks)
        if name is None:
            missing.append(key)
        else:
            converted[name] = tensor
    _unmapped("UNet", missing)
    return converted


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


def vae_to_ldm(vae: nn.Module) -> dict[str, torch.Tensor]:
    """VAE tensors under their LDM names; the mid attention projections become 1x1 convs as in LDM."""
    blocks = _vae_block_prefixes(vae)
    converted, missing = {}, []
    for key, tensor in vae.state_dict().items():
        name = block_key_to_ldm(key, blocks)
        if name is None:
            missing.append(key)
            continue
        is_attention_weight = ".mid.attn_1." in name and name.endswith(".weight") and tensor.ndim == 2
        converted[name] = tensor[:, :, None, None] if is_attention_weight else tensor
    _unmapped("VAE", missing)
    return converted


def block_key_to_ldm(key: str, blocks: Blocks) -> str | None:
    """The LDM name of `key` from the block it lies in; None when no block (or inner name) matches."""
    for prefix, (ldm_prefix, inner) in blocks.items():
        if key.startswith(prefix):
            renamed = _rename(key[len(prefix):], inner)
            return None if renamed is None else ldm_prefix + renamed
    return None


# -- text encoders --------------------------------------------------------------------------------
def _without_text_model(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # transformers >= 5.6 flattened CLIPTextModel (no `text_model.`); older versions and the
    # WithProjection model keep it. Strip it so both layouts convert the same way.
    return {key.removeprefix("text_model."): tensor for key, tensor in state.items()}


def clip_to_hf_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SD1 / SDXL-first-encoder layout: the transformers names under `text_model.` (as in released checkpoints)."""
    return {"text_model." + key: tensor for key, tensor in _without_text_model(state).items() if key != "embeddings.position_ids"}


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


# -- a tiny SDXL whose two text encoders differ in width ------------------------------------------
SDXL_ENCODER_WIDTHS = (32, 48)


def tiny_sdxl_pipeline_with_distinct_encoders(folder: Path, prediction_type: str = "epsilon", seed: int = 0):
    """Like `tiny_pipeline(folder, "sdxl")`, but text_encoder_2 is wider than text_encoder.

    diffusers tells SDXL's two encoders apart in a single file by width (768 vs 1280 in the real
    model); with the equal widths of the shared tiny SDXL it loads embedders.0 into both encoders.
    """
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    from loba.tiny_models import _randomize, tiny_scheduler, tiny_text_encoder, tiny_tokenizer, tiny_vae

    first, second = SDXL_ENCODER_WIDTHS
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
                                norm_num_groups=8, attention_head_dim=8, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=first + second,
                                use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                                projection_class_embeddings_input_dim=second + 6 * 8, transformer_layers_per_block=1)
    _randomize(unet, seed)  # zero-initialized output convs would make every prediction equal
    tokenizer = tiny_tokenizer(folder / "_tok")
    pipe = StableDiffusionXLPipeline(vae=tiny_vae(seed), unet=unet.eval(), scheduler=tiny_scheduler(prediction_type),
                                     text_encoder=tiny_text_encoder(first, seed=seed), tokenizer=tokenizer,
                                     text_encoder_2=tiny_text_encoder(second, with_projection=True, seed=seed + 1),
                                     tokenizer_2=tokenizer)
    pipe.save_pretrained(folder)
    return pipe
