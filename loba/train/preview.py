"""Preview samples of a slider while it trains: the same seed at a few weights, for a host to show.

A plain DDIM sampler over the backend with classifier-free guidance; runs without grad and leaves the
network's multiplier as it found it, so it can be called from a training callback.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..backends.base import Conditioning, ModelBackend
from ..noise_schedule import NoiseSchedule


@torch.no_grad()
def preview_latents(backend: ModelBackend, network, cond: Conditioning, uncond: Conditioning, weights: Sequence[float],
                    height: int, width: int, steps: int = 20, cfg: float = 5.0, seed: int = 0) -> torch.Tensor:
    """Latents [len(weights), C, h, w]: one DDIM run per weight from the same noise."""
    schedule = NoiseSchedule(backend.alphas_cumprod(), backend.prediction_type)
    grid = [int(t) for t in schedule.ddim_grid(steps)]
    factor = backend.vae_scale_factor
    shape = (1, backend.latent_channels, height // factor, width // factor)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(backend.device)
    both = Conditioning.cat([uncond, cond])
    previous = network.multiplier
    out = []
    try:
        for weight in weights:
            network.multiplier = float(weight)
            x = noise
            for i, t in enumerate(grid):
                ts = torch.full((2,), t, dtype=torch.long, device=x.device)
                prediction = backend.predict(x.repeat(2, 1, 1, 1).to(backend.dtype), ts, both).float()
                uncond_out, text_out = prediction.chunk(2)
                guided = uncond_out + cfg * (text_out - uncond_out)
                x = schedule.ddim_step(guided, x, t, grid[i + 1] if i + 1 < len(grid) else None)
            out.append(x)
    finally:
        network.multiplier = previous
    return torch.cat(out)
