"""`loba eval`: render fixed seeds at several slider weights, read the attributes back, score the slider.

A spec (TOML, eval_spec.py) names what the slider should do (kind, attribute, value), where (affected prompts,
optionally a [region]), what it must leave alone (control prompts), the weights, the number of samples and the seed. Every
prompt x weight x sample is rendered from the same seeds, so each figure compares a sample with its
own w=0 twin. Writes DIR/metrics.json and DIR/grid.png.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np

from . import metrics as m
from .attributes import ATTRIBUTE_VALUES
from .eval_spec import KINDS, SPEC_FIELDS, EvalSpec, key, load_spec, parse_spec

__all__ = ["KINDS", "SPEC_FIELDS", "EvalSpec", "compute_metrics", "evaluate", "load_spec", "parse_spec", "run_eval"]


def _keyed(by_weight: dict[float, object]) -> dict[str, object]:
    """JSON object keys are strings: weights as '-1', '0.5', '1'."""
    return {key(weight): value for weight, value in by_weight.items()}


def _rate_figures(spec: EvalSpec, affected: m.ByWeight) -> tuple[dict, dict]:
    rates = m.rate_by_weight(affected, spec.attribute, spec.value)
    efficacy = m.efficacy(spec.kind, rates)
    notes = {"efficacy": efficacy.reason} if efficacy.reason else {}
    # What the samples show instead (an erased triangle became a circle? vanished?): every value's rate.
    shown = {value: _keyed(m.rate_by_weight(affected, spec.attribute, value)) for value in ATTRIBUTE_VALUES[spec.attribute]}
    return {"rate_by_weight": _keyed(rates), "efficacy": efficacy.value, "value_rates_by_weight": shown}, notes


def _slider_figures(spec: EvalSpec, affected: m.ByWeight) -> tuple[dict, dict]:
    if spec.measure == "rate":  # binary/categorical: the rate of the +1 pole, spearman on the per-sample 0/1
        rates = m.rate_by_weight(affected, spec.attribute, spec.value)
        rho = m.weight_rate_spearman(affected, spec.attribute, spec.value)
        figures = {"rate_by_weight": _keyed(rates), "spearman": rho.value, "monotonic": m.monotonic_rate(rates)}
    else:
        means = m.measure_by_weight(affected, spec.attribute)
        rho = m.weight_measure_spearman(affected, spec.attribute)
        figures = {"measure_by_weight": _keyed(means), "spearman": rho.value, "monotonic": m.monotonic(means)}
    return {"measure": spec.measure, **figures}, ({"spearman": rho.reason} if rho.reason else {})


SUMMARIES = {"erase": _rate_figures, "enhance": _rate_figures, "slider": _slider_figures}


# -- metrics ----------------------------------------------------------------------------------

def _per_prompt(spec: EvalSpec, reads: dict, images: dict, index: int, role: str) -> dict:
    """The figures of one prompt: its kind figure, object rate, preservation and drift, per weight."""
    mine = {weight: reads[weight][index] for weight in spec.weights}
    attributes = spec.preserve if role == "control" else [a for a in m.CATEGORICAL if a != spec.attribute]
    figures = {"role": role, "object_rate_by_weight": _keyed(m.object_rate_by_weight(mine)),
               "preservation_by_weight": _keyed(m.preservation_by_weight(mine, attributes)),
               "drift_by_weight": _keyed(m.drift_by_weight({w: images[w][index] for w in spec.weights}))}
    if spec.measure == "rate":
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
    figures, notes = SUMMARIES[spec.kind](spec, affected)
    if spec.region is not None:
        from .eval_region import region_figures

        figures["region"] = region_figures(spec, {w: np.asarray(images[w][:count]) for w in spec.weights}, affected,
                                           SUMMARIES[spec.kind])
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
    from .samplers import sampler_name, toy_sampler
    from .sampling import denoiser_of, load_slider_network

    spec = spec if isinstance(spec, EvalSpec) else load_spec(spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sampler = toy_sampler(components, device)
    images = render_all(sampler, load_slider_network(slider_path, denoiser_of(components), components), spec, batch_size)
    rendered = time.perf_counter()
    reads = {w: _by_prompt(read_batch(batch.reshape(-1, 64, 64, 3)), spec.samples) for w, batch in images.items()}
    read = time.perf_counter()
    result = {"spec": spec.as_json(), "slider": str(slider_path),
              "sampling": {"sampler": sampler_name(components), "steps": spec.steps, "cfg": spec.cfg, "device": str(device)},
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
    if "region" in result:
        region, top = result["region"], "1"
        print(f"{region['name']}: pixel change inside {region['change_inside_by_weight'][top]:.3f}, "
              f"outside {region['change_outside_by_weight'][top]:.3f} at w=1")
    print(f"wrote {Path(out) / 'metrics.json'} and {Path(out) / 'grid.png'} ({result['timings']['total_s']:.0f} s)")
    return 0
