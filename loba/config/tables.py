"""Checks of the config's free-form tables ({regex: value} patterns, optimizer arguments), done when the
config is made, before any model work: a NaN learning-rate multiplier or a broken regex would otherwise pass
until the model is loaded, or train a NaN slider and be blamed on the prompts at step 1."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

# pattern table -> (whole numbers only, minimum, example)
PATTERN_VALUES = {"rank_pattern": (True, 1, 8), "alpha_pattern": (False, 0.0, 4.0), "lr_pattern": (False, 0.0, 0.5)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_regex(name: str, pattern: Any) -> None:
    try:
        re.compile(str(pattern))
    except re.error as exc:
        raise ConfigError(name, f"pattern {pattern!r} is not a valid regular expression ({exc})") from None


def check_pattern_table(name: str, table: Mapping) -> None:
    """Every key a valid regex, every value a finite number within the table's range."""
    whole, minimum, example = PATTERN_VALUES[name]
    for pattern, value in table.items():
        check_regex(name, pattern)
        ok = _is_number(value) and math.isfinite(value) and value >= minimum and (not whole or float(value).is_integer())
        if not ok:
            kind = "a whole number" if whole else "a finite number"
            raise ConfigError(name, f"pattern {pattern!r}: value {value!r} must be {kind} >= {minimum:g}, "
                                    f"e.g. {{\"{pattern}\" = {example}}}")


def check_finite_values(name: str, value: Any, where: str = "") -> None:
    """No NaN or infinity anywhere in a nested table of arguments (e.g. optimizer_args betas)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_finite_values(name, item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_finite_values(name, item, f"{where}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(name, f"{where or 'value'} is {value}; give a finite number")
