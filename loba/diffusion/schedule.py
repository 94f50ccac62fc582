"""Discrete DDPM noise schedule math in the model's own parameterization (see parameterizations.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .parameterizations import PARAMETERIZATIONS, Parameterization


def scaled_linear_alphas_cumprod(beta_start: float, beta_end: float, steps: int = 1000) -> torch.Tensor:
    """Stable Diffusion's "scaled_linear" training schedule, float64 as NoiseSchedule expects."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, dim=0)


@dataclass(frozen=True)
class NoiseSchedule:
    alphas_cumprod: torch.Tensor  # float64, [num_train_timesteps], CPU
    prediction_type: str = "epsilon"

    def __post_init__(self):
        PARAMETERIZATIONS.get(self.prediction_type)  # fails early, listing the supported ones

    @property
    def parameterization(self) -> Parameterization:
        return PARAMETERIZATIONS.get(self.prediction_type)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def coefficients(self, timesteps: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, s) for integer timesteps [B], shaped to broadcast against `like` [B, C, H, W]."""
        ac = self.alphas_cumprod[timesteps.long().cpu()]
        shape = (-1,) + (1,) * (like.ndim - 1)
        a = ac.sqrt().to(like.device, torch.float32).reshape(shape)
        s = (1 - ac).sqrt().to(like.device, torch.float32).reshape(shape)
        return a, s

    def snr(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) at the real timesteps, float32 [B]."""
        ac = self.alphas_cumprod[timesteps.long().cpu()]
        return (ac / (1 - ac)).float()

    def to_epsilon(self, output: torch.Tensor, x_t: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.parameterization.to_epsilon(output, x_t, *self.coefficients(timesteps, x_t))

    def to_x0(self, output: torch.Tensor, x_t: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.parameterization.to_x0(output, x_t, *self.coefficients(timesteps, x_t))

    def from_epsilon(self, eps: torch.Tensor, x_t: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Express an epsilon prediction in this schedule's parameterization."""
        return self.parameterization.from_epsilon(eps, x_t, *self.coefficients(timesteps, x_t))

    def ddim_grid(self, num_steps: int) -> torch.Tensor:
        """Descending timesteps of a `leading`-spaced DDIM grid with offset 1 (SD's scheduler)."""
        if num_steps < 1 or num_steps > self.num_train_timesteps:
            raise ConfigError("max_denoising_steps", f"must be in 1..{self.num_train_timesteps}")
        ratio = self.num_train_timesteps // num_steps
        grid = torch.arange(num_steps, dtype=torch.long) * ratio + 1
        return grid.flip(0).clamp(max=self.num_train_timesteps - 1)

    def ddim_step(self, output: torch.Tensor, x_t: torch.Tensor, t: int, t_prev: int | None) -> torch.Tensor:
        """Deterministic DDIM (eta=0) from t to t_prev (None: to x0) in the model's parameterization."""
        ts = torch.full((x_t.shape[0],), t, dtype=torch.long)
        x0 = self.to_x0(output, x_t, ts)
        eps = self.to_epsilon(output, x_t, ts)
        if t_prev is None:
            return x0
        a_prev, s_prev = self.coefficients(torch.full_like(ts, t_prev), x_t)
        return a_prev * x0 + s_prev * eps
