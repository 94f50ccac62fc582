"""Training objectives: what the student should predict for a prompt pair.

All predictions are in the model's own parameterization (epsilon or v). Every target below is an
affine combination whose coefficients sum to 1 (1 - g + g, 1 - lambda + lambda), so it means the same thing
in either parameterization for a fixed x_t: v = eps/a - (s/a)*x_t is affine in eps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..registry import Registry


@dataclass(frozen=True)
class TargetContext:
    """Where in training and in the noise schedule a target is built (for objectives that move over time)."""

    progress: float  # finished steps / max_train_steps, in [0, 1]
    timestep: int


@dataclass(frozen=True)
class Objective:
    """Which teacher prompts a pair needs, how their predictions combine into the target, and which prompt's
    partial denoise draws the step's x_t (LECO's: the target prompt's own)."""

    teacher_prompts: Callable[[object], tuple[str, ...]]
    combine: Callable[[object, Mapping[str, object], TargetContext], object]
    description: str
    denoise_prompt: Callable[[object], str] = lambda pair: pair.target
    # None: any prompt pair may ask for it (`action = ...`); else the entry kind that builds its pairs.
    entry: str | None = None


def pair_actions() -> list[str]:
    """The objectives a plain prompt pair can name (the Prompt Pair node's action combo)."""
    return [name for name, objective in OBJECTIVES.items() if objective.entry is None]


OBJECTIVES: Registry[Objective] = Registry("action", field="action")


def _concept_prompts(pair) -> tuple[str, ...]:
    return tuple(dict.fromkeys((pair.neutral, pair.positive, pair.unconditional)))


def _offset(pair, teacher):
    return pair.guidance_scale * (teacher[pair.positive] - teacher[pair.unconditional])


OBJECTIVES.register("erase", Objective(
    _concept_prompts,
    lambda pair, teacher, context: teacher[pair.neutral] - _offset(pair, teacher),
    "student(target) -> neutral - g * (positive - unconditional): moves the target away from the concept",
))
OBJECTIVES.register("enhance", Objective(
    _concept_prompts,
    lambda pair, teacher, context: teacher[pair.neutral] + _offset(pair, teacher),
    "student(target) -> neutral + g * (positive - unconditional): moves the target toward the concept",
))

# RC-LOBA's repair / superimpose: the target prompt learns, on its own x_t, the frozen model's prediction for the
# prompt of the fixed (or augmented) version. With a region and mask_outside = "hold" only the region moves.
OBJECTIVES.register("repair", Objective(
    lambda pair: tuple(dict.fromkeys((pair.target, pair.positive))),
    lambda pair, teacher, context: teacher[pair.target] + pair.guidance_scale * (teacher[pair.positive] - teacher[pair.target]),
    "student(target) -> target + g * (positive - target): pulls the target toward the prompt of its fixed or "
    "augmented version (superimpose / repair; with a region and mask_outside = hold, only inside it)",
))

# A preservation prompt trained where it is drawn: x_t from the prompt's own partial denoise (an anchor is held
# at the x_t of whatever pair the step drew, so states only its own prompt reaches are never held).
OBJECTIVES.register("preserve", Objective(
    lambda pair: (pair.target,),
    lambda pair, teacher, context: teacher[pair.target],
    "student(target) -> teacher(target) on the target's own x_t: keeps the prompt where it is drawn",
))


def _reattach_target(pair, teacher, context: TargetContext):
    from .redirect_schedules import REDIRECT_SCHEDULES

    lam = REDIRECT_SCHEDULES.get(pair.schedule)(context.progress, context.timestep, pair.ramp)
    own = teacher[pair.target]
    return own + lam * (teacher[pair.positive] - own)


# U-LOBA. Each redirect prompt is its own pair (target = the caption, positive = that redirect prompt) whose
# x_t comes from the REDIRECT's partial denoise: the student's caption then regresses, on states the redirect
# distribution visits, onto the score of the component that drew them. The minimizer of that loss is the
# posterior-weighted score of the mixture (sum_i p(i | x_t) eps_i(x_t)), i.e. the redirect distribution
# itself; a plain average of the redirect predictions at the caption's own x_t would instead be a blend
# ("a blue-green-yellow triangle"), not a choice among them.
OBJECTIVES.register("reattach", Objective(
    lambda pair: tuple(dict.fromkeys((pair.target, pair.positive))),
    _reattach_target,
    "student(caption) -> teacher(caption) + lambda(step, t) * (teacher(redirect) - teacher(caption)) on the "
    "redirect's own x_t: re-attaches the caption to the redirect distribution",
    denoise_prompt=lambda pair: pair.positive,
    entry="[[reattach]] (or the LOBA Re-attach Prompt node)",
))
