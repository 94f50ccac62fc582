"""The cost of offload = blocks | sequential per training step against none, in one process, alternating.

    python -m benchmarks.offload --out FILE.json [--steps 6] [--rounds 2] [--device cpu|cuda] [--recipe erase-red]

Trains the toy world's recipe (embedded model, no download) with each mode and reports seconds per step (mean
after the first step), the ratio to none and, on CUDA, the peak allocated memory per mode. On a CPU the device and
the offload store are the same memory, so only the bookkeeping (the hooks, the copies of each block's weights
per forward, accelerate's per-layer hooks) is measured: a CPU figure says nothing about a GPU's PCIe traffic.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

MODES = ("none", "blocks", "sequential")


def one_run(mode: str, steps: int, device: str, recipe: str) -> dict:
    from loba.config.runfile import load_run_file
    from loba.models.sources import ModelSource, load_backend
    from loba.toyworld.demo import recipe_path
    from loba.train.callbacks import TrainCallbacks
    from loba.train.loop import train

    run = load_run_file(recipe_path(recipe, "train"), {"pretrained_model_name_or_path": "toyworld",
                                                        "max_train_steps": steps, "offload": mode})
    backend = load_backend(ModelSource("toyworld", device=device))
    seconds: list[float] = []

    class Clock(TrainCallbacks):
        def on_step(self, report, network) -> None:
            seconds.append(report.seconds)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    result = train(backend, run.prompts.with_default_resolution((backend.native_resolution,) * 2), run.config,
                   callbacks=Clock())
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
    steady = seconds[1:] or seconds
    return {"mode": mode, "seconds_per_step": statistics.fmean(steady), "losses": result.losses, "peak_bytes": peak}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.offload", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--recipe", default="erase-red")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    runs = [one_run(mode, args.steps, args.device, args.recipe) for _ in range(args.rounds) for mode in MODES]
    per_mode = {mode: statistics.fmean(r["seconds_per_step"] for r in runs if r["mode"] == mode) for mode in MODES}
    result = {"device": args.device, "machine": platform.processor() or platform.machine(), "steps": args.steps,
              "rounds": args.rounds, "seconds_per_step": per_mode,
              "ratio_to_none": {mode: per_mode[mode] / per_mode["none"] for mode in MODES},
              "peak_bytes": {r["mode"]: r["peak_bytes"] for r in runs},
              "same_loss_as_none": {mode: all(r["losses"] == runs[0]["losses"] for r in runs if r["mode"] == mode)
                                    for mode in MODES},
              "note": "CPU: device and offload store are the same memory; only the hooks' bookkeeping is measured",
              "total_s": time.perf_counter() - started}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for mode in MODES:
        print(f"{mode:>10}: {per_mode[mode]:.3f} s/step ({result['ratio_to_none'][mode]:.2f}x none)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
