"""Preview samples of a slider while it trains: the same seed at a few weights, for a host to show.

The engine's one CFG-DDIM sampler over the backend; runs without grad and leaves the
network's multiplier as it found it, so it can be called from a training callback.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..diffusion.sampler import cfg_ddim
from ..diffusion.schedule import NoiseSchedule
from ..models.backend import Conditioning, ModelBackend


@torch.no_grad()
def preview_latents(backend: ModelBackend, network, cond: Conditioning, uncond: Conditioning, weights: Sequence[float],
                    height: int, width: int, steps: int = 20, cfg: float = 5.0, seed: int = 0) -> torch.Tensor:
    """Latents [len(weights), C, h, w]: one DDIM run per weight from the same noise."""
    schedule = NoiseSchedule(backend.alphas_cumprod(), backend.prediction_type)
    grid = schedule.ddim_grid(steps).tolist()
    factor = backend.vae_scale_factor
    shape = (1, backend.latent_channels, height // factor, width // factor)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(backend.device)
    both = Conditioning.cat([uncond, cond])

    def predict(x_pair: torch.Tensor, t: int) -> torch.Tensor:
        ts = torch.full((2,), t, dtype=torch.long, device=x_pair.device)
        return backend.predict(x_pair.to(backend.dtype), ts, both)

    previous = network.multiplier
    out = []
    try:
        for weight in weights:
            network.multiplier = float(weight)
            out.extend(cfg_ddim(predict, noise, schedule, grid, cfg))
    finally:
        network.multiplier = previous
    return torch.cat(out)
