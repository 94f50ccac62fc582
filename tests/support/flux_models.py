"""A tiny random Flux (diffusers' FluxTransformer2DModel) with a stub prompt encoder, and a tiny diffusers Flux
folder (CLIP-L and T5 stand-ins, a 16-channel VAE, the scheduler config) for the loaders."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from support.tiny_models import tiny_text_encoder, tiny_tokenizer

from loba.models.backend import Conditioning

TINY = dict(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
            joint_attention_dim=32, pooled_projection_dim=16, axes_dims_rope=(4, 6, 6))


def tiny_transformer(guidance: bool = True, seed: int = 0):
    from diffusers import FluxTransformer2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FluxTransformer2DModel(**TINY, guidance_embeds=guidance)
        with torch.no_grad():  # diffusers zero-initialises the output layers: a random model should predict something
            for name in ("proj_out", "norm_out.linear"):
                model.get_submodule(name).weight.normal_(0, 0.05)
    return model.eval()


def stub_encode(prompts):
    """batch-1 Conditioning(context [1, 5, 32], pooled [1, 16]) per prompt, deterministic."""
    out = {}
    for p in prompts:
        gen = torch.Generator().manual_seed(sum(map(ord, p)) + 7 * len(p))
        out[p] = Conditioning(torch.randn(1, 5, 32, generator=gen), torch.randn(1, 16, generator=gen))
    return out


def tiny_flux_folder(folder: Path, guidance: bool = True) -> Path:
    """A diffusers Flux pipeline folder of tiny random components (the T5 slot holds a tiny T5 encoder; both
    tokenizers are the tests' character-level CLIP tokenizer)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
    from transformers import T5Config, T5EncoderModel

    tiny_transformer(guidance).save_pretrained(folder / "transformer")
    tiny_text_encoder(16).save_pretrained(folder / "text_encoder")
    torch.manual_seed(1)
    T5EncoderModel(T5Config(vocab_size=514, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2)).save_pretrained(
        folder / "text_encoder_2")
    for name in ("tokenizer", "tokenizer_2"):
        tiny_tokenizer(folder / name).save_pretrained(folder / name)
    torch.manual_seed(2)
    AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(8, 8, 8, 8),
                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=4,
                  layers_per_block=1, scaling_factor=0.3611, shift_factor=0.1159).save_pretrained(folder / "vae")
    FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=guidance, base_shift=0.5, max_shift=1.15,
                                    base_image_seq_len=256, max_image_seq_len=4096).save_pretrained(folder / "scheduler")
    index = {"_class_name": "FluxPipeline", "_diffusers_version": "0.42.0",
             "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder
