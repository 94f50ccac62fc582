"""Memory of SDXL slider training through the ComfyUI and diffusers backends, side by side.

python -m benchmarks.memory --family sdxl --resolution 1024 --rank 16 --precision bf16 [--gradient-checkpointing]
                            --out FILE.json [--size full|small|tiny] [--steps 2] [--denoising-steps 2]

Each (backend, checkpointing) run is its own subprocess (benchmarks/memory_run.py) so peaks never mix; with
--gradient-checkpointing the same runs without it are made too (--no-baseline skips them, --baseline-resolution
runs them smaller where the full one does not fit the machine). Written per run: weights_bytes (the UNet's),
peak_bytes (CUDA: max_memory_allocated; CPU: peak RSS, which includes the interpreter and libraries),
peak_over_weights_bytes, whole_run_bytes = peak + the real SDXL text encoders' weights in the run's dtype
(CLIP-L + OpenCLIP-bigG, counted from their real configs on the meta device; the VAE is not loaded in
training), and allocator_peak_bytes (CPU: the bytes live tensors held at the peak, from torch.profiler's
allocation events, benchmarks/allocator_peak.py: what max_memory_allocated counts on a card; CUDA: the same as
peak_bytes) with allocator_peak_over_weights_bytes, allocator_whole_run_bytes and the phase of the peak. On a
CPU each setting runs twice, untraced for the RSS figures and traced for the allocator's (the profiler's own
records would inflate the RSS). --peer DIR adds p1atdev/LECO's SDXL trainer on the same random UNet (benchmarks/peer_leco_xl.py).
Targets (checkpointing and the trajectory cache on): peak over weights <= 4 GB, whole run <= 12 GB, checked
on both the RSS figures and the allocator's (allocator_whole_run_bytes = allocator peak + text encoders).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.allocator_peak import with_allocator_figures

REPO = Path(__file__).resolve().parents[1]
GB = 1e9
TARGETS = {"peak_over_weights_bytes": 4 * GB, "whole_run_bytes": 12 * GB,
           "allocator_peak_over_weights_bytes": 4 * GB, "allocator_whole_run_bytes": 12 * GB}
# Flux (issue 16): training at 1024 fits a 24 GB card; the text encoders are off the card while it trains.
FLUX_TARGETS = {"peak_bytes": 24 * GB}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=("sdxl", "flux"), default="sdxl",
                        help="flux: FLUX.1-dev through the diffusers backend only (benchmarks/memory_run_flux.py)")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--precision", choices=("bf16", "fp16", "fp32"), default="bf16")
    parser.add_argument("--fp8-base", action="store_true",
                        help="the frozen base stored in fp8, computed in --precision: diffusers through run files' fp8_base, "
                        "ComfyUI as its loader's weight_dtype fp8_e4m3fn")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--no-baseline", action="store_true", help="with --gradient-checkpointing: skip the runs without it")
    parser.add_argument("--baseline-resolution", type=int, default=0, help="resolution of the runs without checkpointing")
    parser.add_argument("--size", choices=("full", "wide", "small", "tiny"), default="full",
                        help="full = the family's real widths and depths; wide (flux only) = the real width, 1 + 2 blocks")
    parser.add_argument("--text-tokens", type=int, default=512, help="flux: T5 tokens per prompt (FluxPipeline's 512)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--denoising-steps", type=int, default=2, help="max_denoising_steps (2: one CFG denoise step)")
    parser.add_argument("--cache", type=int, default=1, help="trajectory_cache (0 = off)")
    parser.add_argument("--teacher-batch-size", type=int, default=0,
                        help="SamplingConfig.teacher_batch_size: rows per no-grad forward (teachers, CFG denoise); 0 = one batch")
    parser.add_argument("--backends", default="comfy,diffusers")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--comfy-attention", choices=("pytorch", "default"), default="pytorch",
                        help="ComfyUI's attention: pytorch (its choice on NVIDIA GPUs) or default (its CPU-mode sub-quadratic)")
    parser.add_argument("--peer", default="", help="checkout of p1atdev/LECO: its SDXL trainer at the same settings "
                        "(benchmarks/peer_leco_xl.py; no checkpointing, which LECO lacks), printed beside LOBA's")
    parser.add_argument("--peer-sd-scripts", default="", help="checkout of kohya-ss/sd-scripts with sdxl_train_leco.py: "
                        "its LECO trainer at the same settings, checkpointing as LOBA's run (benchmarks/peer_sdscripts_xl.py)")
    parser.add_argument("--peer-sd-scripts-python", default=sys.executable,
                        help="a Python with sd-scripts' requirements (it pins transformers 4.x)")
    parser.add_argument("--no-allocator-trace", action="store_true",
                        help="CPU: skip the second, traced run of each setting (no allocator figures)")
    parser.add_argument("--out", required=True)
    return parser.parse_args(argv)


def runs(args) -> list[dict]:
    """The (backend, checkpointing, resolution) runs to make, checkpointed ones first."""
    settings = [(True, args.resolution)] if args.gradient_checkpointing else []
    if not (args.gradient_checkpointing and args.no_baseline):
        settings.append((False, args.baseline_resolution or args.resolution))
    return [{"backend": b, "gradient_checkpointing": ck, "resolution": res}
            for ck, res in settings for b in args.backends.split(",")]


def run_one(args, run: dict, folder: Path) -> dict:
    """One run for its peak RSS and, on a CPU, the same run again under the allocator trace: the profiler's
    records take memory of their own, so the RSS figures never come from a traced process."""
    out = folder / f"{run['backend']}-{int(run['gradient_checkpointing'])}-{run['resolution']}.json"
    if args.family == "flux":
        return run_flux(args, run, out)
    result = run_memory(args, run, out, trace=False)
    if "error" in result or result["device"] != "cpu" or args.no_allocator_trace:
        return result
    return with_allocator_figures(result, run_memory(args, run, out.with_suffix(".traced.json"), trace=True))


def run_memory(args, run: dict, out: Path, trace: bool) -> dict:
    command = [sys.executable, "-m", "benchmarks.memory_run", "--backend", run["backend"], "--size", args.size,
               "--resolution", str(run["resolution"]), "--rank", str(args.rank), "--precision", args.precision,
               "--gradient-checkpointing", str(int(run["gradient_checkpointing"])), "--steps", str(args.steps),
               "--denoising-steps", str(args.denoising_steps), "--cache", str(args.cache), "--device", args.device,
               "--comfy-attention", args.comfy_attention, "--teacher-batch-size", str(args.teacher_batch_size),
               "--allocator-trace", str(int(trace)), "--fp8-base", str(int(args.fp8_base)), "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        return {**run, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(out.read_text())


def run_flux(args, run: dict, out: Path) -> dict:
    result = run_flux_once(args, run, out, trace=False)
    if "error" in result or result["device"] != "cpu" or args.no_allocator_trace:
        return result
    return with_allocator_figures(result, run_flux_once(args, run, out.with_suffix(".traced.json"), trace=True))


def run_flux_once(args, run: dict, out: Path, trace: bool) -> dict:
    command = [sys.executable, "-m", "benchmarks.memory_run_flux", "--size", args.size, "--resolution", str(run["resolution"]),
               "--rank", str(args.rank), "--precision", args.precision,
               "--gradient-checkpointing", str(int(run["gradient_checkpointing"])), "--steps", str(args.steps),
               "--denoising-steps", str(args.denoising_steps), "--cache", str(args.cache), "--device", args.device,
               "--teacher-batch-size", str(args.teacher_batch_size), "--text-tokens", str(args.text_tokens),
               "--fp8-base", str(int(args.fp8_base)), "--allocator-trace", str(int(trace)), "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        return {**run, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(out.read_text())


def run_peer(args, folder: Path) -> dict:
    out = folder / "leco.json"
    command = [sys.executable, "-m", "benchmarks.peer_leco_xl", "--leco", args.peer, "--resolution", str(args.resolution),
               "--rank", str(args.rank), "--precision", args.precision, "--size", args.size, "--steps", str(args.steps),
               "--denoising-steps", str(args.denoising_steps), "--out", str(out)]
    command += ["--no-allocator-trace"] if args.no_allocator_trace else []
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    row = {"backend": "LECO", "gradient_checkpointing": False, "resolution": args.resolution}
    if done.returncode != 0:
        return {**row, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return {**json.loads(out.read_text()), **row}


def run_sd_scripts_peer(args, folder: Path) -> dict:
    out = folder / "sd-scripts.json"
    command = [sys.executable, "-m", "benchmarks.peer_sdscripts_xl", "--sd-scripts", args.peer_sd_scripts,
               "--python", args.peer_sd_scripts_python, "--resolution", str(args.resolution), "--rank", str(args.rank),
               "--precision", args.precision, "--steps", str(args.steps), "--denoising-steps", str(args.denoising_steps),
               "--out", str(out)]
    command += ["--gradient-checkpointing"] if args.gradient_checkpointing else []
    command += ["--no-allocator-trace"] if args.no_allocator_trace else []
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    row = {"backend": "sd-scripts", "gradient_checkpointing": args.gradient_checkpointing, "resolution": args.resolution,
           "trajectory_cache": 0}
    if not out.exists():
        return {**row, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return {**json.loads(out.read_text()), **row}


def with_totals(result: dict, encoder_bytes: int, targets: dict = TARGETS) -> dict:
    if "error" in result:
        return result
    result = {**result, "text_encoders_bytes": encoder_bytes, "whole_run_bytes": result["peak_bytes"] + encoder_bytes,
              "peak_over_loaded_bytes": result["peak_bytes"] - result["rss_after_build_bytes"]}
    if result.get("allocator_peak_bytes") is not None:
        result["allocator_whole_run_bytes"] = result["allocator_peak_bytes"] + encoder_bytes
    if result["gradient_checkpointing"] and result["trajectory_cache"]:
        result["targets_met"] = {key: result[key] <= limit for key, limit in targets.items() if key in result}
    return result


def table(results: list[dict]) -> str:
    head = (f"{'backend':<10}{'ckpt':<6}{'res':>6}{'weights GB':>12}{'peak GB':>10}{'peak-weights':>14}"
            f"{'peak-loaded':>13}{'whole run GB':>14}{'alloc-weights':>15}{'alloc whole':>13}{'s':>8}")
    lines = [head]
    for r in results:
        if "error" in r:
            lines.append(f"{r['backend']:<10}{str(r['gradient_checkpointing']):<6}{r['resolution']:>6}  failed: {r['error']}")
            continue
        lines.append(f"{r['backend']:<10}{str(r['gradient_checkpointing']):<6}{r['resolution']:>6}"
                     f"{r['weights_bytes'] / GB:>12.2f}{r['peak_bytes'] / GB:>10.2f}{r['peak_over_weights_bytes'] / GB:>14.2f}"
                     f"{r['peak_over_loaded_bytes'] / GB:>13.2f}{r['whole_run_bytes'] / GB:>14.2f}"
                     f"{gigabytes(r.get('allocator_peak_over_weights_bytes')):>15}{gigabytes(r.get('allocator_whole_run_bytes')):>13}"
                     f"{r['seconds']:>8.0f}")
    return "\n".join(lines)


def gigabytes(value) -> str:
    return "-" if value is None else f"{value / GB:.2f}"


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.family == "flux" and args.backends == "comfy,diffusers":
        args.backends = "diffusers"  # ComfyUI's Flux path is not measured by this benchmark yet
    if args.size == "wide" and args.family != "flux":
        raise SystemExit("--size wide is for --family flux")
    sys.path.insert(0, str(REPO))
    import torch

    if args.family == "flux":
        from benchmarks.flux_architecture import text_encoder_bytes
    else:
        from benchmarks.sdxl_architecture import text_encoder_bytes

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.precision]
    encoders = text_encoder_bytes(dtype) if args.size == "full" else 0
    with tempfile.TemporaryDirectory() as folder:
        targets = FLUX_TARGETS if args.family == "flux" else TARGETS
        results = [with_totals(run_one(args, run, Path(folder)), encoders, targets) for run in runs(args)]
        if args.peer:
            results.append(with_totals(run_peer(args, Path(folder)), encoders))
        if args.peer_sd_scripts:
            results.append(with_totals(run_sd_scripts_peer(args, Path(folder)), encoders))
    report = {"family": args.family, "size": args.size, "rank": args.rank, "precision": args.precision,
              "steps": args.steps, "denoising_steps": args.denoising_steps, "text_encoders_bytes": encoders,
              "teacher_batch_size": args.teacher_batch_size, "targets_bytes": targets, "runs": results, "table": table(results)}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(report["table"])


if __name__ == "__main__":
    main()
