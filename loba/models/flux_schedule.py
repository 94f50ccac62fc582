"""Flux's flow-matching sigma table: the time shift and its resolution dependence, as diffusers computes them.

FlowMatchEulerDiscreteScheduler trains on sigma_t = t / N (t = 1..N) and Flux.1-dev shifts it by
    sigma' = e^mu / (e^mu + (1/sigma - 1))            (time_shift_type "exponential", sigma = 1 in BFL's code)
with mu growing linearly in the packed image's token count (FluxPipeline's calculate_shift):
256 tokens (256 px) -> 0.5, 1024 (512 px) -> 0.63, 4096 (1024 px) -> 1.15. Schnell uses no shift (mu = 0: sigma' = sigma).
The table is ascending and ends at sigma = 1 (pure noise), what NoiseSchedule.flow expects.
"""

from __future__ import annotations

import math

import torch

BASE_SEQ_LEN, MAX_SEQ_LEN, BASE_SHIFT, MAX_SHIFT = 256, 4096, 0.5, 1.15


def flux_shift(image_seq_len: int, base_seq_len: int = BASE_SEQ_LEN, max_seq_len: int = MAX_SEQ_LEN,
               base_shift: float = BASE_SHIFT, max_shift: float = MAX_SHIFT) -> float:
    """mu for a packed latent of image_seq_len tokens: diffusers' FluxPipeline calculate_shift."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * slope + base_shift - slope * base_seq_len


def image_seq_len(height: int, width: int, vae_scale_factor: int = 8) -> int:
    """Tokens of a packed (2x2) Flux latent of an image height x width pixels."""
    return (height // (vae_scale_factor * 2)) * (width // (vae_scale_factor * 2))


def flux_sigmas(shift: float, num: int = 1000) -> torch.Tensor:
    """The ascending float64 sigma table [num] of integer timesteps 0..num-1, shifted by mu = `shift`
    (0: unshifted, schnell). Timestep num-1 is sigma = 1."""
    base = torch.arange(1, num + 1, dtype=torch.float64) / num
    if shift == 0:
        return base
    scale = math.exp(shift)
    shifted = scale / (scale + (1 / base - 1))
    shifted[-1] = 1.0  # exact, so the last timestep is pure noise whatever the rounding
    return shifted


def resolution_sigmas(height: int, width: int, *, dynamic: bool = True, num: int = 1000,
                      vae_scale_factor: int = 8) -> torch.Tensor:
    """The table of an image size: dev's resolution-dependent shift, or none (dynamic False: schnell)."""
    return flux_sigmas(flux_shift(image_seq_len(height, width, vae_scale_factor)) if dynamic else 0.0, num)
