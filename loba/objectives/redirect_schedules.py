"""How far a re-attach target has moved from the teacher's own prediction toward the redirect: lambda in [0, 1].

target = teacher(caption) + lambda * (teacher(redirect) - teacher(caption)) at the same x_t. lambda = 0 is the
frozen model itself (the student starts there: the adapter is zero), lambda = 1 is the redirect. A schedule
that ramps lambda over the first `ramp` fraction of training keeps every step's target within a small move of
what the student already predicts, so the adapter never jumps toward a far target at a large learning rate
(where a sudden target is what breaks the rest of the model); after the ramp the target holds at the redirect
so training converges on it. The timestep factor lets a schedule move layout (high t) before detail (low t).

A schedule is `(progress, timestep, ramp) -> lambda`: progress = finished steps / max_train_steps in [0, 1],
timestep in [0, 1000), ramp in [0, 1]. Extend with REDIRECT_SCHEDULES.register("mine", fn).
"""

from __future__ import annotations

import math

from ..registry import Registry

REDIRECT_SCHEDULES: Registry = Registry("redirect schedule", field="schedule")


def _ramp_fraction(progress: float, ramp: float) -> float:
    return 1.0 if ramp <= 0 else min(max(progress / ramp, 0.0), 1.0)


def linear(progress: float, timestep: int, ramp: float) -> float:
    """Straight from the teacher to the redirect over the first `ramp` of training, then held."""
    return _ramp_fraction(progress, ramp)


def cosine(progress: float, timestep: int, ramp: float) -> float:
    """Like linear but with zero slope at both ends: the slowest start and the smoothest arrival."""
    return 0.5 - 0.5 * math.cos(math.pi * _ramp_fraction(progress, ramp))


def constant(progress: float, timestep: int, ramp: float) -> float:
    """The redirect from the first step (no interpolation; `ramp` is ignored). The baseline the others beat."""
    return 1.0


def layout_first(progress: float, timestep: int, ramp: float) -> float:
    """High-noise timesteps (where composition and color are decided) reach the redirect first; low-noise
    ones (texture, detail) follow half a ramp later, so the model's detail is the last thing to move."""
    lag = 0.5 * ramp * (1.0 - min(max(timestep / 1000.0, 0.0), 1.0))
    return _ramp_fraction(progress - lag, ramp * 0.5 if ramp > 0 else 0.0) if ramp > 0 else 1.0


for _name, _fn in (("linear", linear), ("cosine", cosine), ("constant", constant), ("layout_first", layout_first)):
    REDIRECT_SCHEDULES.register(_name, _fn)

DEFAULT_REDIRECT_SCHEDULE = "linear"
DEFAULT_RAMP = 0.5
