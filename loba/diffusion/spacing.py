"""Timestep spacings of the DDIM grid: diffusers' three, by the same names and formulas.

The grid is the partial denoise's (so it decides the timesteps a step trains on) and the previews'. leading is
SD's own DDIM setting (steps_offset 1) and LECO's: its first point is T - T/n + 1 (976 of 1000 at 40 steps), so
t = T - 1 is never trained or sampled from. trailing and linspace start at t = T - 1, where a zero-terminal-SNR
schedule has alpha_bar = 0 and the initial noise IS x_t: a step may train right there on the noise itself
(first_trained_index 0), which is what zero terminal SNR exists for (Lin et al. 2024, "Common Diffusion Noise
Schedules and Sample Steps are Flawed").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..registry import Registry


@dataclass(frozen=True)
class TimestepSpacing:
    #: (num_steps, num_train_timesteps) -> descending integer timesteps [num_steps]
    timesteps: Callable[[int, int], torch.Tensor]
    #: the first grid index a step may train at: 0 where grid[0] = T - 1 and the initial noise is x_t there
    first_trained_index: int
    description: str


TIMESTEP_SPACINGS: Registry[TimestepSpacing] = Registry("timestep spacing", field="timestep_spacing")


def _leading(n: int, total: int) -> torch.Tensor:
    grid = torch.arange(n, dtype=torch.long) * (total // n) + 1
    return grid.flip(0).clamp(max=total - 1)


def _trailing(n: int, total: int) -> torch.Tensor:
    # diffusers: round(arange(T, 0, -T/n)) - 1, with numpy's start + i * step and round-half-even.
    return torch.round(total - torch.arange(n, dtype=torch.float64) * (total / n)).long() - 1


def _linspace(n: int, total: int) -> torch.Tensor:
    return torch.linspace(0, total - 1, n, dtype=torch.float64).round().flip(0).long()


TIMESTEP_SPACINGS.register("leading", TimestepSpacing(
    _leading, 1, "SD's DDIM (steps_offset 1) and LECO's; starts below t = 999"))
TIMESTEP_SPACINGS.register("trailing", TimestepSpacing(
    _trailing, 0, "starts at t = 999 and steps evenly down; for zero-terminal-SNR models"))
TIMESTEP_SPACINGS.register("linspace", TimestepSpacing(
    _linspace, 0, "evenly from t = 999 to t = 0"))
