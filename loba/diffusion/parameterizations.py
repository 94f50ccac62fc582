"""What the model predicts: epsilon, v or a flow velocity. A registry, so a new parameterization is one registration.

With a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t) and x_t = a*x0 + s*eps:
    v = a*eps - s*x0,   eps = a*v + s*x_t,   x0 = a*x_t - s*v = (x_t - s*eps) / a.

Where alpha_bar = 0 (zero terminal SNR: a = 0, s = 1) the v forms stay finite (x0 = -v, eps = x_t); the two that
divide by a (epsilon's x0, v from eps) are undefined there, and schedule.py refuses both rather than divide.

Flow matching (Flux, SD3) writes x_t = (1 - sigma)*x0 + sigma*eps: the same linear form with a = 1 - sigma, s = sigma
(a + s = 1, not a^2 + s^2 = 1), and the model predicts the velocity u = dx_t/dsigma = eps - x0:
    x0 = x_t - s*u,   eps = x_t + a*u,   u = (eps - x_t) / a.
DDIM's step a'*x0 + s'*eps is then exactly an Euler step of the flow ODE (x_t + (sigma' - sigma)*u).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..registry import Registry

Tensor = torch.Tensor


@dataclass(frozen=True)
class Parameterization:
    to_epsilon: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]  # (output, x_t, a, s) -> eps
    to_x0: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]  # (output, x_t, a, s) -> x0
    from_epsilon: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]  # (eps, x_t, a, s) -> output
    # Min-SNR-gamma weight from the SNR at the real timestep. For a fixed x_t, v = eps/a - (s/a)*x_t,
    # so a v-space squared error is the eps-space one times 1/a^2 = (snr+1)/snr: the v weight is the
    # eps weight times snr/(snr+1), which makes both train identically.
    min_snr_weight: Callable[[Tensor, float], Tensor]


PARAMETERIZATIONS: Registry[Parameterization] = Registry("prediction type", field="prediction_type")

PARAMETERIZATIONS.register("epsilon", Parameterization(
    to_epsilon=lambda out, x, a, s: out,
    to_x0=lambda out, x, a, s: (x - s * out) / a,
    from_epsilon=lambda eps, x, a, s: eps,
    # min(snr, gamma)/snr written as gamma/max(snr, gamma) (gamma > 0): 1 at snr = 0, with no division by zero.
    min_snr_weight=lambda snr, gamma: gamma / torch.clamp(snr, min=gamma),
))
PARAMETERIZATIONS.register("v_prediction", Parameterization(
    to_epsilon=lambda out, x, a, s: a * out + s * x,
    to_x0=lambda out, x, a, s: a * x - s * out,
    from_epsilon=lambda eps, x, a, s: (eps - s * x) / a,
    min_snr_weight=lambda snr, gamma: torch.clamp(snr, max=gamma) / (snr + 1),
))
# Flow matching: for a fixed x_t, u = (eps - x_t)/a, so a velocity squared error is the eps-space one times 1/a^2.
# Weighting by a^2 * (eps's min-SNR weight) makes min-SNR train a flow model exactly as it trains eps; with
# a = sqrt(snr) / (1 + sqrt(snr)) (a + s = 1, snr = a^2/s^2) that is gamma/max(snr, gamma) * snr/(1 + sqrt(snr))^2.
PARAMETERIZATIONS.register("flow", Parameterization(
    to_epsilon=lambda out, x, a, s: x + a * out,
    to_x0=lambda out, x, a, s: x - s * out,
    from_epsilon=lambda eps, x, a, s: (eps - x) / a,
    min_snr_weight=lambda snr, gamma: gamma / torch.clamp(snr, min=gamma) * snr / (1 + snr.sqrt()) ** 2,
))
