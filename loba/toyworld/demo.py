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

from ..atomic import atomic_write_text
from ..prompts.loader import read_prompt_table
from ..runfile import split_run_table

DEMO_RECIPES = ("erase-red", "size-slider")
Log = Callable[[str], None]


def recipe_path(name: str, kind: str) -> Path:
    """kind "train" -> recipes/<name>.toml, "eval" -> recipes/<name>.eval.toml (inside the package)."""
    suffix = ".toml" if kind == "train" else ".eval.toml"
    return Path(str(resources.files("loba.toyworld").joinpath(f"recipes/{name}{suffix}")))


def _write_losses(path: Path, losses: list[float]) -> None:
    atomic_write_text(path, "step,loss\n" + "".join(f"{i + 1},{v}\n" for i, v in enumerate(losses)))


# Smoke-test settings (tests and `--quick`): the same code path in seconds, meaningless figures.
QUICK_TRAIN = {"max_train_steps": 2, "max_denoising_steps": 3}
QUICK_EVAL = {"samples": 1, "steps": 2}


def run_recipe(name: str, components, out_dir: Path, log: Log, quick: bool = False) -> dict:
    from ..export import save_trained_slider
    from ..train.loop import train
    from .backend import toy_backend
    from .evaluate import evaluate, load_spec

    train_file = recipe_path(name, "train")
    _, config, prompts = split_run_table(read_prompt_table(train_file), train_file.parent, train_file.name)
    spec = load_spec(recipe_path(name, "eval"))
    if quick:
        config, spec = config.replace(**QUICK_TRAIN), replace(spec, **QUICK_EVAL)
    backend = toy_backend(components)
    started = time.perf_counter()
    result = train(backend, prompts, config)
    train_seconds = time.perf_counter() - started
    slider = save_trained_slider(out_dir / "slider.safetensors", result.network, backend, config, prompts, result.steps_done)
    _write_losses(out_dir / "loss.csv", result.losses)
    log(f"{name}: trained {result.steps_done} steps in {train_seconds:.0f}s; evaluating")
    metrics = evaluate(components, slider, spec, out_dir / "eval")
    return {"train_seconds": train_seconds, "steps": result.steps_done, "metrics": metrics}


def run_demo(out: Path, weights: Optional[Path] = None, recipes=DEMO_RECIPES, log: Log = print, quick: bool = False) -> dict:
    from .files import load_toy_components

    out = Path(out)
    summary = {}
    for name in recipes:
        components = load_toy_components(weights)  # fresh per recipe: nothing of one run leaks into the next
        summary[name] = run_recipe(name, components, out / name, log, quick)
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary
