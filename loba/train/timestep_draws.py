"""Which denoise-grid timesteps a step may train at: the run's range (min_timestep..max_timestep), then each
pair's own window and curve (loba/objectives/timestep_curves.py). Pure functions of the config and the grid, so
the same check runs before any model work (validate.py) and in the step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from ..diffusion.spacing import TIMESTEP_SPACINGS
from ..errors import ConfigError, SpecError
from ..objectives.timestep_curves import TIMESTEP_RANGE, draw_weights
from ..prompts import PromptPair

Draws = tuple[list[int], Optional[torch.Tensor]]  # grid indices, their draw weights (None: uniform)


def run_grid(sampling, num_train_timesteps: int = TIMESTEP_RANGE[1]) -> list[int]:
    return [int(t) for t in TIMESTEP_SPACINGS.get(sampling.timestep_spacing).timesteps(
        int(sampling.max_denoising_steps), num_train_timesteps)]


def allowed_indices(grid: Sequence[int], sampling) -> list[int]:
    # leading keeps LECO's k >= 1; a grid that starts at t = T - 1 may train there on the noise itself (k = 0).
    first = TIMESTEP_SPACINGS.get(sampling.timestep_spacing).first_trained_index
    allowed = [k for k in range(first, len(grid)) if sampling.min_timestep <= int(grid[k]) < sampling.max_timestep]
    if not allowed:
        raise ConfigError("min_timestep", f"no timestep of the {len(grid)}-step denoise grid lies in "
                          f"[{sampling.min_timestep}, {sampling.max_timestep}); widen the range")
    return allowed


def pair_draws(pair: PromptPair, grid: Sequence[int], allowed: Sequence[int]) -> Draws:
    """The grid indices a pair may train at (its window within the run's range) and their weights under its
    curve; a flat curve gives None, so its draws are exactly those of a pair without a schedule."""
    start, end = pair.timestep_window
    ks = [k for k in allowed if start <= int(grid[k]) < end]
    if not ks:
        raise SpecError(pair.name or "prompt pair", "timestep_window",
                        f"[{start}, {end}) holds no timestep this run trains at (the {len(grid)}-step grid within "
                        f"min_timestep..max_timestep: {[int(grid[k]) for k in allowed]}); widen the window")
    if pair.timestep_curve == "flat":
        return ks, None
    weights = draw_weights([int(grid[k]) for k in ks], pair.timestep_window, pair.timestep_curve)
    if sum(weights) <= 0:
        return ks, None
    return ks, torch.tensor(weights, dtype=torch.float64)


def draw_index(draws: Draws, generator: torch.Generator) -> int:
    ks, weights = draws
    drawn = torch.randint(len(ks), (1,), generator=generator) if weights is None else \
        torch.multinomial(weights, 1, generator=generator)
    return ks[int(drawn)]
