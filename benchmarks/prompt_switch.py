"""The best a one-attribute slider can keep on the toy world: sample a prompt, switch to its pole prompt below a
timestep T (what a slider that acts like the model's own concept, left alone above T, does at best), and read
what else changed against the same seed's base sample (loba/toyworld/prompt_switch.py).

    python -m benchmarks.prompt_switch [--samples 64] [--switch 1001,900,800,700,600,500] [--threads 1]

Cases: the size slider on under-specified prompts ("a circle": color is not yet decided when size is) and on
color-explicit ones ("a red circle"), and the light <-> dark background slider on "a circle". Rows: kept = every
other attribute equal to the base sample's (the issue's bar: 0.95 at +-1), the per-attribute rates, and
effect = the share of samples that took the pole's value. T = 1001 is the pole prompt from the first step.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CASES = (
    ("size", "a circle", {"large": "a large circle", "small": "a small circle"}),
    ("size", "a square", {"large": "a large square", "small": "a small square"}),
    ("size", "a red circle", {"large": "a large red circle", "small": "a small red circle"}),
    ("size", "a blue square", {"large": "a large blue square", "small": "a small blue square"}),
    ("background", "a circle", {"light": "a circle on a light background", "dark": "a circle on a dark background"}),
    ("background", "a red circle", {"light": "a red circle on a light background",
                                    "dark": "a red circle on a dark background"}),
)
EVAL_SEED = 0  # the shipped eval specs sample seeds 0, 1, ...: the same noises the demo's figures come from


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--switch", default="1001,900,800,700,600,500", help="timesteps T (the pole prompt below T)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the toy world's 25)")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="first sample seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", default="all", help="'all' or comma-separated case numbers (0-based)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    return parser.parse_args(argv)


def table(rows: list[dict]) -> str:
    lines = ["| moved | base prompt | pole | T | kept | per attribute | effect |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        others = " ".join(f"{k} {v:.2f}" for k, v in r["per_attribute"].items())
        lines.append(f"| {r['attribute']} | {r['base']} | {r['pole']} | {r['switch_below']} | {r['kept']:.3f} | "
                     f"{others} | {r['effect']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from dataclasses import asdict

    import torch

    from loba.toyworld.model import DEFAULT_SAMPLING
    from loba.toyworld.prompt_switch import switch_table
    from loba.toyworld.sampling import ToySampler, load_toy_components

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    switches = [int(t) for t in args.switch.split(",")]
    chosen = CASES if args.cases == "all" else [CASES[int(i)] for i in args.cases.split(",")]
    sampler = ToySampler(load_toy_components())
    seeds = list(range(args.seed, args.seed + args.samples))
    rows = []
    for attribute, base, poles in chosen:
        for figures in switch_table(sampler, base, poles, attribute, switches, seeds,
                                    args.steps or DEFAULT_SAMPLING["steps"]):
            rows.append({"attribute": attribute, **asdict(figures)})
    print(f"torch threads {args.threads}, {args.samples} samples per cell (seeds {args.seed}..)")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
