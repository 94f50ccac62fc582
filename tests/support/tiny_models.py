"""Tiny random Stable Diffusion-architecture models built offline (tests and the smoke-run demo; no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from loba.toyworld.clip_vocab import byte_alphabet

SD_BETA_START, SD_BETA_END = 0.00085, 0.012


def sd_alphas_cumprod() -> torch.Tensor:
    from loba.diffusion.schedule import scaled_linear_alphas_cumprod

    return scaled_linear_alphas_cumprod(SD_BETA_START, SD_BETA_END, 1000)


def tiny_tokenizer(folder: Path):
    """A character-level CLIP BPE tokenizer (514 tokens) written to `folder`."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = byte_alphabet()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def tiny_text_encoder(hidden: int = 32, with_projection: bool = False, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=514, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, bos_token_id=512, eos_token_id=513,
                            pad_token_id=513, projection_dim=hidden)
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return cls(config).eval()


def _randomize(module: torch.nn.Module, seed: int) -> None:
    # Zero-initialized output convs make every prompt predict the same thing; tests need real signal.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim >= 1:
                p.add_(torch.randn(p.shape, generator=gen) * 0.02)


def tiny_unet(kind: str = "sd1", seed: int = 0, layers_per_block: int = 1):
    """A tiny UNet2DConditionModel: kind is "sd1", "sd2" (linear projections) or "sdxl" (text_time)."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    common = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=layers_per_block,
                  norm_num_groups=8, attention_head_dim=8)
    if kind == "sdxl":
        unet = UNet2DConditionModel(**common, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=64,
                                    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                                    projection_class_embeddings_input_dim=32 + 6 * 8, transformer_layers_per_block=1)
    else:
        unet = UNet2DConditionModel(**common, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                    use_linear_projection=(kind == "sd2"))
    _randomize(unet, seed)
    return unet.eval()


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8),
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         norm_num_groups=4, layers_per_block=1, sample_size=64).eval()


def tiny_scheduler(prediction_type: str = "epsilon"):
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=SD_BETA_START, beta_end=SD_BETA_END, beta_schedule="scaled_linear",
                         prediction_type=prediction_type, clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def tiny_pipeline(folder: Path, kind: str = "sd1", prediction_type: str = "epsilon", seed: int = 0):
    """Build a tiny SD1/SD2/SDXL diffusers pipeline, save it to `folder`, and return it."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    tokenizer = tiny_tokenizer(folder / "_tok")
    common = dict(vae=tiny_vae(seed), unet=tiny_unet(kind, seed), scheduler=tiny_scheduler(prediction_type))
    if kind == "sdxl":
        pipe = StableDiffusionXLPipeline(text_encoder=tiny_text_encoder(32, seed=seed), tokenizer=tokenizer,
                                         text_encoder_2=tiny_text_encoder(32, with_projection=True, seed=seed + 1),
                                         tokenizer_2=tokenizer, **common)
    else:
        pipe = StableDiffusionPipeline(text_encoder=tiny_text_encoder(32, seed=seed), tokenizer=tokenizer,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False, **common)
    pipe.save_pretrained(folder)
    return pipe
