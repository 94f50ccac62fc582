"""Preview samples of a slider while it trains: the same seed at a few weights, for a host to show.

The engine's one CFG-DDIM sampler over the backend; runs without grad and leaves the
network's multiplier as it found it, so it can be called from a training callback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from PIL import Image

from ..config import TrainConfig
from ..config.bounds import MAX_PREVIEW_WEIGHTS, check_count
from ..diffusion.sampler import cfg_ddim
from ..images import labelled_grid
from ..models.backend import Conditioning, ModelBackend
from ..pixels import pixels_to_pil
from ..prompts import PromptSet


@torch.no_grad()
def preview_latents(backend: ModelBackend, network, cond: Conditioning, uncond: Conditioning, weights: Sequence[float],
                    height: int, width: int, steps: int = 20, cfg: float = 5.0, seed: int = 0,
                    spacing: str = "leading", should_stop: Optional[Callable[[], bool]] = None) -> torch.Tensor:
    """Latents [len(weights), C, h, w]: one DDIM run per weight from the same noise, in the backend's own
    parameterization and schedule on a `spacing`-spaced grid (the training's). should_stop() is polled
    before every model call (StepAborted), so a cancel never waits for a whole preview."""
    schedule = backend.noise_schedule()
    grid = schedule.ddim_grid(steps, spacing).tolist()
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
            out.extend(cfg_ddim(predict, noise, schedule, grid, cfg, should_stop=should_stop))
    finally:
        network.multiplier = previous
    return torch.cat(out)


@dataclass(frozen=True)
class PreviewPolicy:
    """When and what a run previews: every N steps (and at the last), the first pair's target at a few
    slider weights, from the run's seed, with at most max_steps denoise steps."""

    every: int = 0
    weights: tuple[float, ...] = (-1.0, 0.0, 1.0)
    max_steps: int = 20

    def __post_init__(self) -> None:
        check_count(self.weights, "preview_weights", MAX_PREVIEW_WEIGHTS, "weights")

    def due(self, step: int, total: int) -> bool:
        return bool(self.every) and (step % self.every == 0 or step == total)


def latent_preview_pixels(latents: torch.Tensor) -> torch.Tensor:
    """A quick look without a decoder: the latent's first three channels, each image stretched to 0..1."""
    x = latents.float().cpu()[:, :3]
    low, high = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x - low) / (high - low).clamp_min(1e-6)).permute(0, 2, 3, 1)


class PreviewSampler:
    """The progress preview of every host: a labelled grid (PIL) of the slider at the policy's weights."""

    def __init__(self, backend: ModelBackend, prompts: PromptSet, config: TrainConfig, policy: PreviewPolicy):
        pair = prompts.pairs()[0]
        self.backend, self.config, self.policy = backend, config, policy
        self.prompt = pair.target
        self.height, self.width = pair.resolutions[0]
        with torch.inference_mode(False):
            encoded = backend.encode_prompts([pair.target, pair.unconditional])
        self.cond, self.uncond = encoded[pair.target], encoded[pair.unconditional]

    @torch.no_grad()  # the trainer runs with grad enabled; a host's VAE may hold inference tensors
    def __call__(self, network, step: int, should_stop: Optional[Callable[[], bool]] = None) -> Image.Image:
        sampling = self.config.sampling
        latents = preview_latents(self.backend, network, self.cond, self.uncond, self.policy.weights, self.height, self.width,
                                  steps=min(self.policy.max_steps, sampling.max_denoising_steps),
                                  cfg=sampling.leco_denoise_guidance_scale, seed=self.config.seed,
                                  spacing=sampling.timestep_spacing, should_stop=should_stop)
        pixels = self.backend.decode(latents)
        images = pixels_to_pil(latent_preview_pixels(latents) if pixels is None else pixels)
        labels = [f"w = {w:g}" for w in self.policy.weights]
        return labelled_grid([images], [f"step {step}: {self.prompt}"], labels, min_tile=96)
