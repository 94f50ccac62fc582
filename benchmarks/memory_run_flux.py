"""Subprocess of `benchmarks.memory --family flux`: Flux slider training through the diffusers backend, its peaks as JSON.

Builds FLUX.1-dev's FluxTransformer2DModel (random weights, real config at --size full; benchmarks/flux_architecture.py)
in the run's dtype (bf16: the frozen base; the adapters keep float32 masters, loba/adapters/lora.py), wraps it in
FluxBackend (packed 2x2 latents, guidance 3.5, the resolution's shifted sigmas) and trains `--steps` steps through the
engine. The text encoders are not run: the prompts' embeddings are random tensors of Flux's shapes (T5 context
[1, --text-tokens, 4096], CLIP pooled [1, 768]); their real weight bytes are added to the whole-run figure by the
parent. CPU: peak RSS and, traced, the allocator's peak; CUDA: torch.cuda.max_memory_allocated. ComfyUI's Flux path is not measured here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks.memory_run import DTYPES, measure


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("diffusers",), default="diffusers")
    parser.add_argument("--size", choices=("full", "wide", "small", "tiny"), default="full")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--precision", choices=tuple(DTYPES), default="bf16")
    parser.add_argument("--gradient-checkpointing", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--denoising-steps", type=int, default=2)
    parser.add_argument("--cache", type=int, default=1)
    parser.add_argument("--teacher-batch-size", type=int, default=0)
    parser.add_argument("--text-tokens", type=int, default=512, help="T5 tokens per prompt (FluxPipeline: 512 on dev)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fp8-base", type=int, default=0, help="the frozen base stored in fp8 (loba/models/fp8_base.py)")
    parser.add_argument("--allocator-trace", type=int, default=1, help="CPU: count live tensor bytes (benchmarks/allocator_peak.py)")
    parser.add_argument("--out", required=True)
    return parser.parse_args(argv)


def flux_backend(args, device: torch.device, dtype: torch.dtype):
    from diffusers import FluxTransformer2DModel

    import loba
    from benchmarks.flux_architecture import CONTEXT_DIM, POOLED_DIM, transformer_config
    from benchmarks.sdxl_architecture import randomize
    from loba.models.backend import Conditioning
    from loba.models.flux_backend import FluxBackend
    from loba.models.flux_schedule import resolution_sigmas

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in the run's dtype: no float32 copy on the way
    try:
        transformer = FluxTransformer2DModel(**transformer_config(args.size))
    finally:
        torch.set_default_dtype(previous)
    randomize(transformer)
    transformer.to(device).eval()
    generator = torch.Generator().manual_seed(0)

    def encode_prompts(prompts):
        return {text: Conditioning(torch.randn(1, args.text_tokens, CONTEXT_DIM, generator=generator).to(device, dtype),
                                   torch.randn(1, POOLED_DIM, generator=generator).to(device, dtype))
                for text in dict.fromkeys(prompts)}

    sigmas = resolution_sigmas(args.resolution, args.resolution)
    backend = FluxBackend(transformer, encode_prompts, sigmas, guidance=3.5, native_resolution=args.resolution)
    return backend, loba, transformer


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    dtype = DTYPES[args.precision]

    def build():
        backend, engine, transformer = flux_backend(args, device, dtype)
        if args.fp8_base:
            from loba.models.fp8_base import store_base_in_fp8

            store_base_in_fp8(backend)
        return backend, engine, transformer

    figures = measure(args, device, build)
    Path(args.out).write_text(json.dumps({
        "backend": args.backend, "family": "flux", "device": device.type, "size": args.size, "resolution": args.resolution,
        "precision": args.precision, "gradient_checkpointing": bool(args.gradient_checkpointing), "steps": args.steps,
        "denoising_steps": args.denoising_steps, "trajectory_cache": args.cache, "rank": args.rank,
        "teacher_batch_size": args.teacher_batch_size, "text_tokens": args.text_tokens, "fp8_base": bool(args.fp8_base),
        **figures, "seconds_per_step": figures["seconds_training"] / max(args.steps, 1)}, indent=1))


if __name__ == "__main__":
    main()
