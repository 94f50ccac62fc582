"""`loba demo`: the main job on the embedded toy model, offline, on a CPU.

Trains an "erase red" slider and a "small <-> large" slider with their shipped recipes
(loba/toyworld/recipes/*.toml: ordinary `loba train` run files without a model), evaluates each
with its eval spec, and writes DIR/<recipe>/{slider.safetensors, loss.csv, eval/metrics.json,
eval/grid.png} plus DIR/summary.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Optional

from ..config.runfile import split_run_table
from ..prompts.loader import read_prompt_table
from ..sliders.atomic import atomic_write_text

DEMO_RECIPES = ("erase-red", "size-slider")
# Recipe variants by objective: LOBA's own settings, or the original LECO recipe (adapter on during the
# denoise, "" as unconditional and neutral, no preservation prompts, LECO's lr/rank/steps) on the same
# step budget, for a side-by-side comparison.
OBJECTIVE_SUFFIXES = {"loba": "", "leco-classic": ".leco-classic"}
Log = Callable[[str], None]


def recipe_path(name: str, kind: str, objective: str = "loba") -> Path:
    """kind "train" -> recipes/<name>[.<objective>].toml, "eval" -> recipes/<name>.eval.toml (in the package)."""
    suffix = OBJECTIVE_SUFFIXES[objective] + ".toml" if kind == "train" else ".eval.toml"
    return Path(str(resources.files(__package__).joinpath(f"recipes/{name}{suffix}")))


# Smoke-test settings (tests and `--quick`): the same code path in seconds, meaningless figures.
QUICK_TRAIN = {"max_train_steps": 2, "max_denoising_steps": 3}
QUICK_EVAL = {"samples": 1, "steps": 2}


def run_recipe(name: str, components, out_dir: Path, log: Log, quick: bool = False, objective: str = "loba") -> dict:
    from ..train.run import RunRequest, run_training
    from .backend import toy_backend
    from .evaluate import evaluate, load_spec

    train_file = recipe_path(name, "train", objective)
    _, config, prompts = split_run_table(read_prompt_table(train_file), train_file.parent, train_file.name)
    spec = load_spec(recipe_path(name, "eval"))
    if quick:
        config, spec = config.replace(**QUICK_TRAIN), replace(spec, **QUICK_EVAL)
    started = time.perf_counter()
    slider = run_training(RunRequest(prompts, config, backend=toy_backend(components), out_dir=out_dir))
    train_seconds = time.perf_counter() - started
    path = slider.save(out_dir / "slider.safetensors")
    log(f"{name} ({objective}): trained {slider.steps_done} steps in {train_seconds:.0f}s; evaluating")
    metrics = evaluate(components, path, spec, out_dir / "eval")
    return {"train_seconds": train_seconds, "steps": slider.steps_done, "metrics": metrics}


HEADLINES = ("efficacy", "spearman", "monotonic", "preservation", "drift")


def comparison_table(summary: dict) -> str:
    """One row per (recipe, objective): training time and the headline figures, side by side."""
    rows = [f"{'slider':<28}{'train s':>9}" + "".join(f"{h:>14}" for h in HEADLINES)]
    for key, run in summary.items():
        figures = [run["metrics"].get(h) for h in HEADLINES]
        cells = "".join(f"{'-' if v is None else (f'{v:.3f}' if isinstance(v, float) else str(v)):>14}" for v in figures)
        rows.append(f"{key:<28}{run['train_seconds']:>9.1f}{cells}")
    return "\n".join(rows)


def run_demo(out: Path, weights: Optional[Path] = None, recipes=DEMO_RECIPES, log: Log = print, quick: bool = False,
             objectives: tuple[str, ...] = ("loba",)) -> dict:
    from .files import load_toy_components

    out = Path(out)
    summary = {}
    for name in recipes:
        for objective in objectives:
            key = name + OBJECTIVE_SUFFIXES[objective]
            components = load_toy_components(weights)  # fresh per run: nothing of one run leaks into the next
            summary[key] = run_recipe(name, components, out / key, log, quick, objective)
            atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    log(comparison_table(summary))
    return summary
