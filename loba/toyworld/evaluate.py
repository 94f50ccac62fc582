"""`loba eval`: render fixed seeds at several slider weights, read the attributes back, score the slider.

A spec (TOML) names what the slider should do (kind, attribute, value), where (affected prompts),
what it must leave alone (control prompts), the weights, the number of samples and the seed. Every
prompt x weight x sample is rendered from the same seeds, so each figure compares a sample with its
own w=0 twin. Writes DIR/metrics.json and DIR/grid.png.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from . import metrics as m
from .attributes import ATTRIBUTE_VALUES
from .captions import parse_caption
from .model import DEFAULT_SAMPLING


@dataclass(frozen=True)
class KindRule:
    needs_value: bool
    required_weights: tuple[float, ...]
    summarize: Callable  # (spec, affected reads by weight) -> (figures dict, notes dict)


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

    @property
    def prompts(self) -> tuple[str, ...]:
        return self.affected + self.control

    @property
    def roles(self) -> tuple[str, ...]:
        return ("affected",) * len(self.affected) + ("control",) * len(self.control)

    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.samples)]


def _key(weight: float) -> str:
    return f"{weight:g}"


def _keyed(by_weight: dict[float, object]) -> dict[str, object]:
    """JSON object keys are strings: weights as '-1', '0.5', '1'."""
    return {_key(weight): value for weight, value in by_weight.items()}


def _rate_figures(spec: EvalSpec, affected: m.ByWeight) -> tuple[dict, dict]:
    rates = m.rate_by_weight(affected, spec.attribute, spec.value)
    efficacy = m.efficacy(spec.kind, rates)
    notes = {"efficacy": efficacy.reason} if efficacy.reason else {}
    return {"rate_by_weight": _keyed(rates), "efficacy": efficacy.value}, notes


def _slider_figures(spec: EvalSpec, affected: m.ByWeight) -> tuple[dict, dict]:
    means = m.measure_by_weight(affected, spec.attribute)
    rho = m.weight_measure_spearman(affected, spec.attribute)
    notes = {"spearman": rho.reason} if rho.reason else {}
    return {"measure_by_weight": _keyed(means), "spearman": rho.value, "monotonic": m.monotonic(means)}, notes


KINDS: dict[str, KindRule] = {
    "erase": KindRule(True, (0.0, 1.0), _rate_figures),
    "enhance": KindRule(True, (0.0, 1.0), _rate_figures),
    "slider": KindRule(False, (-1.0, 0.0, 1.0), _slider_figures),
}
SPEC_FIELDS = ("kind", "attribute", "value", "affected", "control", "weights", "samples", "seed", "steps", "cfg",
               "preserve", "grid_samples")


# -- spec -------------------------------------------------------------------------------------

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
        _fail(source, "weights", f"a {kind} evaluation needs weights {', '.join(_key(w) for w in rule.required_weights)}; "
                                 f"missing {', '.join(_key(w) for w in missing)}")
    return weights


def _target(data: dict, kind: str, rule: KindRule, source: str) -> tuple[str, str | None]:
    attribute = data.get("attribute")
    if attribute not in ATTRIBUTE_VALUES:
        _fail(source, "attribute", f"must be one of {', '.join(ATTRIBUTE_VALUES)}, got {attribute!r}")
    if not rule.needs_value:
        if attribute not in m.MEASURES:
            _fail(source, "attribute", f"a slider needs a continuous measure; attributes with one: {', '.join(m.MEASURES.names())}")
        return attribute, data.get("value")
    value = data.get("value")
    if value not in ATTRIBUTE_VALUES[attribute]:
        _fail(source, "value", f"{attribute} must be one of {', '.join(ATTRIBUTE_VALUES[attribute])}, got {value!r}")
    return attribute, value


def parse_spec(data: dict, source: str = "eval spec") -> EvalSpec:
    """Validate a spec mapping; every error names the field."""
    unknown = sorted(set(data) - set(SPEC_FIELDS))
    if unknown:
        _fail(source, unknown[0], f"unknown field; known fields: {', '.join(SPEC_FIELDS)}")
    kind = data.get("kind")
    if kind not in KINDS:
        _fail(source, "kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    rule = KINDS[kind]
    attribute, value = _target(data, kind, rule, source)
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
    return EvalSpec(kind, attribute, value, affected, control, _weights(data, rule, kind, source),
                    _integer(data, "samples", None, 1, source), _integer(data, "seed", None, 0, source),
                    _integer(data, "steps", DEFAULT_SAMPLING["steps"], 1, source), float(cfg), tuple(preserve),
                    _integer(data, "grid_samples", 4, 1, source))


def load_spec(path: str | os.PathLike) -> EvalSpec:
    from ..config.toml_compat import TOMLDecodeError, loads

    try:
        data = loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, TOMLDecodeError) as exc:
        raise ConfigError("spec", f"cannot read eval spec {path}: {exc}") from None
    return parse_spec(data, str(path))


# -- metrics ----------------------------------------------------------------------------------

def _per_prompt(spec: EvalSpec, reads: dict, images: dict, index: int, role: str) -> dict:
    """The figures of one prompt: its kind figure, object rate, preservation and drift, per weight."""
    mine = {weight: reads[weight][index] for weight in spec.weights}
    attributes = spec.preserve if role == "control" else [a for a in m.CATEGORICAL if a != spec.attribute]
    figures = {"role": role, "object_rate_by_weight": _keyed(m.object_rate_by_weight(mine)),
               "preservation_by_weight": _keyed(m.preservation_by_weight(mine, attributes)),
               "drift_by_weight": _keyed(m.drift_by_weight({w: images[w][index] for w in spec.weights}))}
    if KINDS[spec.kind].needs_value:
        figures["rate_by_weight"] = _keyed(m.rate_by_weight(mine, spec.attribute, spec.value))
    else:
        figures["measure_by_weight"] = _keyed(m.measure_by_weight(mine, spec.attribute))
    return figures


def _control_figures(spec: EvalSpec, reads: dict, images: dict) -> tuple[dict, dict]:
    if not spec.control:
        reason = "no control prompts in the spec"
        return {"preservation": None, "preservation_by_weight": None, "drift": None, "drift_by_weight": None}, \
            {"preservation": reason, "drift": reason}
    start = len(spec.affected)
    control = {w: [read for prompt in reads[w][start:] for read in prompt] for w in spec.weights}
    kept = m.preservation_by_weight(control, spec.preserve)
    drift = m.drift_by_weight({w: images[w][start:] for w in spec.weights})
    return {"preservation": m.headline(kept, spec.kind), "preservation_by_weight": _keyed(kept),
            "drift": max(drift[w] for w in m.headline_weights(spec.kind)), "drift_by_weight": _keyed(drift)}, {}


def compute_metrics(spec: EvalSpec, images: dict, reads: dict) -> dict:
    """images: weight -> uint8 [prompts, samples, 64, 64, 3]; reads: weight -> [prompt][sample] ReadResults."""
    count = len(spec.affected)
    affected = {w: [read for prompt in reads[w][:count] for read in prompt] for w in spec.weights}
    figures, notes = KINDS[spec.kind].summarize(spec, affected)
    control, control_notes = _control_figures(spec, reads, images)
    others = [a for a in m.CATEGORICAL if a != spec.attribute]
    return {**figures, **control,
            "object_rate_by_weight": _keyed(m.object_rate_by_weight(affected)),
            "affected_preservation_by_weight": _keyed(m.preservation_by_weight(affected, others)),
            "preservation_attributes": list(spec.preserve), "headline_weights": list(m.headline_weights(spec.kind)),
            "per_prompt": {p: _per_prompt(spec, reads, images, i, role) for i, (p, role) in enumerate(zip(spec.prompts, spec.roles))},
            "notes": {**notes, **control_notes}}


# -- the run ----------------------------------------------------------------------------------

def render_all(sampler, slider, spec: EvalSpec, batch_size: int = 64) -> dict[float, np.ndarray]:
    """weight -> uint8 [prompts, samples, 64, 64, 3]; the same seeds for every prompt and weight."""
    prompts = [p for p in spec.prompts for _ in range(spec.samples)]
    seeds = spec.seeds() * len(spec.prompts)
    shape = (len(spec.prompts), spec.samples, 64, 64, 3)
    from .sampling import slider_root

    with slider.attached(slider_root(sampler.components, slider), sampler.device):
        return {w: sampler.sample(prompts, seeds, slider, w, spec.steps, spec.cfg, batch_size).reshape(shape) for w in spec.weights}


def evaluate(components, slider_path: str | os.PathLike, spec: EvalSpec | str | os.PathLike, out_dir: str | os.PathLike, *,
             device: str = "cpu", batch_size: int = 64) -> dict:
    """Render, read, score; writes out_dir/metrics.json and out_dir/grid.png and returns the metrics."""
    from ..sliders.atomic import atomic_write_bytes
    from .grid import make_grid
    from .reader import read_batch
    from .sampling import ToySampler, load_slider_network

    spec = spec if isinstance(spec, EvalSpec) else load_spec(spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sampler = ToySampler(components, device)
    images = render_all(sampler, load_slider_network(slider_path, components.unet, components), spec, batch_size)
    rendered = time.perf_counter()
    reads = {w: _by_prompt(read_batch(batch.reshape(-1, 64, 64, 3)), spec.samples) for w, batch in images.items()}
    read = time.perf_counter()
    result = {"spec": {**asdict(spec), "weights": list(spec.weights)}, "slider": str(slider_path),
              "sampling": {"sampler": "ddim", "steps": spec.steps, "cfg": spec.cfg, "device": str(device)},
              **compute_metrics(spec, images, reads)}
    png = io.BytesIO()
    make_grid(images, spec.prompts, spec.roles, spec.grid_samples).save(png, format="PNG")
    atomic_write_bytes(out / "grid.png", png.getvalue())
    count = len(spec.prompts) * len(spec.weights) * spec.samples
    result["timings"] = {"render_s": rendered - started, "read_s": read - rendered, "total_s": time.perf_counter() - started,
                         "images": count, "render_ms_per_image": 1000 * (rendered - started) / count}
    atomic_write_bytes(out / "metrics.json", (json.dumps(result, indent=2) + "\n").encode("utf-8"))
    return result


def _by_prompt(reads: list, samples: int) -> list[list]:
    return [reads[i:i + samples] for i in range(0, len(reads), samples)]


def run_eval(slider: str | os.PathLike, spec: str | os.PathLike, out: str | os.PathLike, weights=None, device: str = "cpu") -> int:
    """`loba eval`: validate the spec before loading the model, evaluate, print the headline figures."""
    from .sampling import load_toy_components

    parsed = load_spec(spec)
    result = evaluate(load_toy_components(weights), slider, parsed, out, device=device)
    headline = ("efficacy", "spearman", "monotonic", "preservation", "drift")
    print(", ".join(f"{name} {result[name]:.3f}" if isinstance(result.get(name), float) else f"{name} {result.get(name)}"
                    for name in headline if name in result))
    print(f"wrote {Path(out) / 'metrics.json'} and {Path(out) / 'grid.png'} ({result['timings']['total_s']:.0f} s)")
    return 0
