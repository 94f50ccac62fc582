"""The `loba eval` spec (TOML) of the toy world: what a slider should do, where, and what it must leave alone.
Validated before any model work; every error names its field (ConfigError) and the spec file.

Kinds: erase / enhance (the rate of one attribute value at w = 1 vs w = 0: any value, a shape included) and
slider (-1..1): scored on the attribute's continuous measure where it has one (size: the object's area), else on
the rate of `value`, the pole that w = +1 brings (background dark, color red, shape triangle). Any kind may add a
[region] (box = [top, left, bottom, right] as fractions of the image, or mask = an image file, white = inside):
the figures are then also given inside vs outside it (see eval_region.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from . import metrics as m
from .attributes import ATTRIBUTE_VALUES
from .captions import parse_caption
from .eval_region import Region, key, parse_region
from .model import DEFAULT_SAMPLING


@dataclass(frozen=True)
class KindRule:
    needs_value: bool
    required_weights: tuple[float, ...]


KINDS: dict[str, KindRule] = {
    "erase": KindRule(True, (0.0, 1.0)),
    "enhance": KindRule(True, (0.0, 1.0)),
    "slider": KindRule(False, (-1.0, 0.0, 1.0)),
}
MEASURE_KINDS = ("continuous", "rate")  # a slider's measure; erase and enhance are always rates
SPEC_FIELDS = ("kind", "attribute", "value", "measure", "affected", "control", "weights", "samples", "seed", "steps",
               "cfg", "preserve", "grid_samples", "region")
@dataclass(frozen=True)
class EvalSpec:
    kind: str
    attribute: str
    value: str | None
    affected: tuple[str, ...]
    control: tuple[str, ...]
    weights: tuple[float, ...]  # ascending
    samples: int
    seed: int
    steps: int = DEFAULT_SAMPLING["steps"]
    cfg: float = DEFAULT_SAMPLING["cfg"]
    preserve: tuple[str, ...] = m.CATEGORICAL  # attributes control samples must keep
    grid_samples: int = 4
    measure: str = "rate"  # "continuous" only for a slider on an attribute with a continuous measure
    region: Region | None = None

    @property
    def prompts(self) -> tuple[str, ...]:
        return self.affected + self.control

    @property
    def roles(self) -> tuple[str, ...]:
        return ("affected",) * len(self.affected) + ("control",) * len(self.control)

    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.samples)]

    def as_json(self) -> dict:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "region"}
        region = None if self.region is None else {"name": self.region.name, "source": self.region.source,
                                                   "fraction": float(self.region.mask.mean())}
        return {**fields, "weights": list(self.weights), "region": region}


def _fail(source: str, field: str, message: str):
    raise ConfigError(field, f"{message} (in {source})")


def _integer(data: dict, field: str, default, minimum: int, source: str) -> int:
    value = data.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(source, field, f"must be an integer >= {minimum}, got {value!r}")
    return value


def _prompts(data: dict, field: str, source: str, allow_empty: bool) -> tuple[str, ...]:
    prompts = data.get(field, [] if allow_empty else None)
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts) or (not prompts and not allow_empty):
        _fail(source, field, "must be a non-empty list of prompt strings" + (" (or [] to skip preservation)" if allow_empty else ""))
    for prompt in prompts:
        try:
            parse_caption(prompt)
        except ValueError as exc:
            _fail(source, field, f"{exc}; prompts use the toy world's words ({', '.join(sum(ATTRIBUTE_VALUES.values(), ()))})")
    if len(set(prompts)) != len(prompts):
        _fail(source, field, "lists a prompt twice")
    return tuple(prompts)


def _weights(data: dict, rule: KindRule, kind: str, source: str) -> tuple[float, ...]:
    weights = data.get("weights")
    if not isinstance(weights, list) or not weights or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights):
        _fail(source, "weights", f"must be a non-empty list of numbers, got {weights!r}")
    weights = tuple(sorted(float(w) for w in weights))
    if len(set(weights)) != len(weights):
        _fail(source, "weights", "lists a weight twice")
    missing = [w for w in rule.required_weights if w not in weights]
    if missing:
        _fail(source, "weights", f"a {kind} evaluation needs weights {', '.join(key(w) for w in rule.required_weights)}; "
                                 f"missing {', '.join(key(w) for w in missing)}")
    return weights


def _measure(data: dict, kind: str, attribute: str, source: str) -> str:
    """A slider's measure: continuous where the attribute has one (unless measure = "rate"), else the rate of value."""
    continuous = attribute in m.MEASURES
    measure = data.get("measure", "continuous" if kind == "slider" and continuous else "rate")
    if measure not in MEASURE_KINDS:
        _fail(source, "measure", f"must be one of {', '.join(MEASURE_KINDS)}, got {measure!r}")
    if measure == "continuous" and (kind != "slider" or not continuous):
        _fail(source, "measure", f"a continuous measure exists for sliders on {', '.join(m.MEASURES.names())} only; "
                                 f"use measure = \"rate\" (the rate of `value` per weight)")
    return measure


