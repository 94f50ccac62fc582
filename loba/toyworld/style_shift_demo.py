"""`loba demo --only style`: ST-LOBA's style shift on the entangled world, with and without over-layered regions.

The shipped recipes recipes/style-<case>.toml move one render style attribute (palette vivid -> pastel, linework
filled -> outlined) for every content prompt they list, held out content prompts included in the scoring. Each
figure is the styled reader on the same seeds at w = 0 and w = 1 (issue 15, point 5):
- took_style: content samples that show the new style at w = 1 (bar 0.90);
- kept: content samples whose shape, color, size and background all match w = 0 (bar 0.95), and per attribute;
- explicit_old: samples of explicit old-style prompts ("a red vivid circle") that show the old style, at w = 0
  and w = 1 (they must still obey);
- base_style: the content samples that already show the new style at w = 0 (a style is drawn uniformly);
- ceiling: the styled prompts' own samples at w = 0 that show the new style (what the model draws when told the
  style: a slider that acts like the style word reaches about this);
- prompted_kept: the same-seed samples of the styled prompt (w = 0) whose shape, color, size and background match
  the content prompt's: what the model itself keeps when told the style (every seed shares its noise).
Writes DIR/<case>/<variant>/ (slider, loss.csv, grid.png) and DIR/summary.json; prints the table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

from ..sliders.atomic import atomic_write_text
from .unlearn_cases import CONTENT
from .unlearn_demo import sample, save_rows, train_table

Log = Callable[[str], None]
EVAL_SEED = 0
QUICK_TRAIN = {"max_train_steps": 2, "max_denoising_steps": 3}
COLUMNS = ("took_style", "ceiling", "base_style", "kept", "prompted_kept", "explicit_old_w0", "explicit_old_w1", "train_seconds")


@dataclass(frozen=True)
class StyleCase:
    name: str
    attribute: str  # linework | palette
    new: str
    old: str
    held_out: tuple[str, ...]  # content prompts the recipe never trains, scored beside its own
    explicit_old: tuple[str, ...]

    def styled(self, prompt: str) -> str:
        """The toy grammar's styled form of a content prompt (the style word in its place)."""
        from .entangled_captions import compose_entangled, parse_entangled

        return compose_entangled(**{**parse_entangled(prompt), self.attribute: self.new})

    def recipe(self, variant: str) -> str:
        return f"style-{self.name}" + ("" if variant == "layered" else f".{variant}")


STYLE_CASES = {case.name: case for case in (
    StyleCase("pastel", "palette", "pastel", "vivid",
              ("a small red circle on a light background", "a large yellow square", "a green triangle on a dark background"),
              ("a vivid red circle", "a vivid blue square", "a large vivid green triangle")),
    StyleCase("outlined", "linework", "outlined", "filled",
              ("a small red circle on a light background", "a large yellow square", "a green triangle on a dark background"),
              ("a red filled circle", "a blue filled square", "a large green filled triangle")),
)}
VARIANTS = ("layered", "whole")  # the shipped recipe (over-layered regions) and the same without its layers


def recipe_prompts(case: StyleCase, variant: str):
    """(the run table, its folder, the content prompts it trains)."""
    from ..prompts.loader import read_prompt_table

    folder = Path(str(resources.files(__package__).joinpath("recipes")))
    table = read_prompt_table(folder / f"{case.recipe('layered')}.toml")
    if variant == "whole":
        table = {**table, "style_shift": [{k: v for k, v in e.items() if k != "layers"} for e in table["style_shift"]]}
    content = [c if isinstance(c, str) else c["prompt"] for e in table["style_shift"] for c in e["content"]]
    return table, folder, content


