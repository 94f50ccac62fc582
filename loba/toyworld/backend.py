"""The toy model as a training backend: the diffusers backend over its components."""

from __future__ import annotations

from typing import Optional

from ..models.diffusers_backend import DiffusersBackend
from .model import LATENT_SIZE, ToyComponents
from .sampling import toy_noise_schedule


def toy_backend(components: ToyComponents, clip_skip: Optional[int] = None) -> DiffusersBackend:
    schedule = toy_noise_schedule()
    return DiffusersBackend(components.unet, [components.text_encoder], [components.tokenizer], schedule.alphas_cumprod,
                            schedule.prediction_type, family="sd1", vae=components.vae,
                            native_resolution=LATENT_SIZE * 8, vae_scaling=components.scaling_factor,
                            clip_skip=clip_skip)
