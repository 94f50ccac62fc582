"""The ceiling of a one-attribute slider: what the model itself keeps when the prompt changes mid-sample.

A slider that moves one attribute the way the model's own concept does ("a circle" -> "a large circle") can at
best behave like sampling the base prompt and switching to the pole prompt below some timestep T: above T the
slider is trained to leave the model alone (`preserve_from_timestep`), below it the pole prompt takes over. Which
other attributes survive that switch is a property of the model, not of any trainer: on the toy world an
under-specified prompt's color is still being decided while its size is (measured: benchmarks.prompt_switch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .metrics import CATEGORICAL
from .model import DEFAULT_SAMPLING
from .reader import read_batch
from .sampling import UNCONDITIONAL, ToySampler

NEVER = 0  # switch_below = 0: no timestep is below it, the base prompt throughout
FROM_THE_START = 1001  # every toy timestep (< 1000) is below it: the pole prompt throughout


def sample_with_switch(sampler: ToySampler, base: str, pole: str, switch_below: int, seeds: Sequence[int],
                       steps: int = DEFAULT_SAMPLING["steps"], cfg: float = DEFAULT_SAMPLING["cfg"]) -> np.ndarray:
    """uint8 [N, 64, 64, 3]: DDIM from each seed's noise on `base`, conditioned on `pole` at timesteps < switch_below."""
    negative = sampler.embed([UNCONDITIONAL] * len(seeds))
    contexts = {prompt: torch.cat([negative, sampler.embed([prompt] * len(seeds))]) for prompt in (base, pole)}
    return sampler.denoise(seeds, lambda t: contexts[pole if t < switch_below else base], steps, cfg)


@dataclass(frozen=True)
class SwitchFigures:
    """One (base, pole, T) cell: `kept` = fraction of samples whose other attributes all equal the base sample's,
    `per_attribute` the same per attribute, `effect` = fraction whose moved attribute reads as the pole's value."""

    base: str
    pole: str
    switch_below: int
    kept: float
    per_attribute: dict
    effect: float


def switch_figures(base_reads, switched_reads, base: str, pole: str, switch_below: int, attribute: str,
                   pole_value: str) -> SwitchFigures:
    others = [a for a in CATEGORICAL if a != attribute]
    pairs = list(zip(switched_reads, base_reads))
    same = {a: float(np.mean([getattr(s, a) == getattr(b, a) for s, b in pairs])) for a in others}
    kept = float(np.mean([all(getattr(s, a) == getattr(b, a) for a in others) for s, b in pairs]))
    effect = float(np.mean([getattr(s, attribute) == pole_value for s, _ in pairs]))
    return SwitchFigures(base, pole, switch_below, kept, same, effect)


def switch_table(sampler: ToySampler, base: str, poles: dict[str, str], attribute: str, switches: Sequence[int],
                 seeds: Sequence[int], steps: int = DEFAULT_SAMPLING["steps"]) -> list[SwitchFigures]:
    """Every pole (value -> prompt) x switch timestep, against the base prompt's own same-seed samples."""
    base_reads = read_batch(sample_with_switch(sampler, base, base, NEVER, seeds, steps))
    return [switch_figures(base_reads, read_batch(sample_with_switch(sampler, base, pole, below, seeds, steps)),
                           base, pole, below, attribute, value)
            for value, pole in poles.items() for below in switches]