def style_figures(case: StyleCase, content: list[str], base: dict, moved: dict) -> dict:
    def rate(reads, attribute, value):
        return float(np.mean([r[attribute] == value for r in reads]))

    pairs = [(b, m) for p in content for b, m in zip(base[p], moved[p])]
    prompted = [(b, m) for p in content for b, m in zip(base[p], base[case.styled(p)])]
    kept_each = {a: float(np.mean([b[a] == m[a] for b, m in pairs])) for a in CONTENT}
    return {"took_style": float(np.mean([rate(moved[p], case.attribute, case.new) for p in content])),
            "ceiling": float(np.mean([rate(base[case.styled(p)], case.attribute, case.new) for p in content])),
            "base_style": float(np.mean([rate(base[p], case.attribute, case.new) for p in content])),
            "kept": float(np.mean([all(b[a] == m[a] for a in CONTENT) for b, m in pairs])), "kept_each": kept_each,
            "prompted_kept": float(np.mean([all(b[a] == m[a] for a in CONTENT) for b, m in prompted])),
            "explicit_old_w0": float(np.mean([rate(base[p], case.attribute, case.old) for p in case.explicit_old])),
            "explicit_old_w1": float(np.mean([rate(moved[p], case.attribute, case.old) for p in case.explicit_old])),
            "per_prompt": {p: {"took_style": rate(moved[p], case.attribute, case.new),
                               "kept": float(np.mean([all(b[a] == m[a] for a in CONTENT) for b, m in zip(base[p], moved[p])]))}
                           for p in content}}


def run_case(case: StyleCase, components_for: Callable[[], object], out: Path, variants, samples: int, seed: int,
             quick: bool, log: Log) -> dict:
    steps = 2 if quick else None
    results = {}
    for variant in variants:
        table, folder, trained = recipe_prompts(case, variant)
        content = list(dict.fromkeys(trained + list(case.held_out)))
        prompts = list(dict.fromkeys(content + [case.styled(p) for p in content] + list(case.explicit_old)))
        if not results:
            log(f"style {case.name}: sampling the base model ({samples} samples x {len(prompts)} prompts)")
            base, base_images = sample(components_for(), prompts, samples, EVAL_SEED, steps=steps)
        where = out / case.name / variant
        where.mkdir(parents=True, exist_ok=True)
        log(f"style {case.name}: training {variant}")
        components = components_for()
        slider, seconds = train_table(table, folder, case.recipe(variant), components, where, QUICK_TRAIN if quick else None,
                                      seed)
        shown = content + list(case.explicit_old)  # the styled prompts are only needed at w = 0
        moved, moved_images = sample(components, shown, samples, EVAL_SEED, slider, steps=steps)
        figures = {**style_figures(case, trained, base, moved), "train_seconds": seconds}
        figures["held_out"] = style_figures(case, list(case.held_out), base, moved)
        results[variant] = figures
        save_rows(where / "grid.png", [*trained[:3], *case.held_out[:2], case.explicit_old[0]], base_images, moved_images)
        log(f"style {case.name} {variant}: " + ", ".join(f"{k} {figures[k]:.3f}" for k in COLUMNS)
            + f", held-out took {figures['held_out']['took_style']:.3f} kept {figures['held_out']['kept']:.3f}")
    return {"attribute": case.attribute, "new": case.new, "old": case.old, "samples": samples, "variants": results}


def table(summary: dict) -> str:
    rows = [f"{'case':<10}{'variant':<10}" + "".join(f"{c:>17}" for c in COLUMNS) + f"{'held_out_took':>15}{'held_out_kept':>15}"]
    for name, entry in summary["cases"].items():
        for variant, f in entry["variants"].items():
            rows.append(f"{name:<10}{variant:<10}" + "".join(f"{f[c]:>17.3f}" for c in COLUMNS)
                        + f"{f['held_out']['took_style']:>15.3f}{f['held_out']['kept']:>15.3f}")
    return "\n".join(rows)


def run_style(out: Path, cases=("pastel",), variants=VARIANTS, samples: int = 32, seed: int = 0, threads: int = 1,
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
            summary["cases"][name] = run_case(STYLE_CASES[name], lambda: load_toy_components(weights), out, variants,
                                              2 if quick else samples, seed, quick, log)
            atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    finally:
        torch.set_num_threads(previous)
    log(table(summary))
    return summary