def _target(data: dict, kind: str, source: str) -> tuple[str, str | None, str]:
    attribute = data.get("attribute")
    if attribute not in ATTRIBUTE_VALUES:
        _fail(source, "attribute", f"must be one of {', '.join(ATTRIBUTE_VALUES)}, got {attribute!r}")
    measure = _measure(data, kind, attribute, source)
    value = data.get("value")
    if measure == "continuous" and value is None:
        return attribute, None, measure
    if value not in ATTRIBUTE_VALUES[attribute]:
        why = (f"a {kind} on {attribute} is scored by the rate of one value: give value = the pole that w = +1 brings; "
               if kind == "slider" else "")
        _fail(source, "value", f"{why}{attribute} must be one of {', '.join(ATTRIBUTE_VALUES[attribute])}, got {value!r}")
    return attribute, value, measure


def parse_spec(data: dict, source: str = "eval spec", base_dir: str | os.PathLike | None = None) -> EvalSpec:
    """Validate a spec mapping; every error names the field. A region mask file is read relative to base_dir."""
    unknown = sorted(set(data) - set(SPEC_FIELDS))
    if unknown:
        _fail(source, unknown[0], f"unknown field; known fields: {', '.join(SPEC_FIELDS)}")
    kind = data.get("kind")
    if kind not in KINDS:
        _fail(source, "kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    rule = KINDS[kind]
    attribute, value, measure = _target(data, kind, source)
    affected = _prompts(data, "affected", source, allow_empty=False)
    control = _prompts(data, "control", source, allow_empty=True)
    if set(affected) & set(control):
        _fail(source, "control", f"{sorted(set(affected) & set(control))[0]!r} is also an affected prompt")
    if rule.needs_value and any(parse_caption(p).get(attribute) == value for p in control):
        _fail(source, "control", f"control prompts must not ask for {attribute} {value!r}: the slider is meant to change those")
    default_preserve = [a for a in m.CATEGORICAL if rule.needs_value or a != attribute]  # a slider moves its own attribute
    preserve = data.get("preserve", default_preserve)
    if not isinstance(preserve, list) or not preserve or any(a not in ATTRIBUTE_VALUES for a in preserve):
        _fail(source, "preserve", f"must be a non-empty list of {', '.join(ATTRIBUTE_VALUES)}, got {preserve!r}")
    cfg = data.get("cfg", DEFAULT_SAMPLING["cfg"])
    if isinstance(cfg, bool) or not isinstance(cfg, (int, float)) or not math.isfinite(cfg):
        _fail(source, "cfg", f"must be a number, got {cfg!r}")
    region = parse_region(data["region"], source, base_dir) if "region" in data else None
    return EvalSpec(kind, attribute, value, affected, control, _weights(data, rule, kind, source),
                    _integer(data, "samples", None, 1, source), _integer(data, "seed", None, 0, source),
                    _integer(data, "steps", DEFAULT_SAMPLING["steps"], 1, source), float(cfg), tuple(preserve),
                    _integer(data, "grid_samples", 4, 1, source), measure, region)


def load_spec(path: str | os.PathLike) -> EvalSpec:
    from ..config.toml_compat import TOMLDecodeError, loads

    try:
        data = loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, TOMLDecodeError) as exc:
        raise ConfigError("spec", f"cannot read eval spec {path}: {exc}") from None
    return parse_spec(data, str(path), Path(path).parent)
