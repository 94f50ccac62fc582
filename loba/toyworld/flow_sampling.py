"""Sampling the flow toy model (with a slider at a chosen weight): flow Euler on its sigma table with CFG.

The same contract as sampling.ToySampler (the evaluator and the competence check use either): each sample's
noise comes from its seed alone, the slider acts through the adapter network's multiplier (0 = the base
model bit for bit), prompt embeddings are computed once. The walk is cfg_ddim on the flow schedule, whose
DDIM step is exactly the Euler step of the flow ODE, on a trailing grid (999 .. 39, then to x0): the first
step starts at sigma = 1, where the initial noise IS x_t.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..adapters.text_encoder import has_text_encoder
from ..diffusion.sampler import cfg_ddim
from ..diffusion.schedule import NoiseSchedule
from .flow_model import FLOW_SAMPLING, FlowComponents, encode_text, flow_velocity
from .sampling import UNCONDITIONAL, initial_noise, to_uint8


def flow_noise_schedule(components: FlowComponents) -> NoiseSchedule:
    return NoiseSchedule.flow(components.sigmas())


class FlowToySampler:
    """Deterministic flow Euler with classifier-free guidance on the flow toy model."""

    def __init__(self, components: FlowComponents, device: str | torch.device = "cpu"):
        self.components = components
        self.device = torch.device(device)
        for module in (components.transformer, components.text_encoder, components.vae):
            module.to(self.device).eval().requires_grad_(False)
        self.schedule = flow_noise_schedule(components)
        self._embeddings: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def embed(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [p for p in dict.fromkeys(prompts) if p not in self._embeddings]
        if missing:
            context, pooled = encode_text(self.components.tokenizer, self.components.text_encoder, missing)
            self._embeddings.update({p: (c, q) for p, c, q in zip(missing, context, pooled)})
        return (torch.stack([self._embeddings[p][0] for p in prompts]), torch.stack([self._embeddings[p][1] for p in prompts]))

    def sample(self, prompts: Sequence[str], seeds: Sequence[int], slider=None, weight: float = 0.0,
               steps: int = FLOW_SAMPLING["steps"], cfg: float = FLOW_SAMPLING["cfg"], batch_size: int = 64, *,
               negative: str = UNCONDITIONAL) -> np.ndarray:
        """uint8 [N, 64, 64, 3] for prompts[i] from seeds[i]; the slider (if any) at multiplier `weight`."""
        from .sampling import slider_root

        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds: give one seed per sample")
        if slider is None or slider.is_attached:
            return self._sample_with(slider, weight, prompts, seeds, steps, cfg, batch_size, negative)
        with slider.attached(slider_root(self.components, slider), self.device):
            return self._sample_with(slider, weight, prompts, seeds, steps, cfg, batch_size, negative)

    def _sample_with(self, slider, weight, prompts, seeds, steps, cfg, batch_size, negative) -> np.ndarray:
        previous = slider.multiplier if slider is not None else None
        if slider is not None:
            slider.multiplier = weight
        text = slider is not None and has_text_encoder(slider.names)
        if text:
            self._embeddings = {}  # a text-encoder slider changes the embeddings with its weight
        try:
            chunks = [self._sample_batch(prompts[i:i + batch_size], seeds[i:i + batch_size], steps, cfg, negative)
                      for i in range(0, len(prompts), batch_size)]
        finally:
            if slider is not None:
                slider.multiplier = previous
            if text:
                self._embeddings = {}
        return np.concatenate(chunks) if chunks else np.zeros((0, 64, 64, 3), np.uint8)

    @torch.no_grad()
    def _sample_batch(self, prompts, seeds, steps: int, cfg: float, negative: str) -> np.ndarray:
        n = len(prompts)
        negative_context, negative_pooled = self.embed([negative] * n)
        context, pooled = self.embed(list(prompts))
        context, pooled = torch.cat([negative_context, context]), torch.cat([negative_pooled, pooled])
        sigmas = self.components.sigmas()
        grid = self.schedule.ddim_grid(steps, FLOW_SAMPLING["spacing"]).tolist()

        def predict(x_pair: torch.Tensor, t: int) -> torch.Tensor:
            sigma = torch.full((2 * n,), float(sigmas[t]), device=self.device)
            return flow_velocity(self.components.transformer, x_pair, sigma, context, pooled)

        [x] = cfg_ddim(predict, initial_noise(seeds).to(self.device), self.schedule, grid, cfg)
        decoded = self.components.vae.decode(x / self.components.scaling_factor).sample
        return to_uint8(decoded)
