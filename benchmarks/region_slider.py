"""RC-LOBA on the toy world: a dark <-> light background slider trained on the whole image vs the same slider with
an attention region (each entry trains where the frozen model does not attend to its shape word, the object held
to the frozen model), side by side in one run, per training seed.

    python -m benchmarks.region_slider --out out/region-slider [--seeds 0,1] [--threads 1] [--quick]

Figures per method (recipes loba/toyworld/recipes/background-slider[.region].toml, scored by
background-slider.eval.toml on 6 affected prompts x 32 samples, same seeds at every weight):
- light at +1, dark at -1: the share of samples on the slider's pole (the background attribute is light | dark);
- kept at +1 / -1: shape, color and size of the affected samples equal to their w = 0 twin (the issue's bar: 98%);
- spearman, train seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

METHODS = (("whole image", "loba"), ("attention region", "region"))
RECIPE = "background-slider"


def row(metrics: dict) -> dict:
    light = metrics["rate_by_weight"]
    kept = metrics["affected_preservation_by_weight"]
    return {"light_at_plus1": light["1"], "dark_at_minus1": 1.0 - light["-1"], "light_at_0": light["0"],
            "kept_at_plus1": kept["1"], "kept_at_minus1": kept["-1"], "spearman": metrics["spearman"]}


def run(out: Path, seeds: tuple[int, ...], threads: int, quick: bool) -> dict:
    import torch

    from loba.toyworld.demo import run_recipe
    from loba.toyworld.files import load_toy_components

    torch.set_num_threads(threads)
    results = {}
    for label, objective in METHODS:
        runs = []
        for seed in seeds:
            folder = out / objective / f"seed-{seed}"
            done = run_recipe(RECIPE, load_toy_components(), folder, print, quick, objective, seed=seed)
            runs.append({"seed": seed, "train_seconds": done["train_seconds"], **row(done["metrics"])})
        results[label] = runs
        (out / "summary.json").write_text(json.dumps({"threads": threads, "seeds": list(seeds), "methods": results}, indent=2))
    return results


def table(results: dict) -> str:
    keys = ("light_at_plus1", "dark_at_minus1", "kept_at_plus1", "kept_at_minus1", "spearman", "train_seconds")
    lines = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for label, runs in results.items():
        cells = []
        for key in keys:
            values = [r[key] for r in runs if r[key] is not None]
            if not values:
                cells.append("-")
            elif len(values) == 1:
                cells.append(f"{values[0]:.3f}" if key != "train_seconds" else f"{values[0]:.0f}")
            else:
                cells.append(f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + ("\n(min / median / max over seeds)" if any(len(r) > 1 for r in results.values()) else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run (figures meaningless)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args.out, tuple(int(s) for s in args.seeds.split(",")), args.threads, args.quick)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
