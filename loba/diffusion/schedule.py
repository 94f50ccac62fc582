"""Discrete DDPM noise schedule math in the model's own parameterization (see parameterizations.py).

Zero terminal SNR (alpha_bar = 0 at the last timestep; ComfyUI's zsnr leaves 4.9e-8 there, diffusers' rescale
exactly 0): v-prediction is well defined there (x0 = -v, eps = x_t), epsilon is not (x0 = (x_t - s*eps) / a with
a = 0), so an epsilon schedule with zero terminal SNR is refused (the zero-terminal-SNR paper pairs it with v).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError, UnsupportedModelError
from .parameterizations import PARAMETERIZATIONS, Parameterization
from .spacing import TIMESTEP_SPACINGS

# A terminal alpha_bar below this is zero terminal SNR: SD's own schedule ends at 4.7e-3, ComfyUI's zsnr at 4.9e-8.
ZERO_TERMINAL_ALPHA_BAR = 1e-6
EPSILON_ZSNR = ("an epsilon-prediction model cannot train on a zero-terminal-SNR schedule: at alpha_bar = 0 its x0 "
                "(x_t - sqrt(1 - alpha_bar) * eps) / sqrt(alpha_bar) is undefined. Zero terminal SNR is for "
                "v-prediction models: use it with v_prediction, or turn it off")


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
        if self.prediction_type == "epsilon" and self.zero_terminal_snr:
            raise UnsupportedModelError(EPSILON_ZSNR)

    @property
    def zero_terminal_snr(self) -> bool:
        return float(self.alphas_cumprod[-1]) < ZERO_TERMINAL_ALPHA_BAR

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
        """Express an epsilon prediction in this schedule's parameterization. Where alpha_bar = 0, eps (= x_t)
        says nothing of x0, so no v can be made of it: refused rather than divided by zero."""
        if self.prediction_type != "epsilon" and bool((self.alphas_cumprod[timesteps.long().cpu()] == 0).any()):
            raise ValueError("an epsilon prediction cannot be expressed as v where alpha_bar = 0 (zero terminal SNR)")
        return self.parameterization.from_epsilon(eps, x_t, *self.coefficients(timesteps, x_t))

    def ddim_grid(self, num_steps: int, spacing: str = "leading") -> torch.Tensor:
        """Descending timesteps of a DDIM grid of `num_steps` (leading: offset 1, SD's scheduler; see spacing.py)."""
        if num_steps < 1 or num_steps > self.num_train_timesteps:
            raise ConfigError("max_denoising_steps", f"must be in 1..{self.num_train_timesteps}")
        return TIMESTEP_SPACINGS.get(spacing).timesteps(int(num_steps), self.num_train_timesteps)

    def ddim_step(self, output: torch.Tensor, x_t: torch.Tensor, t: int, t_prev: int | None) -> torch.Tensor:
        """Deterministic DDIM (eta=0) from t to t_prev (None: to x0) in the model's parameterization."""
        ts = torch.full((x_t.shape[0],), t, dtype=torch.long)
        x0 = self.to_x0(output, x_t, ts)
        eps = self.to_epsilon(output, x_t, ts)
        if t_prev is None:
            return x0
        a_prev, s_prev = self.coefficients(torch.full_like(ts, t_prev), x_t)
        return a_prev * x0 + s_prev * eps
