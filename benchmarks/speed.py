"""LOBA vs the original LECO (p1atdev/LECO) on the same model and settings, in one run, alternating.

    python -m benchmarks.speed --peer PATH --peer-python PY --out FILE.json [--steps 60] [--rounds 2]
                               [--effect] [--comfy]

PATH is a checkout of p1atdev/LECO (fetched, never committed) and PY a Python with LECO's own pinned
versions. Both trainers load the same diffusers folder (the toy world's export, made here when missing),
train the same erase pair with the same rank, alpha, learning rate, denoise steps (LECO's fixed CFG 3),
guidance, batch, resolution and seed, each in its own process, alternating round by round.

Figures (FILE.json, and a table on stdout): seconds per step and peak RSS of both, LOBA's step split
into denoise / teachers / student forward / backward / optimizer, the floor (one batched teacher forward +
one student forward/backward) and LOBA's step as a multiple of it, with the trajectory cache off and on;
--effect adds wall time until the toy-world erase eval first reaches efficacy >= 0.9 with preservation
>= 0.95 for every way LOBA starts (closed form alone, closed form + N steps, from zero with / without the cache,
single-step) and, with --peer, LECO as its users run it and with LOBA's prompts (benchmarks/effect.py);
--comfy adds the Train Slider node's step time against the headless engine.

    python -m benchmarks.speed --family sdxl --resolution 1024 --out FILE.json [--variants bf16+cache,...]

runs LOBA on the real SDXL UNet architecture with random weights instead (benchmarks/sdxl_speed.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from loba.train.phases import PHASES

from .common import REPO, default_model, loba_command, peer_command, run_json


def steady_mean(steps: list[float], skip: int) -> float:
    return statistics.fmean(steps[skip:]) if len(steps) > skip else statistics.fmean(steps)


PEER_PROMPTS = """- target: "a red circle"
  positive: "a red circle"
  unconditional: "a circle"
  neutral: "a circle"
  action: "erase"
  guidance_scale: 1.0
  resolution: 64
  dynamic_resolution: false
  batch_size: 2
