"""`loba demo`: the main job on the embedded toy model, offline, on a CPU.

Trains an "erase red" slider and a "small <-> large" slider with their shipped recipes
(loba/toyworld/recipes/*.toml: ordinary `loba train` run files without a model), evaluates each
with its eval spec, and writes DIR/<recipe>/{slider.safetensors, loss.csv, eval/metrics.json,
eval/grid.png} plus DIR/summary.json. Torch runs on a pinned thread count (figures and train seconds
depend on it); with several training seeds each recipe runs once per seed, into DIR/<recipe>/seed-<n>/,
and the table and summary.json give min / median / max over the seeds.
"""

from __future__ import annotations

import json
import statistics
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
# step budget, for a side-by-side comparison; or the recipe with RC-LOBA's attention regions (benchmarks.region_slider).
OBJECTIVE_SUFFIXES = {"loba": "", "leco-classic": ".leco-classic", "region": ".region"}
Log = Callable[[str], None]


# Worlds whose model needs its own train recipe (the Flux-architecture flow world: Flux targeting, trailing grid);
# the eval specs (targets, prompts, seeds, steps, cfg) are the same on every world, so figures compare.
WORLD_RECIPE_SUFFIXES = {"toyworld": "", "flow": ".flow"}


def recipe_path(name: str, kind: str, objective: str = "loba", world: str = "toyworld") -> Path:
    """kind "train" -> recipes/<name>[.flow][.<objective>].toml, "eval" -> recipes/<name>.eval.toml (in the package)."""
    if world not in WORLD_RECIPE_SUFFIXES:
        raise ValueError(f"the slider demo runs on {', '.join(WORLD_RECIPE_SUFFIXES)}, not '{world}'")
    if world != "toyworld" and objective != "loba":
        raise ValueError(f"the {objective} recipes are SD1 recipes; on the {world} world only LOBA's own run")
    suffix = WORLD_RECIPE_SUFFIXES[world] + OBJECTIVE_SUFFIXES[objective] + ".toml" if kind == "train" else ".eval.toml"
    return Path(str(resources.files(__package__).joinpath(f"recipes/{name}{suffix}")))


# Smoke-test settings (tests and `--quick`): the same code path in seconds, meaningless figures.
QUICK_TRAIN = {"max_train_steps": 2, "max_denoising_steps": 3}
QUICK_EVAL = {"samples": 1, "steps": 2}


def run_recipe(name: str, components, out_dir: Path, log: Log, quick: bool = False, objective: str = "loba",
               seed: Optional[int] = None, world: str = "toyworld") -> dict:
    from ..train.run import RunRequest, run_training
    from .backend import toy_backend
    from .evaluate import evaluate, load_spec

    train_file = recipe_path(name, "train", objective, world)
    _, config, prompts = split_run_table(read_prompt_table(train_file), train_file.parent, train_file.name)
    if seed is not None:
        config = config.replace(seed=seed)
    spec = load_spec(recipe_path(name, "eval"))
    if quick:
        config, spec = config.replace(**QUICK_TRAIN), replace(spec, **QUICK_EVAL)
    started = time.perf_counter()
    slider = run_training(RunRequest(prompts, config, backend=toy_backend(components), out_dir=out_dir))
    train_seconds = time.perf_counter() - started
    path = slider.save(out_dir / "slider.safetensors")
    where = "" if world == "toyworld" else f", {world} world"
    log(f"{name} ({objective}{where}): trained {slider.steps_done} steps in {train_seconds:.0f}s; evaluating")
    metrics = evaluate(components, path, spec, out_dir / "eval")
    return {"train_seconds": train_seconds, "steps": slider.steps_done, "metrics": metrics}


HEADLINES = ("efficacy", "spearman", "monotonic", "preservation", "drift")
NUMERIC_HEADLINES = tuple(h for h in HEADLINES if h != "monotonic")
SPREAD = ("min", "median", "max")


def _spread(values) -> Optional[dict]:
    """min / median / max of the defined values (an undefined figure is None); n says how many there were."""
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not numbers:
        return None
    return {"min": min(numbers), "median": statistics.median(numbers), "max": max(numbers), "n": len(numbers)}


def seed_stats(runs: list[dict]) -> dict:
    """Over one slider's runs (one per seed): the spread of train seconds and of each numeric headline;
    monotonic is a yes/no per run, so it is a count of yes."""
    stats = {"train_seconds": _spread(run["train_seconds"] for run in runs)}
    stats.update({name: _spread(run["metrics"].get(name) for run in runs) for name in NUMERIC_HEADLINES})
    flags = [run["metrics"].get("monotonic") for run in runs]
    stats["monotonic"] = {"yes": sum(flag is True for flag in flags), "runs": len(runs)} if any(f is not None for f in flags) else None
    return stats


