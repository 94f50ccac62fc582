"""The real-model evaluation spec (TOML): prompts, weights, seeds, sampling and evaluators, validated before any
model work. Every error names the field (ConfigError) so a node can name itself too.

    target_prompts = ["a photo of a smiling man"]      # what the slider should change (required)
    control_prompts = ["a photo of a red car"]         # what it must leave alone
    canary_prompts = ["a bowl of fruit"]               # unrelated concepts: a lobotomy shows here first
    negative_prompt = ""
    weights = [-1, 0, 1]                               # must include 0: every figure is paired with w = 0
    seeds = [0, 1, 2, 3]                               # one sample per prompt x weight x seed
    sampler = "ddim"                                   # headless: LOBA's DDIM only; in ComfyUI any of its samplers
    scheduler = "ddim_uniform"
    steps = 20
    cfg = 7.0
    width = 512                                        # 0: the model's native size
    height = 512
    grid_seeds = 2                                     # seeds shown per prompt in grid.png
    [evaluators.pixel]
    [evaluators.clip]
    weights = "/models/clip-vit-large-patch14"
    positive = "a photo of a smiling man"
    [evaluators.nudenet]
    threshold = 0.5
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .builtin import load_all
from .registry import EVALUATORS, VALIDATORS

ROLES = ("target", "control", "canary")
FIELDS = ("target_prompts", "control_prompts", "canary_prompts", "negative_prompt", "weights", "seeds", "sampler",
          "scheduler", "steps", "cfg", "width", "height", "grid_seeds", "evaluators")


@dataclass(frozen=True)
class EvalRunSpec:
    target_prompts: tuple[str, ...]
    control_prompts: tuple[str, ...]
    canary_prompts: tuple[str, ...]
    weights: tuple[float, ...]  # ascending, includes 0
    seeds: tuple[int, ...]
    evaluators: dict = field(default_factory=lambda: {"pixel": {}})  # name -> validated settings
    negative_prompt: str = ""
    sampler: str = "ddim"
    scheduler: str = "ddim_uniform"
    steps: int = 20
    cfg: float = 7.0
    width: int = 0
    height: int = 0
    grid_seeds: int = 2

    @property
    def prompts(self) -> tuple[str, ...]:
        return self.target_prompts + self.control_prompts + self.canary_prompts

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(role for role in ROLES for _ in getattr(self, f"{role}_prompts"))

    @property
    def samples(self) -> int:
        return len(self.prompts) * len(self.weights) * len(self.seeds)

    def as_json(self) -> dict:
        return {**asdict(self), "weights": list(self.weights), "seeds": list(self.seeds)}


def _prompts(data: Mapping, name: str, required: bool) -> tuple[str, ...]:
    prompts = data.get(name, None if required else [])
    if not isinstance(prompts, list) or not all(isinstance(p, str) and p.strip() for p in prompts) or (required and not prompts):
        raise ConfigError(name, "must be a non-empty list of prompts (the prompts the slider should change)" if required
                          else f"must be a list of non-empty prompt strings, got {prompts!r}")
    if len(set(prompts)) != len(prompts):
        raise ConfigError(name, "lists a prompt twice")
    return tuple(p.strip() for p in prompts)


def _number_list(data: Mapping, name: str, integers: bool) -> list:
    values = data.get(name)
    kinds = (int,) if integers else (int, float)
    if not isinstance(values, list) or not values or any(isinstance(v, bool) or not isinstance(v, kinds) for v in values) \
            or any(not math.isfinite(v) for v in values):
        raise ConfigError(name, f"must be a non-empty list of {'whole numbers' if integers else 'numbers'}, got {values!r}")
    if len(set(values)) != len(values):
        raise ConfigError(name, f"lists a value twice: {values!r}")
    return values


def _integer(data: Mapping, name: str, default: int, low: int, high: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, f"must be a whole number in {low}..{high}, got {value!r}")
    return value


def _evaluators(data: Mapping) -> dict:
    load_all()
    tables = data.get("evaluators", {"pixel": {}})
    if not isinstance(tables, dict) or not tables:
        raise ConfigError("evaluators", f"must be a table of [evaluators.NAME] tables, e.g. [evaluators.pixel]; "
                                        f"registered: {', '.join(EVALUATORS.names())}")
    chosen = {}
    for name, settings in tables.items():
        EVALUATORS.get(name)  # an unregistered name fails here, listing the registered ones
        if not isinstance(settings, dict):
            raise ConfigError(f"evaluators.{name}", f"must be a table of settings, got {settings!r}")
        chosen[name.lower()] = VALIDATORS[name.lower()](settings, f"evaluators.{name}")
    return chosen


def parse_spec(data: Mapping[str, Any]) -> EvalRunSpec:
    """Validate a spec mapping (TOML or node fields); every error names its field."""
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(unknown[0], f"unknown field; known fields: {', '.join(FIELDS)}")
    prompts = {role: _prompts(data, f"{role}_prompts", role == "target") for role in ROLES}
    seen: set[str] = set()
    for role in ROLES:
        if seen & set(prompts[role]):
            raise ConfigError(f"{role}_prompts", f"{sorted(seen & set(prompts[role]))[0]!r} is listed under two roles")
        seen |= set(prompts[role])
    weights = tuple(sorted(float(w) for w in _number_list(data, "weights", integers=False)))
    if 0.0 not in weights:
        raise ConfigError("weights", f"must include 0: every figure compares a sample with its same-seed w = 0 twin, got {list(weights)}")
    seeds = tuple(_number_list(data, "seeds", integers=True))
    if any(seed < 0 or seed >= 2**63 for seed in seeds):
        raise ConfigError("seeds", "must be whole numbers in 0..2^63-1")
    cfg = data.get("cfg", 7.0)
    if isinstance(cfg, bool) or not isinstance(cfg, (int, float)) or not 0.0 <= cfg <= 100.0:
        raise ConfigError("cfg", f"must be a number in 0..100, got {cfg!r}")
    negative = data.get("negative_prompt", "")
    if not isinstance(negative, str):
        raise ConfigError("negative_prompt", f"must be a string, got {negative!r}")
    size = {name: _integer(data, name, 0, 0, 8192) for name in ("width", "height")}
    if any(v % 8 for v in size.values()):
        raise ConfigError("width", f"width and height must be multiples of 8 (0: the model's native size), got {size}")
    for name in ("sampler", "scheduler"):
        if not isinstance(data.get(name, "x"), str):
            raise ConfigError(name, f"must be a name, got {data[name]!r}")
    return EvalRunSpec(prompts["target"], prompts["control"], prompts["canary"], weights, seeds, _evaluators(data),
                       negative, data.get("sampler", "ddim"), data.get("scheduler", "ddim_uniform"),
                       _integer(data, "steps", 20, 1, 1000), float(cfg), size["width"], size["height"],
                       _integer(data, "grid_seeds", 2, 1, 64))


def load_spec(path: str | os.PathLike) -> EvalRunSpec:
    from ..config.toml_compat import TOMLDecodeError, loads

    try:
        data = loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, TOMLDecodeError) as exc:
        raise ConfigError("spec", f"cannot read eval spec {path}: {exc}") from None
    return parse_spec(data)
