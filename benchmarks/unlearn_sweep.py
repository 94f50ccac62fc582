"""Screen U-LOBA recipe variants fast: train one variant of a case's shipped recipe, score it exactly as
`loba demo --only unlearn` does (loba/toyworld/unlearn_cases.py), usually on fewer samples.

    python -m benchmarks.unlearn_sweep --variant shipped --samples 32
    python -m benchmarks.unlearn_sweep --variant shipped --set learning_rate=3e-3 --reattach timestep_window=[600,1000]

A variant is the shipped recipe table plus overrides: `--set KEY=VALUE` (top-level training options),
`--reattach KEY=VALUE` (every [[reattach]] entry), `--anchors P1|P2|...` (replaces the [[anchors]] list),
`--preserve P1|P2|...` (adds `action = "preserve"` pairs held on their own trajectories); values are TOML.
The base model's samples are cached per (case, samples) under --cache, so a variant costs its training and one
sampling pass. Appends one JSON line per run to --log.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from importlib import resources
from pathlib import Path

import tomllib


def toml_value(text: str):
    return tomllib.loads(f"v = {text}")["v"]


def overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.strip()] = toml_value(value)
    return out


def variant_table(case, args) -> tuple[dict, Path]:
    from loba.prompts.loader import read_prompt_table

    folder = Path(str(resources.files("loba.toyworld").joinpath("recipes")))
    table = read_prompt_table(Path(args.recipe) if args.recipe else folder / f"{case.recipe}.toml")
    table.update(overrides(args.set))
    for entry in table.get("reattach", []):
        entry.update(overrides(args.reattach))
    if args.anchors is not None:
        table["anchors"] = [{"prompt": p} for p in args.anchors.split("|")] if args.anchors else []
    if args.preserve:
        extra = overrides(args.preserve_set)
        table["prompts"] = [{"target": p, "action": "preserve", "resolution": 64, "batch_size": 2, **extra}
                            for p in args.preserve.split("|")]
    return table, folder


def base_samples(case, components_for, samples: int, cache: Path):
    from loba.toyworld.unlearn_demo import EVAL_SEED, sample

    path = cache / f"base-{case.name}-{samples}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    result = sample(components_for(), case.prompts(), samples, EVAL_SEED)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(result))
    return result


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="triangle")
    parser.add_argument("--variant", default="variant", help="a name for the log line")
    parser.add_argument("--recipe", help="a recipe file instead of the case's shipped one")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--reattach", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--anchors", help="'|'-separated anchor prompts replacing the recipe's ('' for none)")
    parser.add_argument("--preserve", help="'|'-separated prompts added as preserve pairs")
    parser.add_argument("--preserve-set", action="append", default=[], metavar="KEY=VALUE",
                        help="fields of every preserve pair (e.g. weight=0.5)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/unlearn-sweep"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/unlearn-sweep/base"))
    parser.add_argument("--log", type=Path, default=Path("/tmp/unlearn-sweep/log.jsonl"))
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    import torch

    from loba.config.runfile import split_run_table
    from loba.toyworld.backend import toy_backend
    from loba.toyworld.files import load_toy_components
    from loba.toyworld.unlearn_cases import UNLEARN_CASES, case_figures
    from loba.toyworld.unlearn_demo import EVAL_SEED, last_canary_drift, sample
    from loba.toyworld.worlds import world_weights
    from loba.train.run import RunRequest, run_training

    args = parse_args(argv)

    torch.set_num_threads(1)
    case = UNLEARN_CASES[args.case]
    weights = world_weights("entangled")
    components_for = lambda: load_toy_components(weights)  # noqa: E731
    table, folder = variant_table(case, args)
    base, base_images = base_samples(case, components_for, args.samples, args.cache)
    out = args.out / args.variant
    out.mkdir(parents=True, exist_ok=True)
    _, config, prompts = split_run_table(table, folder, f"{case.recipe} ({args.variant})")
    config = config.replace(seed=args.seed)
    components = components_for()
    started = time.perf_counter()
    slider = run_training(RunRequest(prompts, config, backend=toy_backend(components), out_dir=out))
    seconds = time.perf_counter() - started
    path = slider.save(out / "slider.safetensors")
    moved, moved_images = sample(components, case.prompts(), args.samples, EVAL_SEED, path)
    figures = {**case_figures(case, base, moved, base_images, moved_images), "train_seconds": seconds,
               "canary_drift": last_canary_drift(out)}
    per_control = {p: sum(all(a[k] == b[k] for k in ("shape", "color", "size", "background"))
                          for a, b in zip(base[p], moved[p])) / args.samples for p in case.control}
    record = {"variant": args.variant, "case": args.case, "samples": args.samples, "seed": args.seed,
              "argv": argv if argv is not None else __import__("sys").argv[1:], **figures, "per_control": per_control}
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    keys = ("bias_rate_w1", "explicit_fidelity", "control_preservation", "diversity", "drift", "train_seconds")
    print(args.variant, " ".join(f"{k} {figures[k]:.3f}" for k in keys))
    print("controls", " ".join(f"{p!r} {v:.2f}" for p, v in per_control.items()))
    return record


if __name__ == "__main__":
    main()
