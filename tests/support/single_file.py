"""Write a saved diffusers pipeline as ONE original-format (LDM / CompVis / SGM) checkpoint, as users have them.

Test helper for `DiffusersBackend.from_single_file`. The conversion itself is package code
(loba/toyworld/single_file.py); this module reads a pipeline folder and writes the file.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from loba.toyworld.single_file import (  # noqa: F401  (re-exported for the tests)
    TEXT_ENCODER_LAYOUTS,
    UNET_PREFIX,
    VAE_PREFIX,
    block_key_to_ldm,
    checkpoint_state,
    clip_to_hf_layout,
    clip_to_open_clip,
    unet_block_prefixes,
    unet_to_ldm,
    vae_to_ldm,
)


def write_single_file_checkpoint(pipe_folder: Path, out_path: Path, kind: str) -> Path:
    """Convert the pipeline that `tiny_pipeline(pipe_folder, kind)` saved into one `.safetensors` file."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    if kind not in TEXT_ENCODER_LAYOUTS:
        raise ValueError(f"unknown kind '{kind}'; known: {', '.join(TEXT_ENCODER_LAYOUTS)}")
    pipe_folder = Path(pipe_folder)
    unet = UNet2DConditionModel.from_pretrained(pipe_folder, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(pipe_folder, subfolder="vae")
    encoders = [_load_text_encoder(pipe_folder / subfolder) for subfolder, _, _ in TEXT_ENCODER_LAYOUTS[kind]]
    save_file(checkpoint_state(unet, vae, encoders, kind), str(out_path))
    return Path(out_path)


def _load_text_encoder(folder: Path) -> nn.Module:
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    architecture = json.loads((folder / "config.json").read_text())["architectures"][0]
    cls = CLIPTextModelWithProjection if architecture == "CLIPTextModelWithProjection" else CLIPTextModel
    return cls.from_pretrained(folder)


# -- a tiny SDXL whose two text encoders differ in width ------------------------------------------
SDXL_ENCODER_WIDTHS = (32, 48)


def tiny_sdxl_pipeline_with_distinct_encoders(folder: Path, prediction_type: str = "epsilon", seed: int = 0):
    """Like `tiny_pipeline(folder, "sdxl")`, but text_encoder_2 is wider than text_encoder.

    diffusers tells SDXL's two encoders apart in a single file by width (768 vs 1280 in the real
    model); with the equal widths of the shared tiny SDXL it loads embedders.0 into both encoders.
    """
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from support.tiny_models import _randomize, tiny_scheduler, tiny_text_encoder, tiny_tokenizer, tiny_vae

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


def _refuse_network(*args, **kwargs):
    raise AssertionError("single-file loading tried to reach the network")


def offline_hub(patch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    patch.setenv("HF_HUB_OFFLINE", "1")
    # The hub library reads the variable once at import, so set its constant too; the socket guard proves it.
    patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    patch.setattr(socket.socket, "connect", _refuse_network)
    patch.setattr(socket, "getaddrinfo", _refuse_network)
