"""One LOBA training run on the SDXL architecture (random weights), in its own process: seconds per step and
peak memory for one variant (weights dtype, trajectory cache, gradient checkpointing, torch.compile,
channels_last, single-step mode). Run by `python -m benchmarks.speed --family sdxl`.

Usage: python -m benchmarks.sdxl_run --out FILE.json --variant bf16+cache+gc [--resolution 1024] [--steps N] ...
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

FLAGS = ("cache", "gc", "compile", "channels_last", "single_step")


def parse_variant(text: str) -> dict:
    """'bf16+cache+gc' -> {'dtype': 'bf16', 'cache': True, 'gc': True, ...}; unknown words are refused."""
    words = text.split("+")
    dtype = words[0]
    if dtype not in ("bf16", "fp16", "fp32") or any(w not in FLAGS for w in words[1:]):
        raise SystemExit(f"variant '{text}': start with bf16, fp16 or fp32, then any of {', '.join(FLAGS)} joined by +")
    return {"dtype": dtype, **{flag: flag in words[1:] for flag in FLAGS}}


def run_setup(args, variant: dict):
    from loba.config import TrainConfig
    from loba.prompts import AnchorPrompt, PromptPair, PromptSet

    pair = PromptPair(target="a photo of a red car", positive="a photo of a red car", unconditional="a photo of a car",
                      neutral="a photo of a car", resolutions=((args.resolution, args.resolution),), batch_size=args.batch_size)
    prompts = PromptSet((pair,), (AnchorPrompt("a photo of a blue car"),))
    config = TrainConfig().replace(max_train_steps=args.steps, network_dim=args.rank, network_alpha=1.0, learning_rate=1e-4,
                                   max_denoising_steps=args.denoise_steps, denoise_with_adapter=False,
                                   trajectory_cache=4 if variant["cache"] else 0, trajectory_refresh_every=48,
                                   gradient_checkpointing=variant["gc"], single_step=variant["single_step"], seed=0)
    return prompts, config


def build(args, variant: dict):
    from .sdxl_arch import RandomTextSDXLBackend, sdxl_unet

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[variant["dtype"]]
    unet = sdxl_unet(args.device, dtype)
    if variant["channels_last"]:
        unet = unet.to(memory_format=torch.channels_last)
    if variant["compile"]:
        unet.compile()  # in place: module names (and so the adapters' targets) stay as they are
    return RandomTextSDXLBackend(unet)


def peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--variant", default="bf16+cache")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    for name, default in (("resolution", 1024), ("steps", 8), ("rank", 16), ("denoise_steps", 25), ("batch_size", 1),
                          ("threads", 0)):
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=default)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from loba.train.run import RunRequest, run_training

    from .loba_run import step_clock

    variant = parse_variant(args.variant)
    backend = build(args, variant)
    loaded = peak_mb(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    prompts, config = run_setup(args, variant)
    clock = step_clock(argparse.Namespace(save_every=0), backend, prompts, config)
    started = time.perf_counter()
    result = run_training(RunRequest(prompts, config, backend=backend, callbacks=clock))
    steps = [b - a for a, b in zip([0.0] + clock.stamps[:-1], clock.stamps)]
    with open(args.out, "w") as handle:
        json.dump({"variant": args.variant, "step_seconds": steps, "phases": clock.phases, "peak_mb": peak_mb(args.device),
                   "loaded_mb": loaded, "modules": result.report.num_modules, "wall_s": time.perf_counter() - started,
                   "device": args.device, "resolution": args.resolution, "torch": torch.__version__}, handle)


if __name__ == "__main__":
    main()
