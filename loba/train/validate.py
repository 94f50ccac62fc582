"""Checks that run before any model work, so bad input fails fast with a clear message."""

from __future__ import annotations

from typing import Optional

from ..adapters.initializers import INITIALIZERS
from ..adapters.targeting import TARGETING_PRESETS, check_preset_family
from ..config.train_config import TrainConfig
from ..diffusion.spacing import TIMESTEP_SPACINGS
from ..errors import ConfigError, SpecError
from ..models.buckets import check_family_sizes, family_size_problem
from ..objectives.actions import OBJECTIVES
from ..objectives.losses import LOSSES
from ..optim import validate_names
from ..prompts import PromptSet
from .timestep_draws import allowed_indices, pair_draws, run_grid


def validate_before_model_work(prompts: PromptSet, config: TrainConfig, family: Optional[str] = None,
                               default_resolution: int = 0) -> None:
    """`family`, when already known (a host hands over its model), also checks every size against its rules."""
    if family is not None:
        check_sizes_for_family(prompts, family, default_resolution)
    prompts.validate()
    validate_names(config.optimizer)
    LOSSES.get(config.loss.loss_type)
    TARGETING_PRESETS.get(config.network.preset)
    if family is not None:
        check_preset_family(config.network.preset, family)
    INITIALIZERS.get(config.network.init)
    TIMESTEP_SPACINGS.get(config.sampling.timestep_spacing)
    grid = run_grid(config.sampling)
    allowed = allowed_indices(grid, config.sampling)
    for pair in prompts.pairs():
        pair_draws(pair, grid, allowed)  # every pair's timestep window holds a step this run trains at
        if pair.action not in OBJECTIVES:
            raise SpecError(pair.name or "prompt pair", "action",
                            f"unknown action '{pair.action}'; use one of {', '.join(OBJECTIVES.names())}")


def check_sizes_for_family(prompts: PromptSet, family: str, default_resolution: int = 0) -> None:
    """Every training size a multiple of the family's side step (8; 64 for SDXL), before the model runs once."""
    if default_resolution:
        problem = family_size_problem((default_resolution, default_resolution), family)
        if problem:
            raise ConfigError("resolution", f"the run's default {problem}")
    for index, entry in enumerate(prompts.entries):
        check_family_sizes(entry.resolutions, family, entry.name or f"prompt entry {index + 1}", "resolution")
