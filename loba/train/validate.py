"""Checks that run before any model work, so bad input fails fast with a clear message."""

from __future__ import annotations

from ..adapters.targeting import TARGETING_PRESETS
from ..config.train_config import TrainConfig
from ..diffusion.spacing import TIMESTEP_SPACINGS
from ..errors import SpecError
from ..objectives.actions import OBJECTIVES
from ..objectives.losses import LOSSES
from ..optim import validate_names
from ..prompts import PromptSet


def validate_before_model_work(prompts: PromptSet, config: TrainConfig) -> None:
    prompts.validate()
    validate_names(config.optimizer)
    LOSSES.get(config.loss.loss_type)
    TARGETING_PRESETS.get(config.network.preset)
    TIMESTEP_SPACINGS.get(config.sampling.timestep_spacing)
    for pair in prompts.pairs():
        if pair.action not in OBJECTIVES:
            raise SpecError(pair.name or "prompt pair", "action",
                            f"unknown action '{pair.action}'; use one of {', '.join(OBJECTIVES.names())}")
