"""Data-parallel scaling of `loba train` on the toy world: steps/s per process count and the all_reduce's share of
the step (rank 0's loss.jsonl: its all_reduce_seconds include waiting for the slowest process, so the share is an
upper bound on the communication itself).

    python -m benchmarks.scale --processes 1 2 --out scale.json [--steps 4] [--batch 2]

Every count runs the same run file (same seed, same effective batch: each process trains batch / N rows), one
torch thread per process; the first step (warm-up) is left out of the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import REPO

RUN = """
pretrained_model_name_or_path = "toyworld"
network_dim = 4
learning_rate = 1e-3
max_train_steps = {steps}
max_denoising_steps = {denoise}
canary_every = 0
seed = 0

[[prompts]]
target = "a red circle"
positive = "red"
unconditional = ""
action = "erase"
guidance_scale = 1.0
batch_size = {batch}
"""


def run_once(processes: int, run_file: Path, out: Path) -> list[dict]:
    command = [sys.executable, "-m", "loba.cli", "train", str(run_file), "--out", str(out), "--quiet",
               "--num-processes", str(processes)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    subprocess.run(command, cwd=REPO, check=True, env=env, stdout=subprocess.DEVNULL)
    return [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]


def summary(processes: int, rows: list[dict]) -> dict:
    timed = rows[1:] or rows  # the first step pays for warm-up
    seconds = sum(r["seconds"] for r in timed)
    reduce = sum(r["all_reduce_seconds"] for r in timed)
    return {"processes": processes, "steps_timed": len(timed), "steps_per_second": len(timed) / seconds if seconds else math.nan,
            "step_seconds": [r["seconds"] for r in timed], "all_reduce_share": reduce / seconds if seconds else math.nan}


def table(results: list[dict]) -> str:
    base = results[0]["steps_per_second"]
    lines = ["processes  steps/s  speed-up  all_reduce share"]
    for r in results:
        lines.append(f"{r['processes']:>9}  {r['steps_per_second']:7.4f}  {r['steps_per_second'] / base:7.2f}x  "
                     f"{100 * r['all_reduce_share']:15.1f}%")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, required=True, help="JSON file of the figures")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per run (the first is not timed)")
    parser.add_argument("--batch", type=int, default=0, help="effective batch (default: the product of the counts)")
    parser.add_argument("--denoise-steps", type=int, default=4, help="DDIM grid of the partial denoise")
    args = parser.parse_args(argv)
    batch = args.batch or math.prod(sorted(set(args.processes)))
    results = []
    with tempfile.TemporaryDirectory() as folder:
        run_file = Path(folder) / "run.toml"
        run_file.write_text(RUN.format(steps=args.steps, denoise=args.denoise_steps, batch=batch))
        for n in args.processes:
            results.append(summary(n, run_once(n, run_file, Path(folder) / f"out-{n}")))
    report = {"command": " ".join(["python -m benchmarks.scale", *(argv if argv is not None else sys.argv[1:])]),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "batch": batch, "steps": args.steps, "results": results}
    args.out.write_text(json.dumps(report, indent=2))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
