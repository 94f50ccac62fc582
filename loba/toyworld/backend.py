"""The toy model as a training backend: the diffusers backend over its components (SD1 worlds), or the
FluxBackend over the flow world's toy Flux transformer on its own sigma table."""

from __future__ import annotations

from typing import Optional

from ..models.backend import ModelBackend
from ..models.diffusers_backend import DiffusersBackend
from .model import LATENT_SIZE
from .sampling import toy_noise_schedule


def toy_backend(components, clip_skip: Optional[int] = None) -> ModelBackend:
    from .flow_model import FlowComponents

    if isinstance(components, FlowComponents):
        return flow_backend(components, clip_skip)
    schedule = toy_noise_schedule()
    return DiffusersBackend(components.unet, [components.text_encoder], [components.tokenizer], schedule.alphas_cumprod,
                            schedule.prediction_type, family="sd1", vae=components.vae,
                            native_resolution=LATENT_SIZE * 8, vae_scaling=components.scaling_factor,
                            clip_skip=clip_skip)


def flow_backend(components, clip_skip: Optional[int] = None) -> ModelBackend:
    """FluxBackend over the flow world: the text encoder's last hidden states as context, its pooled output as
    the pooled vector (the toy has one encoder where Flux has T5 + CLIP-L), no guidance embedding (schnell-like)."""
    from ..errors import ConfigError
    from ..models.backend import Conditioning
    from ..models.flux_backend import FluxBackend
    from .flow_model import LATENT_CHANNELS, encode_text

    if clip_skip not in (None, 1):
        raise ConfigError("clip_skip", "the flow toy world reads its text encoder's last layer; remove clip_skip")

    def encode(prompts) -> dict[str, Conditioning]:
        context, pooled = encode_text(components.tokenizer, components.text_encoder, list(prompts))
        return {p: Conditioning(context[i:i + 1], pooled[i:i + 1]) for i, p in enumerate(prompts)}

    components.vae.register_to_config(scaling_factor=float(components.scaling_factor))  # FluxBackend.decode reads it
    return FluxBackend(components.transformer, encode, components.sigmas(), vae=components.vae, guidance=None,
                       family="flux", native_resolution=LATENT_SIZE * 8, latent_channels=LATENT_CHANNELS, vae_scale_factor=8)
