"""The real SDXL base UNet architecture with random weights, as a LOBA training backend, for GPU-scale speed
and memory figures without downloading a model (benchmarks only; never used by the engine or the tests' models).

The UNet config is stabilityai/stable-diffusion-xl-base-1.0's unet/config.json (2.57 B parameters: 320/640/1280
channels, 1/2/10 transformer layers per level, cross-attention dim 2048, text_time added conditioning). The text
encoders are not built: prompts are encoded as fixed random embeddings of SDXL's shapes (context [1, 77, 2048],
pooled [1, 1280]), drawn from the prompt's text, so the same prompt always gets the same embedding.
(benchmarks/memory.py may build the same architecture; the two can share this module.)
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Optional

import torch

from loba.models.diffusers_backend import DiffusersBackend

SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), mid_block_type="UNetMidBlock2DCrossAttn",
    block_out_channels=(320, 640, 1280), layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=2048, transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20), use_linear_projection=True, addition_embed_type="text_time",
    addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816, upcast_attention=False,
)
CONTEXT, POOLED, TOKENS = 2048, 1280, 77


def sdxl_unet(device: str = "cpu", dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> torch.nn.Module:
    """The SDXL UNet with random weights, built without first materializing a float32 copy (meta -> device)."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_UNET)
    unet = unet.to_empty(device=device).to(dtype)  # diffusers warns about casting with to(): weights are random anyway
    # One block of normal draws tiled over every weight (drawing 2.6 B values one by one takes a minute on a CPU);
    # each weight starts at its own offset and is scaled by 1 / sqrt(fan_in), so activations stay finite.
    block = torch.randn(1 << 20, generator=torch.Generator().manual_seed(seed)).to(device, dtype)
    with torch.no_grad():
        for index, (name, param) in enumerate(unet.named_parameters()):
            if name.endswith("bias"):
                param.zero_()
            elif param.ndim == 1:  # norm scales
                param.fill_(1.0)
            else:
                _tile(param.view(-1), block.roll(index * 7919), param[0].numel() ** -0.5)
    return unet.requires_grad_(False).eval()


def _tile(flat: torch.Tensor, block: torch.Tensor, scale: float) -> None:
    for start in range(0, flat.numel(), block.numel()):
        chunk = flat[start:start + block.numel()]
        chunk.copy_(block[:chunk.numel()]).mul_(scale)


def sdxl_alphas_cumprod() -> torch.Tensor:
    """SDXL's training schedule: scaled_linear betas 0.00085 .. 0.012 over 1000 steps."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, dim=0)


class RandomTextSDXLBackend(DiffusersBackend):
    """The diffusers backend over an SDXL UNet, with prompts encoded as fixed random embeddings."""

    def __init__(self, unet: torch.nn.Module):
        stub = SimpleNamespace(config=SimpleNamespace(num_hidden_layers=12, max_position_embeddings=TOKENS))
        super().__init__(unet, [stub, stub], [None, None], sdxl_alphas_cumprod(), "epsilon", family="sdxl",
                         native_resolution=1024, vae_scaling=0.13025)

    def _encode_one(self, text: str) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(1, TOKENS, CONTEXT, generator=generator), torch.randn(1, POOLED, generator=generator)
