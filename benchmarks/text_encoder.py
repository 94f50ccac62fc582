"""Text encoder alongside, side by side: the toy world's shipped erase-red recipe trained UNet-only (as shipped),
UNet + text encoder, and text encoder only, each evaluated with the recipe's eval spec (efficacy, preservation)
and timed (training seconds per step, evaluation not counted). Same seed, same steps, same learning rate.

    nice -n 10 python -m benchmarks.text_encoder --out /tmp/te-bench [--threads 1] [--steps N] [--quick]
        [--timing-rounds 3 --timing-steps 40]

The s/step of the full runs is their wall time over their steps; on a shared machine it drifts with the load,
so --timing-rounds adds short runs of every mode in turn, round after round, and reports per mode the least
(over rounds) median step time and its student (forward + backward) part: the fair side-by-side figure.
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
    from loba.toyworld.backend import toy_backend
    from loba.toyworld.demo import QUICK_EVAL, QUICK_TRAIN, recipe_path
    from loba.toyworld.evaluate import evaluate, load_spec
    from loba.train.run import RunRequest, run_training

    config, prompts = _recipe(mode, steps)
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


def _recipe(mode: str, steps: int):
    """The shipped erase-red recipe with train_text_encoder = mode (and `steps` when not 0)."""
    from loba.config.runfile import split_run_table
    from loba.prompts.loader import read_prompt_table
    from loba.toyworld.demo import recipe_path

    train_file = recipe_path("erase-red", "train")
    _, config, prompts = split_run_table(read_prompt_table(train_file), train_file.parent, train_file.name)
    return config.replace(train_text_encoder=mode, **({"max_train_steps": steps} if steps else {})), prompts


def interleaved_timing(components, modes: list[str], rounds: int, steps: int) -> dict[str, dict]:
    """{mode: {step_s, student_s}}: per mode the least over rounds of the median step (and student) seconds."""
    from statistics import median

    from loba.toyworld.backend import toy_backend
    from loba.train.callbacks import TrainCallbacks
    from loba.train.run import RunRequest, run_training

    class Clock(TrainCallbacks):
        def __init__(self):
            self.steps, self.student = [], []

        def on_step(self, report, network):
            self.steps.append(report.seconds)
            self.student.append(report.phases.get("student_forward", 0.0) + report.phases.get("backward", 0.0))

    best: dict[str, dict] = {}
    for _ in range(rounds):
        for mode in modes:
            config, prompts = _recipe(mode, steps)
            clock = Clock()
            run_training(RunRequest(prompts, config, backend=toy_backend(components), callbacks=clock))
            found = {"step_s": median(clock.steps), "student_s": median(clock.student)}
            if mode not in best or found["step_s"] < best[mode]["step_s"]:
                best[mode] = found
    return best


def table(rows: list[dict]) -> str:
    timed = all("step_s" in row for row in rows)
    head = "| erase-red | layers | adapter params | efficacy | preservation | s/step (full run) |"
    head += " s/step (interleaved) | student fwd+bwd s |" if timed else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        line = (f"| {MODES[row['mode']]} | {row['layers']} | {row['parameters']:,} | {_fmt(row['efficacy'])} | "
                f"{_fmt(row['preservation'])} | {row['s_per_step']:.3f} |")
        lines.append(line + (f" {row['step_s']:.3f} | {row['student_s']:.3f} |" if timed else ""))
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
    parser.add_argument("--timing-rounds", type=int, default=0, help="rounds of interleaved timing runs (0: none)")
    parser.add_argument("--timing-steps", type=int, default=40, help="steps of each timing run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    components = load_toy_components()
    modes = args.modes.split(",")
    rows = [run_mode(mode, components, args.out, args.steps, args.quick) for mode in modes]
    if args.timing_rounds:
        timing = interleaved_timing(components, modes, args.timing_rounds, args.timing_steps)
        rows = [{**row, **timing[row["mode"]]} for row in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "text_encoder.json").write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