"""


def speed(s, model: Path, work: Path, env: dict) -> dict:
    prompts = work / "prompts.yaml"
    prompts.write_text(PEER_PROMPTS)
    runs: dict[str, list[dict]] = {"loba": [], "loba_cache": [], "peer": []}
    for round_index in range(s.rounds):
        for name in ("peer", "loba", "loba_cache") if round_index % 2 else ("loba", "loba_cache", "peer"):
            out = work / f"{name}-{round_index}.json"
            if name == "peer":
                command = peer_command(s, model, out, s.steps, prompts, ["--save-dir", str(work / "peer-save")])
            else:
                command = loba_command(s, model, out, s.steps, s.cache if name == "loba_cache" else 0)
            runs[name].append(run_json(command, out, env))
            print(f"round {round_index + 1}/{s.rounds}: {name} done", flush=True)
    skip = {"loba": 2, "loba_cache": 2, "peer": 2}  # the cache's warm-up trajectories are counted: amortized cost
    per_step = {name: statistics.fmean(steady_mean(r["step_seconds"], skip[name]) for r in rs) for name, rs in runs.items()}
    phases = {name: {p: statistics.fmean(statistics.fmean(step[p] for step in r["phases"][skip[name]:]) for r in runs[name])
                     for p in PHASES} for name in ("loba", "loba_cache")}
    floor = statistics.fmean(r["floor_seconds"] for r in runs["loba"] + runs["loba_cache"])
    return {
        "loba_s_per_step": per_step["loba_cache"], "loba_s_per_step_no_cache": per_step["loba"],
        "peer_s_per_step": per_step["peer"], "speedup": per_step["peer"] / per_step["loba_cache"],
        "speedup_no_cache": per_step["peer"] / per_step["loba"],
        "loba_peak_mb": max(r["peak_rss_mb"] for r in runs["loba_cache"]),
        "loba_peak_mb_no_cache": max(r["peak_rss_mb"] for r in runs["loba"]),
        "peer_peak_mb": max(r["peak_rss_mb"] for r in runs["peer"]),
        # Peak minus the process's RSS once the model is loaded: what training itself adds. Whole-process peaks
        # compare library stacks too (torch 2.15 CUDA build + diffusers 0.42 vs torch 2.13 CPU + diffusers 0.20).
        "loba_training_mb": max(r["peak_rss_mb"] - r["loaded_rss_mb"] for r in runs["loba_cache"]),
        "loba_training_mb_no_cache": max(r["peak_rss_mb"] - r["loaded_rss_mb"] for r in runs["loba"]),
        "peer_training_mb": max(r["peak_rss_mb"] - r["loaded_rss_mb"] for r in runs["peer"]),
        "floor_s": floor, "floor_multiple": per_step["loba_cache"] / floor, "floor_multiple_no_cache": per_step["loba"] / floor,
        "loba_breakdown_s": phases["loba_cache"], "loba_breakdown_s_no_cache": phases["loba"],
        "loba_modules": runs["loba"][0]["modules"], "runs": runs,
    }


def parse_args() -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", type=Path, default=None, help="checkout of p1atdev/LECO (needed for the toy speed part "
                        "and the LECO rows of --effect)")
    parser.add_argument("--family", default="toy", choices=("toy", "sdxl"),
                        help="sdxl: the SDXL UNet architecture with random weights (benchmarks/sdxl_arch.py) instead")
    parser.add_argument("--resolution", type=int, default=1024, help="with --family sdxl: the training resolution")
    parser.add_argument("--variants", default="", help="with --family sdxl: comma-separated, e.g. bf16+cache,bf16+cache+gc")
    parser.add_argument("--peer-python", default=os.environ.get("LECO_PYTHON", sys.executable),
                        help="Python with LECO's pinned requirements (diffusers 0.20, transformers 4.33)")
    parser.add_argument("--peer-method", default="full", help="LECO training_method; 'full' = LOBA's all_linear")
    parser.add_argument("--peer-sd-scripts", type=Path, default=None,
                        help="with --family sdxl: a kohya-ss/sd-scripts checkout with sdxl_train_leco.py (peer rows)")
    parser.add_argument("--peer-sd-scripts-python", default=sys.executable, help="a Python with sd-scripts' requirements")
    parser.add_argument("--preset", default="all_linear")
    parser.add_argument("--model", type=Path, default=None, help="diffusers folder (default: the toy world's export)")
    parser.add_argument("--out", type=Path, required=True)
    for name, kind, default in (("steps", int, 60), ("rounds", int, 2), ("rank", int, 4), ("alpha", float, 1.0),
                                ("lr", float, 1e-4), ("denoise_steps", int, 50), ("seed", int, 0), ("threads", int, 1),
                                ("cache", int, 4), ("refresh", int, 48)):
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=default)
    parser.add_argument("--effect", action="store_true", help="also measure time to effect (slow: trains and evaluates)")
    parser.add_argument("--effect-rows", default="", help="with --effect: comma-separated among closed_form, cache, no_cache, "
                        "single_step, leco (default: all)")
    parser.add_argument("--comfy", action="store_true", help="also measure the Train Slider node's overhead")
    parser.add_argument("--skip-speed", action="store_true", help="only the parts asked for with --effect / --comfy")
    return parser, parser.parse_args()


def main() -> None:
    parser, s = parse_args()
    # The caller's PYTHONPATH is kept after the repo: a peer's extra packages (e.g. a wandb stand-in for LECO) stay found.
    env = {**os.environ, "OMP_NUM_THREADS": str(s.threads),
           "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}
    with tempfile.TemporaryDirectory(prefix="loba-bench-") as tmp:
        work = Path(tmp)
        result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {s.threads} thread(s)",
                  "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(s).items()}}
        s.out.parent.mkdir(parents=True, exist_ok=True)
        if s.family == "sdxl":
            from .sdxl_speed import sdxl_speed, sdxl_table

            result.update(sdxl_speed(s, work, env))
            s.out.write_text(json.dumps(result, indent=2))
            print(sdxl_table(result))
            return
        model = s.model or default_model()
        if not s.skip_speed and s.peer is None:
            parser.error("the speed part runs LECO: give --peer (or --skip-speed with --effect)")
        if not s.skip_speed:
            result.update(speed(s, model, work, env))
            s.out.write_text(json.dumps(result, indent=2))  # saved after every part: a later failure keeps what was measured
            print(table(result), flush=True)
        if s.comfy:
            from .comfy_overhead import comfy_overhead

            result.update(comfy_overhead(s, env))
            s.out.write_text(json.dumps(result, indent=2))
        if s.effect:
            from .effect import time_to_effect

            result.update(time_to_effect(s, model, work, env))
            s.out.write_text(json.dumps(result, indent=2))
    print(table(result))
    if "effect_rows" in result:
        from .effect import effect_table

        print(effect_table(result))


def table(r: dict) -> str:
    if "loba_s_per_step" not in r:
        return json.dumps({k: v for k, v in r.items() if not isinstance(v, (dict, list))}, indent=2)
    lines = [f"machine: {r['machine']}",
             f"{'':34}{'LOBA (cache)':>14}{'LOBA (no cache)':>17}{'LECO':>10}",
             f"{'seconds per step':34}{r['loba_s_per_step']:>14.3f}{r['loba_s_per_step_no_cache']:>17.3f}{r['peer_s_per_step']:>10.3f}",
             f"{'speedup vs LECO':34}{r['speedup']:>14.2f}{r['speedup_no_cache']:>17.2f}{1:>10.2f}",
             f"{'peak RSS MB':34}{r['loba_peak_mb']:>14.0f}{r['loba_peak_mb_no_cache']:>17.0f}{r['peer_peak_mb']:>10.0f}",
             f"{'peak minus loaded model MB':34}{r['loba_training_mb']:>14.0f}{r['loba_training_mb_no_cache']:>17.0f}"
             f"{r['peer_training_mb']:>10.0f}",
             f"{'step / floor ({:.3f} s)'.format(r['floor_s']):34}{r['floor_multiple']:>14.2f}{r['floor_multiple_no_cache']:>17.2f}"]
    for phase in PHASES:
        lines.append(f"{'  ' + phase + ' s':34}{r['loba_breakdown_s'][phase]:>14.3f}{r['loba_breakdown_s_no_cache'][phase]:>17.3f}")
    if "comfy_overhead" in r:
        lines.append(f"Train Slider node vs headless engine: {r['comfy_node_s_per_step']:.3f} vs {r['comfy_engine_s_per_step']:.3f} "
                     f"s/step, overhead {100 * r['comfy_overhead']:+.1f}%")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
