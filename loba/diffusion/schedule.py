"""Discrete DDPM noise schedule math in the model's own parameterization (see parameterizations.py).

Zero terminal SNR (alpha_bar = 0 at the last timestep; ComfyUI's zsnr leaves 4.9e-8 there, diffusers' rescale
exactly 0): v-prediction is well defined there (x0 = -v, eps = x_t), epsilon is not (x0 = (x_t - s*eps) / a with
a = 0), so an epsilon schedule with zero terminal SNR is refused (the zero-terminal-SNR paper pairs it with v).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

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
    """x_t = a_t*x0 + s_t*eps at integer timesteps 0..N-1. DDPM: a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar).
    Flow matching (`NoiseSchedule.flow`): a = 1 - sigma, s = sigma, and alphas_cumprod holds the variance-preserving
    alpha_bar of the same SNR, a^2 / (a^2 + s^2), so SNR, zero terminal SNR and the spacings read the same."""

    alphas_cumprod: torch.Tensor  # float64, [num_train_timesteps], CPU
    prediction_type: str = "epsilon"
    sigmas: Optional[torch.Tensor] = None  # flow matching only: float64 [num_train_timesteps], ascending to 1

    def __post_init__(self):
        PARAMETERIZATIONS.get(self.prediction_type)  # fails early, listing the supported ones
        if (self.sigmas is None) != (self.prediction_type != "flow"):
            raise ValueError("a flow schedule is made with NoiseSchedule.flow(sigmas); DDPM schedules have no sigmas")
        if self.prediction_type == "epsilon" and self.zero_terminal_snr:
            raise UnsupportedModelError(EPSILON_ZSNR)

    @staticmethod
    def flow(sigmas: torch.Tensor) -> NoiseSchedule:
        """A flow-matching schedule from its sigma at each integer timestep (ascending, the last one 1: pure noise)."""
        sigmas = sigmas.detach().to("cpu", torch.float64)
        if sigmas.ndim != 1 or bool((sigmas <= 0).any()) or bool((sigmas > 1).any()) or bool((sigmas.diff() <= 0).any()):
            raise ValueError("flow sigmas must be one ascending 1-D series in (0, 1]")
        signal = 1 - sigmas
        return NoiseSchedule(signal**2 / (signal**2 + sigmas**2), "flow", sigmas)

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
        index = timesteps.long().cpu()
        shape = (-1,) + (1,) * (like.ndim - 1)
        if self.sigmas is not None:
            sigma = self.sigmas[index]
            a, s = 1 - sigma, sigma
        else:
            ac = self.alphas_cumprod[index]
            a, s = ac.sqrt(), (1 - ac).sqrt()
        return a.to(like.device, torch.float32).reshape(shape), s.to(like.device, torch.float32).reshape(shape)

    def snr(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) at the real timesteps, float32 [B]."""
        ac = self.alphas_cumprod[timesteps.long().cpu()]
        return (ac / (1 - ac)).float()

    def to_epsilon(self, output: torch.Tensor, x_t: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.parameterization.to_epsilon(output, x_t, *self.coefficients(timesteps, x_t))

    def to_x0(self, output: torch.Tensor, x_t: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.parameterization.to_x0(output, x_t, *self.coefficients(timesteps, x_t))

    def from_epsilon(self, eps: torch.Tensor, x_t: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Express an epsilon prediction in this schedule's parameterization. Where alpha_bar = 0 (flow: sigma = 1),
        eps (= x_t) says nothing of x0, so no v or velocity can be made of it: refused rather than divided by zero."""
        if self.prediction_type != "epsilon" and bool((self.alphas_cumprod[timesteps.long().cpu()] == 0).any()):
            raise ValueError(f"an epsilon prediction cannot be expressed as {self.prediction_type} where alpha_bar = 0 "
                             "(zero terminal SNR)")
        return self.parameterization.from_epsilon(eps, x_t, *self.coefficients(timesteps, x_t))

    def ddim_grid(self, num_steps: int, spacing: str = "leading") -> torch.Tensor:
        """Descending timesteps of a DDIM grid of `num_steps` (leading: offset 1, SD's scheduler; see spacing.py)."""
        if num_steps < 1 or num_steps > self.num_train_timesteps:
            raise ConfigError("max_denoising_steps", f"must be in 1..{self.num_train_timesteps}")
        return TIMESTEP_SPACINGS.get(spacing).timesteps(int(num_steps), self.num_train_timesteps)

    def ddim_step(self, output: torch.Tensor, x_t: torch.Tensor, t: int, t_prev: int | None) -> torch.Tensor:
        """Deterministic DDIM (eta=0) from t to t_prev (None: to x0) in the model's parameterization; on a flow
        schedule this is the Euler step of the flow ODE (see parameterizations.py)."""
        ts = torch.full((x_t.shape[0],), t, dtype=torch.long)
        x0 = self.to_x0(output, x_t, ts)
        eps = self.to_epsilon(output, x_t, ts)
        if t_prev is None:
            return x0
        a_prev, s_prev = self.coefficients(torch.full_like(ts, t_prev), x_t)
        return a_prev * x0 + s_prev * eps
