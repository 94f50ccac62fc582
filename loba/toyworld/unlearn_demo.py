"""`loba demo --only unlearn`: re-attaching a biased caption on the entangled world, three ways, side by side.

Methods, each scored on the same seeds against the same base samples (loba/toyworld/unlearn_cases.py):
- u-loba: the shipped recipe recipes/unlearn-<case>.toml (LOBA's default re-attach recipe; only the prompts
  differ between cases);
- leco-erase: LECO's classic erase of the favoured value on the caption (target = the caption, positive = the
  favoured value's explicit prompt, unconditional and neutral "", p1atdev LECO's rank / alpha / lr / denoise
  and adapter-on denoise, no preservation prompts), on the same step budget;
- negative-prompt: the user's workaround, no training: the base model with the favoured value as the
  negative prompt of every prompt the user writes (explicit and control prompts too, as a workflow's
  negative prompt would be).
Writes DIR/<case>/<method>/ (slider, loss.csv, grid.png) and DIR/summary.json; prints the table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

from ..sliders.atomic import atomic_write_text
from .unlearn_cases import UNLEARN_CASES, UnlearnCase, case_figures

METHODS = ("u-loba", "leco-erase", "negative-prompt")
DEFAULT_CASES = ("triangle",)
Log = Callable[[str], None]
# p1atdev LECO's defaults (as recipes/erase-red.leco-classic.toml), on U-LOBA's step budget.
LECO_CLASSIC = {"network_dim": 4, "network_alpha": 1.0, "learning_rate": 1e-4, "max_train_steps": 300,
                "max_denoising_steps": 50, "leco_denoise_guidance_scale": 3.0, "denoise_with_adapter": True, "seed": 0}
EVAL_SEED = 0  # sampling seeds EVAL_SEED .. + samples - 1 for every prompt, method and training seed
QUICK_TRAIN = {"max_train_steps": 2, "max_denoising_steps": 3, "min_timestep": 0}  # a 3-step grid has no t >= 600
COLUMNS = ("bias_rate_base", "bias_rate_w1", "explicit_fidelity", "control_preservation", "diversity", "drift",
           "train_seconds")


def recipe_table(case: UnlearnCase, method: str) -> tuple[dict, Path]:
    """(the run table, the folder relative files resolve in) of a trained method."""
    folder = Path(str(resources.files(__package__).joinpath("recipes")))
    if method == "u-loba":
        from ..prompts.loader import read_prompt_table

        return read_prompt_table(folder / f"{case.recipe}.toml"), folder
    prompt = {"target": case.caption, "positive": case.favoured_prompt, "action": "erase", "guidance_scale": 1.0,
              "resolution": 64, "batch_size": 2}
    return {**LECO_CLASSIC, "prompts": [prompt]}, folder


def train_method(case: UnlearnCase, method: str, components, out: Path, quick: bool, seed: Optional[int]) -> tuple[Path, float]:
    table, folder = recipe_table(case, method)
    return train_table(table, folder, f"{case.recipe} ({method})", components, out, QUICK_TRAIN if quick else None, seed)


def train_table(table: dict, folder: Path, label: str, components, out: Path, quick: Optional[dict],
                seed: Optional[int]) -> tuple[Path, float]:
    """(the saved slider, train seconds) of a run table on the toy components; `quick` overrides for smoke runs."""
    from ..config.runfile import split_run_table
    from ..train.run import RunRequest, run_training
    from .backend import toy_backend

    _, config, prompts = split_run_table(table, folder, label)
    if seed is not None:
        config = config.replace(seed=seed)
    if quick:
        config = config.replace(**quick)
    started = time.perf_counter()
    slider = run_training(RunRequest(prompts, config, backend=toy_backend(components), out_dir=out))
    seconds = time.perf_counter() - started
    return slider.save(out / "slider.safetensors"), seconds


def last_canary_drift(folder: Path) -> Optional[float]:
    """The last canary drift loss.csv logged (None without canaries)."""
    import csv

    path = folder / "loss.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        values = [row.get("canary_drift") for row in csv.DictReader(handle)]
    drifts = [float(v) for v in values if v]
    return drifts[-1] if drifts else None


def sample(components, prompts: list[str], samples: int, seed: int, slider_path: Optional[Path] = None,
           negative: str = "", steps: Optional[int] = None) -> tuple[dict, dict]:
    """(prompt -> styled reads, prompt -> uint8 images) with seeds shared across prompts and methods."""
    from .model import DEFAULT_SAMPLING
    from .sampling import ToySampler, load_slider_network
    from .style_reader import read_styled_batch

    sampler = ToySampler(components)
    slider = load_slider_network(slider_path, components.unet, components) if slider_path else None
    texts = [p for p in prompts for _ in range(samples)]
    seeds = [seed + j for _ in prompts for j in range(samples)]
    images = sampler.sample(texts, seeds, slider, 1.0 if slider else 0.0, steps or DEFAULT_SAMPLING["steps"],
                            DEFAULT_SAMPLING["cfg"], 128, negative=negative)
    reads = [r.categorical() for r in read_styled_batch(images)]
    by_prompt = {p: slice(i * samples, (i + 1) * samples) for i, p in enumerate(prompts)}
    return {p: reads[s] for p, s in by_prompt.items()}, {p: images[s] for p, s in by_prompt.items()}


def save_grid(path: Path, case: UnlearnCase, base_images: dict, moved_images: dict, columns: int = 4) -> None:
    """Rows: caption, the explicit prompts, two controls; each row w = 0 samples then the method's, same seeds."""
    save_rows(path, [case.caption, *case.explicit, *case.control[:2]], base_images, moved_images, columns)


