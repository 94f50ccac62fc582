"""Config fields and their bounds: one source for the config's checks and the node widgets' limits.

`option(...)` puts a field's help string and bounds in its metadata; `check_bounds` enforces them, and
nodes/widgets.py gives the same min/max to the widgets, so the two cannot drift apart. Metadata keys:

- min, max: inclusive bounds;
- min_exclusive: the rule is "> min" (a learning rate of 0 trains nothing). The frontend has no exclusive
  bound, so the widget keeps min as its limit and the config refuses the bound itself with this message;
- choices: a tuple is checked here; a string names a registry, checked against the registry when the run is
  built (plugins may register names after the config is made);
- example: the value the error message suggests (default: the field's default);
- rule: a function of the whole config for a combination this field refuses, run after every bound holds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any

from ..errors import ConfigError


def option(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with a help string and optional bounds (see the module docstring)."""
    meta = {"help": help, **extra}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def require(cond: bool, name: str, message: str) -> None:
    """A rule the metadata cannot express (across fields); bounds of one field belong in its metadata."""
    if not cond:
        raise ConfigError(name, message)


def check_bounds(config: Any) -> None:
    """Raise ConfigError(field, fix) for the first field of this dataclass instance outside its metadata bounds."""
    for f in dataclasses.fields(config):
        message = bound_violation(f, getattr(config, f.name))
        if message is not None:
            raise ConfigError(f.name, message)
    for f in dataclasses.fields(config):  # a rule across fields that belongs to one field (metadata "rule")
        if "rule" in f.metadata:
            f.metadata["rule"](config)


def bound_violation(f: dataclasses.Field, value: Any) -> str | None:
    """The fix for `value` in field `f`, or None when it is within the field's bounds."""
    meta = f.metadata
    choices = meta.get("choices")
    if isinstance(choices, tuple):
        return None if value in choices else f"use {_or_list(choices)}"
    # NaN and infinity are never wanted: inf passes a one-sided bound, and a field without bounds checks nothing.
    not_finite = isinstance(value, float) and not math.isfinite(value)
    if "min" not in meta and "max" not in meta:
        return f"must be a finite number, e.g. {_example(f)}" if not_finite else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"expected a number, got {value!r}"
    low, high, exclusive = meta.get("min"), meta.get("max"), bool(meta.get("min_exclusive"))
    # Written so that NaN fails every comparison and is refused.
    below = low is not None and not (number > low if exclusive else number >= low)
    above = high is not None and not number <= high
    if not (below or above):
        return f"must be a finite number, e.g. {_example(f)}" if not_finite else None
    return f"must be {describe_bounds(meta)}, e.g. {_example(f)}"


def describe_bounds(meta: Any) -> str:
    """'>= 1', '> 0', '<= 1000', 'in [0, 1]' or 'in (0, 1]'."""
    low, high, exclusive = meta.get("min"), meta.get("max"), bool(meta.get("min_exclusive"))
    if low is not None and high is not None:
        return f"in {'(' if exclusive else '['}{_number(low)}, {_number(high)}]"
    if low is not None:
        return f"{'>' if exclusive else '>='} {_number(low)}"
    return f"<= {_number(high)}"


def bounded_fields(cls) -> list[dataclasses.Field]:
    """The fields of a config class whose values the metadata limits (numeric bounds or tuple choices)."""
    return [f for f in dataclasses.fields(cls)
            if "min" in f.metadata or "max" in f.metadata or isinstance(f.metadata.get("choices"), tuple)]


def _example(f: dataclasses.Field) -> str:
    return str(f.metadata.get("example", f.default))


def _number(x: float) -> str:
    return f"{x:g}"


def _or_list(items: tuple) -> str:
    names = [str(item) for item in items]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# Lists a user types (comma-separated weights, one prompt per line): each item costs a full sampling run, so an
# over-long list would keep a run busy for hours (and ignore nothing but cancel). One cap for every host and node.
MAX_PREVIEW_WEIGHTS = 16  # slider weights of a training preview or a Preview Grid's columns
MAX_GRID_PROMPTS = 16  # rows of a Preview Grid


def check_count(items: Any, name: str, limit: int, what: str) -> None:
    """ConfigError(name) when `items` holds more than `limit` entries."""
    if len(items) > limit:
        raise ConfigError(name, f"has {len(items)} {what}; at most {limit} are sampled (each one is a full sampling "
                                "run), so give fewer")
