"""The LOBA socket types and the values that travel on them.

LOBA_PROMPTS carries an engine PromptSet (immutable: every prompt node returns a new one);
LOBA_SLIDER a SliderFile (kohya tensors + metadata), the same thing a saved file holds, so every node
that consumes a slider treats a trained, loaded or merged one alike; the three config sockets carry
ConfigPart, a named group of TrainConfig fields that the Train node lays over its own widgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from comfy_api.latest import io

PromptsSocket = io.Custom("LOBA_PROMPTS")
SliderSocket = io.Custom("LOBA_SLIDER")
TargetingSocket = io.Custom("LOBA_TARGETING")
LossSocket = io.Custom("LOBA_LOSS")
OptimizerSocket = io.Custom("LOBA_OPTIMIZER")
SamplingSocket = io.Custom("LOBA_SAMPLING")


@dataclass(frozen=True)
class ConfigPart:
    """Flat TrainConfig fields set by one config node (e.g. the Loss node's loss_type, huber_delta, ...)."""

    source: str  # the node's display name, for messages
    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))


TimestepsSocket = io.Custom("LOBA_TIMESTEPS")


@dataclass(frozen=True)
class TimestepSchedule:
    """What LOBA Timestep Schedule hands to a prompt node: the entry fields timestep_window and timestep_curve."""

    window: tuple[int, int]
    curve: str

    def fields(self) -> dict:
        return {"timestep_window": tuple(self.window), "timestep_curve": self.curve}


RegionSocket = io.Custom("LOBA_REGION")  # carries a loba.prompts.region.AttentionRegion
LayersSocket = io.Custom("LOBA_LAYERS")  # carries a tuple of loba.prompts.layers.RegionLayer, bottom to top
