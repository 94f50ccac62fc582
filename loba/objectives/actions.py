"""Training objectives: what the student should predict for a prompt pair.

All predictions are in the model's own parameterization (epsilon or v). Every target below is an
affine combination whose coefficients sum to 1 (1 - g + g), so it means the same thing in either
parameterization for a fixed x_t: v = eps/a - (s/a)*x_t is affine in eps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..registry import Registry


@dataclass(frozen=True)
class Objective:
    """Which teacher prompts a pair needs and how their predictions combine into the target."""

    teacher_prompts: Callable[[object], tuple[str, ...]]
    combine: Callable[[object, Mapping[str, object]], object]
    description: str


OBJECTIVES: Registry[Objective] = Registry("action", field="action")


def _concept_prompts(pair) -> tuple[str, ...]:
    return tuple(dict.fromkeys((pair.neutral, pair.positive, pair.unconditional)))


def _offset(pair, teacher):
    return pair.guidance_scale * (teacher[pair.positive] - teacher[pair.unconditional])


OBJECTIVES.register("erase", Objective(
    _concept_prompts,
    lambda pair, teacher: teacher[pair.neutral] - _offset(pair, teacher),
    "student(target) -> neutral - g * (positive - unconditional): moves the target away from the concept",
))
OBJECTIVES.register("enhance", Objective(
    _concept_prompts,
    lambda pair, teacher: teacher[pair.neutral] + _offset(pair, teacher),
    "student(target) -> neutral + g * (positive - unconditional): moves the target toward the concept",
))
