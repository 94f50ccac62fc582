"""Canaries: how far the slider moves the model's prediction at a fixed set of prompts, measured every
canary_every steps while it trains, for every objective.

Drift = ||eps(slider at 1) - eps(slider off)|| / ||eps(slider off)|| (relative L2) over the canary prompts,
at fixed noise (its own seed, never the run's generator), one mid timestep and a small resolution, no
decoding. The slider-off prediction never changes (the base model is frozen), so it is computed once and
kept: each measurement is ONE batched forward without grad. The prompts are encoded once, when the monitor
is built (before the training session, like the training prompts). The monitor holds no state a checkpoint
needs (the kept prediction is recomputed the same after a resume), so resume stays exact.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..models.backend import Conditioning, SizeConditioning
from .phases import PhaseClock

DEFAULT_CANARY_PROMPTS = ("a photo", "a landscape", "a portrait of a person", "a cat", "a city street at night")
CANARY_TIMESTEP = 500  # mid schedule: neither pure layout nor pure detail
CANARY_SEED = 20260  # fixed, so drift figures compare across runs and seeds
CANARY_MAX_RESOLUTION = 512  # SDXL's 1024 would cost 4x for the same signal


class CanaryBudgetExceeded(Exception):
    """Raised between steps when the drift passes canary_drift_budget; the run ends as stopped."""


class CanaryMonitor:
    def __init__(self, trainer):
        config = trainer.config
        self.trainer = trainer
        self.every = config.canary_every
        self.budget = config.canary_drift_budget
        self.prompts = tuple(config.canary_prompts) or DEFAULT_CANARY_PROMPTS
        self._noise: Optional[torch.Tensor] = None
        self._base: Optional[torch.Tensor] = None
        # Encoded here, outside the training session (a host's text encoder may move models when it runs).
        self._cond: Optional[Conditioning] = self._encode() if self.every > 0 else None

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def after_step(self, step: int, clock: PhaseClock) -> Optional[float]:
        """The drift after optimizer step `step` when one is due (timed as the 'canaries' phase), else None."""
        if not self.due(step):
            return None
        with clock("canaries"):
            return self.measure()

    def check_budget(self, drift: Optional[float], step: int) -> None:
        if drift is not None and self.budget > 0 and drift > self.budget:
            raise CanaryBudgetExceeded(f"stopped by the canary drift budget: drift {drift:.4g} > canary_drift_budget "
                                       f"{self.budget:g} at step {step}; the partial slider is saved")

    @torch.no_grad()
    def measure(self) -> float:
        step = self.trainer.step
        network = step.network
        previous = network.multiplier
        try:
            if self._base is None:
                self._prepare()
                network.multiplier = 0.0
                self._base = self._predict()
            network.multiplier = 1.0
            moved = self._predict()
        finally:
            network.multiplier = previous
        return float((moved - self._base).norm() / self._base.norm().clamp_min(1e-12))

    def _encode(self) -> Conditioning:
        embeddings = self.trainer.backend.encode_prompts(list(dict.fromkeys(self.prompts)))
        return Conditioning.cat([embeddings[p] for p in self.prompts])

    def _prepare(self) -> None:
        backend = self.trainer.backend
        if self._cond is None:  # canaries off but measured directly (tests)
            self._cond = self._encode()
        side = min(backend.native_resolution, CANARY_MAX_RESOLUTION) // backend.vae_scale_factor
        generator = torch.Generator().manual_seed(CANARY_SEED)
        noise = torch.randn((1, backend.latent_channels, side, side), generator=generator)
        self._noise = noise.to(backend.device).repeat(len(self.prompts), 1, 1, 1)

    def _predict(self) -> torch.Tensor:
        backend = self.trainer.backend
        side = self._noise.shape[-1] * backend.vae_scale_factor
        size = SizeConditioning.plain(side, side) if backend.family == "sdxl" else None
        return self.trainer.step._predict(self._noise, CANARY_TIMESTEP, self._cond, size)