def _cell(value) -> str:
    return f"{'-' if value is None else (f'{value:.3f}' if isinstance(value, float) else str(value)):>14}"


def _run_row(key: str, run: dict) -> str:
    return f"{key:<28}{run['train_seconds']:>9.1f}" + "".join(_cell(run["metrics"].get(h)) for h in HEADLINES)


def _spread_rows(key: str, stats: dict) -> list[str]:
    rows, yes = [], stats["monotonic"]
    for stat in SPREAD:
        values = {h: (stats[h] or {}).get(stat) for h in NUMERIC_HEADLINES}
        # A count, not a spread: shown once, on the median row.
        values["monotonic"] = (f"{yes['yes']}/{yes['runs']} yes" if yes else None) if stat == "median" else ""
        cells = "".join(_cell(values[h]) for h in HEADLINES)
        rows.append(f"{key if stat == 'min' else '':<28}{stat:<8}{stats['train_seconds'][stat]:>9.1f}{cells}")
    return rows


def comparison_table(summary: dict) -> str:
    """One row per (recipe, objective): training time and the headline figures, side by side; with several
    seeds, three rows (min / median / max over the seeds). The first line says the torch threads and seeds."""
    first = next(iter(summary.values()), {})
    seeds = first.get("seeds")
    spread = ",".join(map(str, seeds)) + " (min / median / max over them)" if seeds else "the recipes' own"
    stat_column = f"{'stat':<8}" if seeds else ""
    rows = [f"torch threads: {first.get('threads')}; seeds: {spread}",
            f"{'slider':<28}{stat_column}{'train s':>9}" + "".join(f"{h:>14}" for h in HEADLINES)]
    for key, entry in summary.items():
        rows.extend(_spread_rows(key, entry["stats"]) if seeds else [_run_row(key, entry)])
    return "\n".join(rows)


def _seed_runs(name: str, objective: str, weights, out: Path, log: Log, quick: bool, seeds: tuple[int, ...],
               world: str = "toyworld") -> dict:
    from .files import load_toy_components

    runs = []
    for seed in seeds:
        log(f"{name} ({objective}): seed {seed}")
        components = load_toy_components(weights)  # fresh per run: nothing of one run leaks into the next
        runs.append({"seed": seed, **run_recipe(name, components, out / f"seed-{seed}", log, quick, objective, seed=seed,
                                                world=world)})
    return {"seeds": list(seeds), "runs": runs, "stats": seed_stats(runs)}


def _world_weights(world: str, weights: Optional[Path], worlds: tuple[str, ...]) -> Optional[Path]:
    """--weights replaces the world's shipped file only when one world runs (else each world's own file)."""
    from .worlds import world_weights

    return weights if weights is not None and len(worlds) == 1 else world_weights(world)


def run_demo(out: Path, weights: Optional[Path] = None, recipes=DEMO_RECIPES, log: Log = print, quick: bool = False,
             objectives: tuple[str, ...] = ("loba",), threads: int = 1, seeds: Optional[tuple[int, ...]] = None,
             worlds: tuple[str, ...] = ("toyworld",)) -> dict:
    """Runs every recipe x objective x world (x seed, when seeds are given: DIR/<slider>/seed-<n>/) with `threads`
    torch threads, writes DIR/summary.json after each slider and prints the comparison table. A world other
    than the plain one runs into DIR/<world>/<slider>/ and its rows read `<slider> [<world>]`."""
    import torch

    from .files import load_toy_components

    out = Path(out)
    summary = {}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # pinned: train seconds and CPU float results depend on the thread count
    try:
        for name in recipes:
            for world in worlds:
                world_file = _world_weights(world, weights, worlds)
                for objective in objectives if world == "toyworld" else ("loba",):
                    key = name + OBJECTIVE_SUFFIXES[objective]
                    folder = out / key if world == "toyworld" else out / world / key
                    key = key if world == "toyworld" else f"{key} [{world}]"
                    if seeds:
                        entry = _seed_runs(name, objective, world_file, folder, log, quick, tuple(seeds), world)
                    else:  # fresh components per run: nothing of one run leaks into the next
                        entry = run_recipe(name, load_toy_components(world_file), folder, log, quick, objective, world=world)
                    summary[key] = {"threads": torch.get_num_threads(), "world": world, **entry}
                    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    finally:
        torch.set_num_threads(previous)
    log(comparison_table(summary))
    return summary
