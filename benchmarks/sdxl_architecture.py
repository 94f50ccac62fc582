"""SDXL's real architecture, written out (no download): the diffusers UNet config, ComfyUI's unet_config for
comfy.supported_models.SDXL (the dict comfy.model_detection matches for SDXL checkpoints), the text
encoders' configs, and SDXL's training schedule. `size="small"` shrinks widths and depths with the same
layout (same block types, context and adm sizes) for quick development runs and the smoke test."""

from __future__ import annotations

import torch

CONTEXT_DIM, POOLED_DIM, ADM_DIM, TOKENS = 2048, 1280, 2816, 77
SIZES = {"full": dict(channels=320, depths=(1, 2, 10), head_dim=64),
         "small": dict(channels=64, depths=(1, 1, 2), head_dim=32),
         "tiny": dict(channels=32, depths=(1, 1, 1), head_dim=16)}


def diffusers_unet_config(size: str = "full") -> dict:
    s = SIZES[size]
    channels = tuple(s["channels"] * m for m in (1, 2, 4))
    return dict(sample_size=128, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                mid_block_type="UNetMidBlock2DCrossAttn", up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                block_out_channels=channels, layers_per_block=2, act_fn="silu", norm_num_groups=32,
                transformer_layers_per_block=s["depths"], attention_head_dim=tuple(c // s["head_dim"] for c in channels),
                cross_attention_dim=CONTEXT_DIM, use_linear_projection=True, addition_embed_type="text_time",
                addition_time_embed_dim=256, projection_class_embeddings_input_dim=ADM_DIM, upcast_attention=False)


def comfy_unet_config(size: str = "full", dtype: torch.dtype = torch.bfloat16) -> dict:
    s = SIZES[size]
    d1, d2 = s["depths"][1], s["depths"][2]
    return {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True, "legacy": False,
            "num_classes": "sequential", "adm_in_channels": ADM_DIM, "dtype": dtype, "in_channels": 4,
            "model_channels": s["channels"], "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, d1, d1, d2, d2],
            "channel_mult": [1, 2, 4], "transformer_depth_middle": d2, "use_linear_in_transformer": True,
            "context_dim": CONTEXT_DIM, "num_head_channels": s["head_dim"],
            "transformer_depth_output": [0, 0, 0, d1, d1, d1, d2, d2, d2],
            "use_temporal_attention": False, "use_temporal_resblock": False}


def text_encoder_configs() -> list:
    """SDXL's CLIP ViT-L/14 text encoder and OpenCLIP ViT-bigG/14 text encoder (with its projection)."""
    from transformers import CLIPTextConfig

    common = dict(vocab_size=49408, max_position_embeddings=TOKENS, bos_token_id=0, eos_token_id=2)
    clip_l = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                            hidden_act="quick_gelu", projection_dim=768, **common)
    clip_g = CLIPTextConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                            hidden_act="gelu", projection_dim=POOLED_DIM, **common)
    return [clip_l, clip_g]


def text_encoder_bytes(dtype: torch.dtype) -> int:
    """Bytes of the real-size SDXL text encoders' weights in `dtype`, counted on the meta device (nothing allocated)."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    clip_l, clip_g = text_encoder_configs()
    with torch.device("meta"):
        models = [CLIPTextModel(clip_l), CLIPTextModelWithProjection(clip_g)]
    return sum(p.numel() for m in models for p in m.parameters()) * dtype.itemsize


def alphas_cumprod() -> torch.Tensor:
    """SDXL's scaled_linear schedule (beta 0.00085 .. 0.012, 1000 steps)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, dim=0)


@torch.no_grad()
def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Finite random weights (norms at identity, layers ~ 1/sqrt(fan_in)): the loaders' weights may be
    uninitialized memory (ComfyUI's disable_weight_init ops), which must not reach the loss as NaN."""
    generator = torch.Generator().manual_seed(seed)
    for sub in module.modules():
        weight, bias = getattr(sub, "weight", None), getattr(sub, "bias", None)
        if isinstance(sub, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            _fill(weight, 1.0), _fill(bias, 0.0)
        elif isinstance(weight, torch.Tensor) and weight.ndim >= 2:
            fan_in = weight[0].numel()
            weight.copy_(torch.randn(weight.shape, generator=generator).mul_(fan_in**-0.5).to(weight.dtype))
            _fill(bias, 0.0)
        elif isinstance(sub, torch.nn.Embedding):
            weight.normal_(0, 0.02, generator=generator)


def _fill(tensor, value: float) -> None:
    if isinstance(tensor, torch.Tensor):
        tensor.fill_(value)
