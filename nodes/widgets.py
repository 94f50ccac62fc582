"""Widgets built from the engine's config fields: the field's help string is the tooltip, its bounds the
widget's, and a registry-backed field becomes a combo listing what the registry holds."""

from __future__ import annotations

import dataclasses
from typing import Any

from comfy_api.latest import io

from ..loba.adapters.initializers import INITIALIZERS
from ..loba.adapters.targeting import TARGETING_PRESETS
from ..loba.diffusion.spacing import TIMESTEP_SPACINGS
from ..loba.objectives.losses import LOSSES
from ..loba.optim import OPTIMIZERS, SCHEDULES

REGISTRIES = {"targeting_presets": TARGETING_PRESETS, "optimizers": OPTIMIZERS, "schedules": SCHEDULES, "losses": LOSSES,
              "timestep_spacings": TIMESTEP_SPACINGS, "initializers": INITIALIZERS}


def _field(cls, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name}")


def choices(meta: dict) -> list[str]:
    raw = meta.get("choices")
    return list(REGISTRIES[raw].names()) if isinstance(raw, str) else list(raw)


def config_input(cls, name: str, *, default: Any = None, tooltip: str | None = None, optional: bool = False,
                 step: float | None = None, display_name: str | None = None) -> io.Input:
    """The widget of one config field (default: the field's own default)."""
    f = _field(cls, name)
    meta = dict(f.metadata)
    value = f.default if default is None else default
    common = {"tooltip": tooltip or meta.get("help", ""), "optional": optional, "display_name": display_name}
    if "choices" in meta:
        return io.Combo.Input(name, options=choices(meta), default=value, **common)
    if isinstance(value, bool):
        return io.Boolean.Input(name, default=value, **common)
    if isinstance(value, int):
        return io.Int.Input(name, default=value, min=meta.get("min", 0), max=meta.get("max", 2**31 - 1), **common)
    if isinstance(value, float):
        # An exclusive minimum ("> 0": learning_rate, huber_delta) keeps the bound as the widget's min: the frontend
        # has no exclusive bound, and a min of one step would forbid smaller valid values (a learning rate of 5e-6).
        # The config refuses the bound itself, naming the field.
        return io.Float.Input(name, default=value, min=meta.get("min", -1e9), max=meta.get("max", 1e9),
                              step=step or 0.01, round=False, **common)
    return io.String.Input(name, default=str(value), **common)