def save_rows(path: Path, rows: list[str], base_images: dict, moved_images: dict, columns: int = 4) -> None:
    """One row per prompt: its first w = 0 samples, a white gap, the same seeds' samples with the slider."""
    from PIL import Image

    strips = [np.concatenate([*base_images[p][:columns], np.full((64, 8, 3), 255, np.uint8), *moved_images[p][:columns]], axis=1)
              for p in rows]
    Image.fromarray(np.concatenate(strips, axis=0)).save(path)


def run_case(case: UnlearnCase, components_for: Callable[[], object], out: Path, methods, samples: int, seed: int,
             quick: bool, log: Log) -> dict:
    steps = 2 if quick else None
    log(f"unlearn {case.name}: sampling the base model ({samples} samples x {len(case.prompts())} prompts)")
    base, base_images = sample(components_for(), case.prompts(), samples, EVAL_SEED, steps=steps)
    results = {}
    for method in methods:
        folder = out / case.name / method
        folder.mkdir(parents=True, exist_ok=True)
        components, seconds, slider = components_for(), 0.0, None
        if method != "negative-prompt":
            log(f"unlearn {case.name}: training {method}")
            slider, seconds = train_method(case, method, components, folder, quick, seed)
        negative = case.negative if method == "negative-prompt" else ""
        moved, moved_images = sample(components, case.prompts(), samples, EVAL_SEED, slider, negative, steps=steps)
        results[method] = {**case_figures(case, base, moved, base_images, moved_images), "train_seconds": seconds,
                           "canary_drift": last_canary_drift(folder)}
        save_grid(folder / "grid.png", case, base_images, moved_images)
        log(f"unlearn {case.name} {method}: " + ", ".join(f"{k} {results[method][k]:.3f}" for k in COLUMNS))
    return {"caption": case.caption, "attribute": case.attribute, "favoured": case.favoured, "samples": samples,
            "methods": results, "verdict": verdict(results)}


def verdict(results: dict) -> Optional[dict]:
    """Whether U-LOBA beats every other method on explicit fidelity x control preservation at an equal or
    better (lower) bias rate."""
    if "u-loba" not in results:
        return None
    ours = results["u-loba"]
    score = {m: r["explicit_fidelity"] * r["control_preservation"] for m, r in results.items()}
    beats = {m: bool(score["u-loba"] > score[m] and ours["bias_rate_w1"] <= r["bias_rate_w1"] + 1e-9)
             for m, r in results.items() if m != "u-loba"}
    return {"fidelity_x_preservation": score, "u-loba_beats": beats}


def table(summary: dict) -> str:
    rows = [f"{'case':<10}{'method':<18}" + "".join(f"{c:>22}" for c in COLUMNS)]
    for name, entry in summary["cases"].items():
        for method, figures in entry["methods"].items():
            rows.append(f"{name:<10}{method:<18}" + "".join(f"{figures[c]:>22.3f}" for c in COLUMNS))
    return "\n".join(rows)


def run_unlearn(out: Path, cases=DEFAULT_CASES, methods=METHODS, samples: int = 64, seed: int = 0, threads: int = 1,
                quick: bool = False, weights: Optional[Path] = None, log: Log = print) -> dict:
    import torch

    from .files import load_toy_components
    from .worlds import world_weights

    out = Path(out)
    weights = weights or world_weights("entangled")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    summary = {"world": str(weights.name), "threads": threads, "seed": seed, "cases": {}}
    try:
        for name in cases:
            case = UNLEARN_CASES[name]
            summary["cases"][name] = run_case(case, lambda: load_toy_components(weights), out, methods,
                                              2 if quick else samples, seed, quick, log)
            atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    finally:
        torch.set_num_threads(previous)
    log(table(summary))
    return summary
