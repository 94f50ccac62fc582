"""The evaluator registry: each evaluator names what it needs and scores images into per-image values.

score(images, prompts, reference) -> {metric: float array [N]}: images uint8 [N, H, W, 3], one prompt per
image, reference the same-seed w = 0 images (None when scoring the w = 0 images themselves: evaluators
that compare against the base then score the base against itself). An evaluator whose `reads` is "latents"
gets the sampler's final latents float32 [N, C, h, w] instead of images (the host's renderer must give them).
Optional packages are imported only when an evaluator is built; a missing one is one clear message.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import numpy as np

from ..errors import ConfigError
from ..registry import Registry


class Evaluator:
    """Base class: `name`, `needs` (a human line: what it loads), `metrics` (what score() returns), score()."""

    name = ""
    needs = "nothing"
    metrics: tuple[str, ...] = ()
    reads = "images"  # or "latents": the sampler's final latents, before the VAE

    def score(self, images: np.ndarray, prompts: Sequence[str], reference: Optional[np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError


#: name -> (settings: dict, field prefix) -> Evaluator. Builders validate settings (no model loading there).
EVALUATORS: Registry[Callable[..., Evaluator]] = Registry("evaluator", field="evaluators")
#: name -> validate(settings, field) -> settings: checks a spec's [evaluators.NAME] table before any sampling.
VALIDATORS: dict[str, Callable[[Mapping[str, Any], str], dict]] = {}


def register(name: str, validate: Callable[[Mapping[str, Any], str], dict]):
    def add(builder):
        EVALUATORS.register(name, builder)
        VALIDATORS[name] = validate
        return builder

    return add


def require(module: str, package: str, evaluator: str):
    """Import an optional package, or fail with one line naming the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"evaluators.{evaluator}", f"needs the '{package}' package, which is not installed "
                                                      f"(pip install {package}); or drop this evaluator from the spec") from None


def check_keys(settings: Mapping[str, Any], allowed: Sequence[str], field: str) -> None:
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ConfigError(f"{field}.{unknown[0]}", f"unknown setting; known: {', '.join(allowed) or '(none)'}")


def threshold(settings: Mapping[str, Any], field: str, default: float) -> float:
    value = settings.get("threshold", default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{field}.threshold", f"must be a number in [0, 1], got {value!r}")
    return float(value)

