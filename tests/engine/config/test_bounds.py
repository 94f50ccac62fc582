"""Config bounds: the field metadata is the one source; every bound is enforced there and nowhere else."""

import ast
import dataclasses
import inspect
import textwrap
from types import MappingProxyType

import pytest

from loba.config import SECTIONS, TrainConfig
from loba.config.bounds import bounded_fields
from loba.errors import ConfigError

CLASSES = [TrainConfig, *SECTIONS.values()]
BOUNDED = [(cls, f) for cls in CLASSES for f in bounded_fields(cls)]
IDS = [f"{cls.__name__}.{f.name}" for cls, f in BOUNDED]
BOUND_KEYS = ("min", "max", "min_exclusive", "choices")
# With the bounds stripped, values that a cross-field rule refuses too need a companion value.
COMPANIONS = {("max_timestep", "low"): {"min_timestep": -1}, ("min_timestep", "high"): {"max_timestep": 2000}}


def _step(f: dataclasses.Field):
    return 1 if isinstance(f.default, int) else 1e-6


def inside(f: dataclasses.Field) -> list:
    """The values at the field's bounds (the tightest allowed ones)."""
    meta = f.metadata
    if isinstance(meta.get("choices"), tuple):
        return list(meta["choices"])
    values = [meta["max"]] if "max" in meta else []
    if "min" in meta:
        values.append(meta["min"] + _step(f) if meta.get("min_exclusive") else meta["min"])
    return values


def outside(f: dataclasses.Field) -> list[tuple[str, object]]:
    """(side, value) just outside each bound."""
    meta = f.metadata
    if isinstance(meta.get("choices"), tuple):
        return [("choice", "not-a-choice")]
    values = [("high", meta["max"] + _step(f))] if "max" in meta else []
    if "min" in meta:
        values.append(("low", meta["min"] if meta.get("min_exclusive") else meta["min"] - _step(f)))
    return values


def test_every_config_class_has_bounded_fields_to_check():
    assert {cls for cls, _ in BOUNDED} == set(CLASSES)
    assert {"learning_rate", "huber_delta", "network_dim", "max_timestep", "save_precision", "version"} <= {f.name for _, f in BOUNDED}


@pytest.mark.parametrize("cls, f", BOUNDED, ids=IDS)
def test_bounds_accept_the_bound_and_refuse_just_outside(cls, f):
    for value in inside(f):
        assert getattr(cls(**{f.name: value}), f.name) == value
    for side, value in outside(f):
        with pytest.raises(ConfigError) as info:
            cls(**{f.name: value})
        assert info.value.field == f.name
        assert "use " in str(info.value) if side == "choice" else ", e.g. " in str(info.value)


@pytest.mark.parametrize("changes, message", [
    ({"network_dim": 0}, "network_dim: must be in [1, 1024], e.g. 4"),
    ({"network_alpha": -1.0}, "network_alpha: must be >= 0, e.g. 1.0"),
    ({"learning_rate": 0.0}, "learning_rate: must be > 0, e.g. 1e-4"),
    ({"huber_delta": 0.0}, "huber_delta: must be > 0, e.g. 1.0"),
    ({"max_denoising_steps": 1}, "max_denoising_steps: must be >= 2, e.g. 40"),
    ({"multires_noise_discount": 1.5}, "multires_noise_discount: must be in [0, 1], e.g. 0.3"),
    ({"save_precision": "fp8"}, "save_precision: use float, fp16 or bf16"),
    ({"mixed_precision": "fp8"}, "mixed_precision: use no, fp16 or bf16"),
    ({"learning_rate": float("nan")}, "learning_rate: must be > 0"),
    ({"min_timestep": 500, "max_timestep": 500}, "min_timestep: need 0 <= min_timestep < max_timestep <= 1000"),
])
def test_messages_name_the_field_and_the_fix(changes, message):
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace("(", r"\(")):
        TrainConfig().replace(**changes)


def _compared_fields(compare: ast.Compare) -> set[str]:
    return {node.attr for node in ast.walk(compare)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"}


def _has_literal(compare: ast.Compare) -> bool:
    operands = [compare.left, *compare.comparators]
    return any(isinstance(node, (ast.Constant, ast.Tuple, ast.List, ast.Set)) for node in operands)


@pytest.mark.parametrize("cls", CLASSES, ids=[cls.__name__ for cls in CLASSES])
def test_no_post_init_compares_a_bounded_field_with_a_literal(cls):
    """A bound written in __post_init__ (`int(self.x) >= 1`) would drift from the widget's; cross-field rules
    (min_timestep < max_timestep, version <= CONFIG_VERSION) compare names, not literals."""
    bounded = {f.name for f in bounded_fields(cls)}
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__post_init__)))
    repeated = [ast.unparse(node) for node in ast.walk(tree)
                if isinstance(node, ast.Compare) and _has_literal(node) and _compared_fields(node) & bounded]
    assert not repeated, f"{cls.__name__}.__post_init__ repeats bounds of the metadata: {repeated}"


def test_without_the_metadata_bounds_every_out_of_bound_value_is_accepted(monkeypatch):
    """The other half of one source: nothing but the metadata refuses these values."""
    cases = [(cls, f.name, side, value) for cls, f in BOUNDED for side, value in outside(f)]
    for cls in CLASSES:
        for f in dataclasses.fields(cls):
            stripped = {k: v for k, v in f.metadata.items() if k not in BOUND_KEYS}
            monkeypatch.setattr(f, "metadata", MappingProxyType(stripped))
    for cls, name, side, value in cases:
        assert getattr(cls(**{**COMPANIONS.get((name, side), {}), name: value}), name) == value
