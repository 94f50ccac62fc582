"""The flow toy world's text-to-image model: Flux.1 architecture at toy size, on the toy world's latents.

A diffusers FluxTransformer2DModel (double-stream + single-stream MMDiT blocks, rotary positions) trained by
flow matching (rectified flow: x_t = (1 - sigma) x0 + sigma eps, the model predicts eps - x0) on the shipped
toy world's 8x8x4 latents, packed 2x2 into 16 tokens of 16 channels as Flux packs its latents. It reuses the
shipped world's KL autoencoder and its CLIP-L-architecture text encoder unchanged (frozen): the last hidden
states are the context (joint_attention_dim = its width), the pooled output (final layer norm at the EOS
token) the pooled vector. No guidance embedding (guidance_embeds False: schnell-like, sampled with true CFG).
The configs here are the single source of truth for the builder, the weight file and the loaders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .model import LATENT_SIZE

LATENT_CHANNELS = 4
PATCH = 2  # Flux's 2x2 latent packing: [B, 4, 8, 8] -> [B, 16 tokens, 16 channels]
TEXT_TOKENS = 16  # context length: every grammar sentence fits (at most 11 tokens); the encoder is causal, so
# the first 16 hidden states are exactly those of a 77-token encoding
FLOW_CONFIG = dict(patch_size=1, in_channels=LATENT_CHANNELS * PATCH * PATCH, out_channels=None, num_layers=2,
                   num_single_layers=4, attention_head_dim=32, num_attention_heads=4, joint_attention_dim=64,
                   pooled_projection_dim=64, guidance_embeds=False, axes_dims_rope=(8, 12, 12))
# The sigma table the model is trained and sampled on: Flux's table (flux_schedule.flux_sigmas) unshifted, mu = 0
# (schnell's; dev's resolution-dependent shift is for 256+ tokens, the toy has 16), 1000 integer timesteps.
FLOW_SHIFT = 0.0
NUM_TIMESTEPS = 1000
# What "the default sampler and CFG" means for this model: flow Euler on the sigma table (trailing grid:
# the first step is at sigma 1, pure noise), true classifier-free guidance with "" as the unconditional.
FLOW_SAMPLING = dict(sampler="flow_euler", steps=25, cfg=5.0, spacing="trailing")


def flow_sigmas(shift: float = FLOW_SHIFT, num: int = NUM_TIMESTEPS) -> torch.Tensor:
    """float64 [num] ascending to 1 (mu = 0: sigma_t = (t + 1) / num)."""
    from ..models.flux_schedule import flux_sigmas

    return flux_sigmas(shift, num)


def build_flow_transformer(config: Optional[dict] = None):
    from diffusers import FluxTransformer2DModel

    settings = dict(FLOW_CONFIG if config is None else config)
    settings["axes_dims_rope"] = tuple(settings["axes_dims_rope"])
    return FluxTransformer2DModel(**settings)


def flow_velocity(transformer, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """The transformer's velocity (eps - x0) for latents x [B, 4, H, W] at sigma [B] (Flux takes sigma, x1000 inside),
    packed exactly as FluxBackend.predict packs them (training and slider training see the same model)."""
    from ..models.flux_backend import image_ids, pack_latents, unpack_latents

    h, w = x.shape[-2:]
    dtype = next(transformer.parameters()).dtype
    out = transformer(hidden_states=pack_latents(x.to(dtype)), timestep=sigma.to(x.device, dtype),
                      encoder_hidden_states=context.to(x.device, dtype), pooled_projections=pooled.to(x.device, dtype),
                      txt_ids=torch.zeros(context.shape[1], 3, device=x.device, dtype=dtype),
                      img_ids=image_ids(h, w, x.device, dtype), return_dict=False)[0]
    return unpack_latents(out, h, w).to(x.dtype)


@torch.no_grad()
def encode_text(tokenizer, text_encoder, prompts: list[str], length: int = TEXT_TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """(context [N, length, 64] last hidden states, pooled [N, 64]) of the toy CLIP text encoder."""
    device = next(text_encoder.parameters()).device
    ids = tokenizer(list(prompts), padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids
    out = text_encoder(ids.to(device))
    return out.last_hidden_state, out.pooler_output


@dataclass
class FlowComponents:
    """The flow toy model: what the builder trains, the sampler draws from, the backend and the loader wrap."""

    transformer: object
    text_encoder: object
    tokenizer: object
    vae: object
    scaling_factor: float = 1.0
    shift: float = FLOW_SHIFT

    def sigmas(self) -> torch.Tensor:
        return flow_sigmas(self.shift)

    def eval(self) -> FlowComponents:
        for module in (self.transformer, self.text_encoder, self.vae):
            module.eval().requires_grad_(False)
        return self


LATENT_SHAPE = (LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE)
