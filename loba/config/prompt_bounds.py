"""The bounds of a prompt entry's numbers: one source for prompt files (TOML/JSON, `loba train`) and the
prompt nodes' widgets, so a file cannot ask for what a node would never let through (a resolution of
8,000,000 would allocate terabytes; a batch of 512 latents per entry, a loss weight of 1e9).

Not a config: these are the fields of PromptPair / SliderTarget / AnchorPrompt, described with the same
option(...) metadata as the config fields, and checked by loba.prompts.spec through entry_bound_violation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .bounds import bound_violation, option


@dataclass(frozen=True)
class PromptEntryBounds:
    guidance_scale: float = option(1.0, "Strength of the concept (or pole difference) to learn; 1 = exactly its strength.",
                                   min=-100.0, max=100.0)
    resolution: int = option(512, "Training resolution in pixels, each side a multiple of 8.", min=8, max=8192)
    batch_size: int = option(1, "Latents per training step for this entry.", min=1, max=64)
    multiplier: float = option(1.0, "Slider weight the entry trains at (negative for the opposite direction).",
                               min=-10.0, max=10.0)
    weight: float = option(1.0, "Loss weight of this entry relative to the others; 0 keeps it out of training.",
                           min=0.0, max=100.0)
    ramp: float = option(0.5, "Fraction of training over which a re-attach target moves from the frozen model's own "
                         "prediction to the redirect's (then held there); 0 = the redirect from the first step.",
                         min=0.0, max=1.0)


FIELDS = {f.name: f for f in dataclasses.fields(PromptEntryBounds)}


def entry_limit(name: str, key: str) -> Any:
    """A bound of a prompt field ('min' or 'max'), for a widget."""
    return FIELDS[name].metadata[key]


def entry_bound_violation(name: str, value: Any) -> str | None:
    """The fix when `value` is outside the bounds of prompt field `name`, else None."""
    return bound_violation(FIELDS[name], value)
