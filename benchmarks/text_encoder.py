"""Text encoder alongside, side by side: the toy world's shipped erase-red recipe trained UNet-only (as shipped),
UNet + text encoder, and text encoder only, each evaluated with the recipe's eval spec (efficacy, preservation)
and timed (training seconds per step, evaluation not counted). Same seed, same steps, same learning rate.

    nice -n 10 python -m benchmarks.text_encoder --out /tmp/te-bench [--threads 1] [--steps N] [--quick]

Writes OUT/text_encoder.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

MODES = {"off": "UNet only (shipped recipe)", "alongside": "UNet + text encoder", "only": "text encoder only"}


def run_mode(mode: str, components, out: Path, steps: int, quick: bool) -> dict:
    from loba.config.runfile import split_run_table
    from loba.prompts.loader import read_prompt_table
    from loba.toyworld.backend import toy_backend
    from loba.toyworld.demo import QUICK_EVAL, QUICK_TRAIN, recipe_path
    from loba.toyworld.evaluate import evaluate, load_spec
    from loba.train.run import RunRequest, run_training

    train_file = recipe_path("erase-red", "train")
    _, config, prompts = split_run_table(read_prompt_table(train_file), train_file.parent, train_file.name)
    config = config.replace(train_text_encoder=mode, **({"max_train_steps": steps} if steps else {}))
    spec = load_spec(recipe_path("erase-red", "eval"))
    if quick:
        config, spec = config.replace(**QUICK_TRAIN), replace(spec, **QUICK_EVAL)
    started = time.perf_counter()
    slider = run_training(RunRequest(prompts, config, backend=toy_backend(components)))
    seconds = time.perf_counter() - started
    path = slider.save(out / mode / "slider.safetensors")
    metrics = evaluate(components, path, spec, out / mode / "eval")
    return {"mode": mode, "steps": slider.steps_done, "train_seconds": seconds, "s_per_step": seconds / max(slider.steps_done, 1),
            "layers": slider.report.num_modules, "parameters": slider.report.num_parameters,
            "efficacy": metrics["efficacy"], "preservation": metrics["preservation"]}


def table(rows: list[dict]) -> str:
    lines = ["| erase-red | layers | adapter params | efficacy | preservation | s/step |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {MODES[row['mode']]} | {row['layers']} | {row['parameters']:,} | {_fmt(row['efficacy'])} | "
                     f"{_fmt(row['preservation'])} | {row['s_per_step']:.3f} |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv=None) -> int:
    import torch

    from loba.toyworld.sampling import load_toy_components

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=0, help="training steps (0: the recipe's)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--quick", action="store_true", help="smoke test: a few steps, meaningless figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    components = load_toy_components()
    rows = [run_mode(mode, components, args.out, args.steps, args.quick) for mode in args.modes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "text_encoder.json").write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
