"""`python -m benchmarks.speed --family sdxl --resolution N`: LOBA on the real SDXL UNet architecture (random
weights, benchmarks/sdxl_arch.py), seconds per step and peak memory for each variant, each in its own process,
alternating the order round by round. Variants: weights dtype (bf16, fp16, fp32) joined by + with any of
cache (trajectory cache), gc (gradient checkpointing), compile (torch.compile), channels_last, single_step.

Peers: with --peer-sd-scripts DIR (and --peer-sd-scripts-python PY, a Python with its requirements) the rows
"sd-scripts" and "sd-scripts+gc" run kohya-ss/sd-scripts' sdxl_train_leco.py at the same resolution, rank,
steps and denoise steps on its own SDXL UNet with random weights (benchmarks/peer_sdscripts_xl.py), in the
same alternation; its step time is read between its scheduler steps, its peak as LOBA's (RSS, or the card's).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from .common import REPO, run_json

GPU_VARIANTS = ("bf16", "bf16+cache", "bf16+cache+gc", "bf16+gc", "bf16+cache+compile", "bf16+cache+channels_last",
                "bf16+single_step", "fp32+cache")


def sdxl_command(s, variant: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "benchmarks.sdxl_run", "--out", str(out), "--variant", variant, "--resolution",
            str(s.resolution), "--steps", str(s.steps), "--denoise-steps", str(s.denoise_steps), "--rank", str(s.rank),
            "--threads", str(s.threads)]


PEER_VARIANTS = ("sd-scripts", "sd-scripts+gc")


def peer_command(s, variant: str, out: Path) -> list[str]:
    """sd-scripts' LECO at this run's settings; its JSON gives step_seconds, peak_mb, loaded_mb, device."""
    return [sys.executable, "-m", "benchmarks.peer_sdscripts_xl", "--sd-scripts", str(s.peer_sd_scripts),
            "--python", s.peer_sd_scripts_python, "--resolution", str(s.resolution), "--rank", str(s.rank),
            "--steps", str(s.steps), "--denoising-steps", str(s.denoise_steps), "--no-allocator-trace",
            "--out", str(out), *(["--gradient-checkpointing"] if variant.endswith("+gc") else [])]


def peer_row(result: dict) -> dict:
    return {**result, "peak_mb": result["peak_bytes"] / 1e6, "loaded_mb": result["rss_after_build_bytes"] / 1e6}


def run_variant(s, variant: str, out: Path, env: dict) -> dict:
    if variant in PEER_VARIANTS:
        return peer_row(run_json(peer_command(s, variant, out), out, env))
    return run_json(sdxl_command(s, variant, out), out, env)


def sdxl_speed(s, work: Path, env: dict) -> dict:
    variants = tuple(s.variants.split(",")) if s.variants else GPU_VARIANTS
    if getattr(s, "peer_sd_scripts", None):
        variants += PEER_VARIANTS
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for round_index in range(s.rounds):
        for variant in (variants if round_index % 2 == 0 else tuple(reversed(variants))):
            out = work / f"sdxl-{variant}-{round_index}.json"
            try:
                runs[variant].append(run_variant(s, variant, out, env))
            except subprocess.CalledProcessError as error:  # e.g. out of memory: the other variants still count
                runs[variant].append({"failed": f"exit status {error.returncode}"})
            print(f"round {round_index + 1}/{s.rounds}: sdxl {variant} done", flush=True)
    # The first step pays one-off costs (the cache's first trajectories, compilation): steady steps only, when any.
    rows = {}
    for variant, results in runs.items():
        good = [r for r in results if "failed" not in r]
        if not good:
            rows[variant] = {"failed": results[0]["failed"]}
            continue
        skip = 1 if s.steps > 1 else 0
        rows[variant] = {"s_per_step": statistics.fmean(statistics.fmean(r["step_seconds"][skip:]) for r in good),
                         "first_step_s": statistics.fmean(r["step_seconds"][0] for r in good),
                         "peak_mb": max(r["peak_mb"] for r in good), "loaded_mb": max(r["loaded_mb"] for r in good),
                         "device": good[0]["device"]}
    return {"family": "sdxl", "resolution": s.resolution, "sdxl_rows": rows, "sdxl_runs": runs,
            "reduced": s.resolution < 1024, "repo": str(REPO)}


def sdxl_table(r: dict) -> str:
    note = " (REDUCED resolution: no GPU here; 1024 is the GPU figure)" if r["reduced"] else ""
    lines = [f"SDXL UNet architecture, random weights, {r['resolution']}x{r['resolution']}{note}",
             f"{'variant':34}{'s/step':>10}{'first step s':>14}{'peak MB':>10}{'loaded MB':>11}"]
    for variant, row in r["sdxl_rows"].items():
        if "failed" in row:
            lines.append(f"{variant:34}  failed: {row['failed']}")
            continue
        lines.append(f"{variant:34}{row['s_per_step']:>10.2f}{row['first_step_s']:>14.2f}{row['peak_mb']:>10.0f}"
                     f"{row['loaded_mb']:>11.0f}")
    peers = "sd-scripts' sdxl_train_leco.py (its default LoRA targets)" if any(v in r["sdxl_rows"] for v in PEER_VARIANTS) \
        else "not run (--peer-sd-scripts DIR)"
    lines.append(f"device: {next(iter(r['sdxl_rows'].values())).get('device', '?')}; LECO peers: {peers}")
    return "\n".join(lines)
