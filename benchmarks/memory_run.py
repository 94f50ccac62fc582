"""Subprocess of benchmarks.memory: one backend, one setting, its memory peaks written as JSON.

Builds SDXL's UNet (random weights, real config; benchmarks/sdxl_architecture.py) in the run's dtype,
for ComfyUI the way its loader does (comfy.supported_models.SDXL -> get_model under inference mode, a
ModelPatcher, training under inference mode as a node runs) or as a diffusers UNet2DConditionModel,
then trains `--steps` steps through the engine. The text encoders are not run: the prompts' embeddings
are random tensors of SDXL's shapes (2048-wide context, 1280 pooled), and the real encoders' weight
bytes are added to the whole-run figure by the parent. One process per run, so peaks never mix.

CPU: peak RSS (getrusage; includes the interpreter and libraries, an upper bound for what training
adds) and the allocator's peak (benchmarks/allocator_peak.py: the bytes live tensors hold, counted from
torch.profiler's allocation events over the build and the training; the figure a GPU's
max_memory_allocated gives), with the step's phase it happened in. CUDA: torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import sys
import time
import types
from pathlib import Path

import torch

from benchmarks.allocator_peak import AllocatorTrace

REPO = Path(__file__).resolve().parents[1]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
PACK = "loba_memory_pack"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("comfy", "diffusers"), required=True)
    parser.add_argument("--size", choices=("full", "small", "tiny"), default="full")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--precision", choices=tuple(DTYPES), default="bf16")
    parser.add_argument("--gradient-checkpointing", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--denoising-steps", type=int, default=2)
    parser.add_argument("--cache", type=int, default=1, help="trajectory_cache (0 = off)")
    parser.add_argument("--teacher-batch-size", type=int, default=0, help="SamplingConfig.teacher_batch_size (0 = one batch)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH", str(Path.home() / "comfy" / "ComfyUI")))
    parser.add_argument("--comfy-attention", choices=("pytorch", "default"), default="pytorch",
                        help="ComfyUI's attention: pytorch (its choice on NVIDIA) or default (its CPU-mode choice)")
    parser.add_argument("--allocator-trace", type=int, default=1,
                        help="CPU: count live tensor bytes with torch.profiler (1; its records add to the RSS) "
                        "or only read peak RSS (0)")
    parser.add_argument("--fp8-base", type=int, default=0, help="the frozen base stored in fp8: diffusers through "
                        "loba/models/fp8_base.py, ComfyUI as its loader's weight_dtype fp8_e4m3fn (manual cast)")
    parser.add_argument("--out", required=True)
    return parser.parse_args(argv)


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _import_pack():
    """The node pack under a package name, as ComfyUI imports it (nodes/ imports the engine relatively)."""
    spec = importlib.util.spec_from_file_location(PACK, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)
    return module


def comfy_backend(args, device: torch.device, dtype: torch.dtype):
    sys.path.insert(0, args.comfyui)
    import comfy.cli_args

    comfy.cli_args.args.cpu = device.type == "cpu"
    # ComfyUI picks PyTorch's attention on NVIDIA GPUs (the cards the targets are about) but sub-quadratic
    # chunked attention in CPU mode, which keeps its chunks for backward: measure what GPU users run.
    comfy.cli_args.args.use_pytorch_cross_attention = args.comfy_attention == "pytorch"
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    from benchmarks.sdxl_architecture import comfy_unet_config, randomize

    _import_pack()
    backend_module = importlib.import_module(f"{PACK}.nodes.comfy_backend")
    mm = comfy.model_management
    with torch.inference_mode():
        config = comfy.supported_models.SDXL(comfy_unet_config(args.size, dtype))
        if args.fp8_base:  # UNETLoader's weight_dtype fp8_e4m3fn: fp8 weights, manual cast to the compute dtype
            config.set_inference_dtype(torch.float8_e4m3fn, dtype)
        else:
            config.set_inference_dtype(dtype, None)
        model = config.get_model({}, device=device)
        randomize(model.diffusion_model)
        patcher = comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=mm.unet_offload_device())
        backend = backend_module.ComfyBackend(patcher, clip=None)
    engine = importlib.import_module(f"{PACK}.loba")
    return backend, engine, model.diffusion_model


def diffusers_backend(args, device: torch.device, dtype: torch.dtype):
    from diffusers import UNet2DConditionModel

    import loba
    from benchmarks.sdxl_architecture import alphas_cumprod, diffusers_unet_config, randomize
    from loba.models.diffusers_backend import DiffusersBackend

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in the run's dtype: no float32 copy on the way
    try:
        unet = UNet2DConditionModel(**diffusers_unet_config(args.size))
    finally:
        torch.set_default_dtype(previous)
    randomize(unet)
    unet.to(device).eval()
    # The encoders are not run (see the module docstring); the backend only reads their layer counts (clip skip).
    placeholders = [encoder_placeholder(layers) for layers in (12, 32)]  # CLIP-L, OpenCLIP bigG
    backend = DiffusersBackend(unet, placeholders, [None, None], alphas_cumprod(), "epsilon", family="sdxl")
    return backend, loba, unet


def encoder_placeholder(num_hidden_layers: int) -> torch.nn.Module:
    placeholder = torch.nn.Identity()
    placeholder.config = types.SimpleNamespace(num_hidden_layers=num_hidden_layers)
    return placeholder


def fake_embeddings(engine, device: torch.device, dtype: torch.dtype):
    from benchmarks.sdxl_architecture import CONTEXT_DIM, POOLED_DIM, TOKENS

    Conditioning = importlib.import_module(f"{engine.__name__}.models.backend").Conditioning
    generator = torch.Generator().manual_seed(0)

    def encode_prompts(prompts):
        return {text: Conditioning(torch.randn(1, TOKENS, CONTEXT_DIM, generator=generator).to(device, dtype),
                                   torch.randn(1, POOLED_DIM, generator=generator).to(device, dtype))
                for text in dict.fromkeys(prompts)}
    return encode_prompts


def train_once(args, backend, engine) -> dict:
    config_module = importlib.import_module(f"{engine.__name__}.config")
    prompts_module = importlib.import_module(f"{engine.__name__}.prompts")
    loop = importlib.import_module(f"{engine.__name__}.train.loop")
    side = args.resolution
    prompts = prompts_module.PromptSet(entries=(prompts_module.PromptPair(
        target="a photo of a cat", positive="a photo of a fluffy cat", neutral="a photo of a cat", unconditional="",
        action="enhance", resolutions=((side, side),), batch_size=1),))
    config = config_module.TrainConfig().replace(
        max_train_steps=args.steps, max_denoising_steps=args.denoising_steps, network_dim=args.rank, network_alpha=1.0,
        learning_rate=1e-4, seed=0, mixed_precision="no", gradient_checkpointing=bool(args.gradient_checkpointing),
        trajectory_cache=args.cache, trajectory_refresh_every=1000, teacher_batch_size=args.teacher_batch_size)
    with torch.inference_mode():  # as ComfyUI runs a node (the engine leaves it for the training itself)
        result = loop.train(backend, prompts, config)
    return {"steps_done": result.steps_done, "losses": [float(v) for v in result.losses],
            "adapter_parameters": result.network.num_parameters()}


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    dtype = DTYPES[args.precision]

    def build():
        backend, engine, unet = (comfy_backend if args.backend == "comfy" else diffusers_backend)(args, device, dtype)
        backend.encode_prompts = fake_embeddings(engine, device, dtype)
        if args.fp8_base:
            store_in_fp8(args, engine, backend)
        return backend, engine, unet

    figures = measure(args, device, build)
    Path(args.out).write_text(json.dumps({
        "backend": args.backend, "device": device.type, "size": args.size, "resolution": args.resolution,
        "precision": args.precision, "gradient_checkpointing": bool(args.gradient_checkpointing), "steps": args.steps,
        "denoising_steps": args.denoising_steps, "trajectory_cache": args.cache, "rank": args.rank,
        "teacher_batch_size": args.teacher_batch_size, "fp8_base": bool(args.fp8_base), **figures}, indent=1))


def measure(args, device: torch.device, build) -> dict:
    """Build (backend, engine, denoiser) and train: the memory figures of both, the allocator's under its trace
    on a CPU (build included, so the weights count), and the seconds (training alone in seconds_training)."""
    baseline, started = rss_bytes(), time.perf_counter()
    tracing = device.type == "cpu" and bool(args.allocator_trace)
    with (AllocatorTrace() if tracing else contextlib.nullcontext()) as trace:
        with AllocatorTrace.range("build"):
            backend, engine, denoiser = build()
        weights = sum(t.numel() * t.element_size() for t in [*denoiser.parameters(), *denoiser.buffers()])
        loaded = rss_bytes()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        if tracing:
            label_phases(engine)
        built = time.perf_counter()
        with AllocatorTrace.range("training"):
            trained = train_once(args, backend, engine)
        training_seconds = time.perf_counter() - built
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else rss_bytes()
    allocator = allocator_figures(trace.summary(), weights) if tracing else {}
    if device.type == "cuda":
        allocator = {"allocator_peak_bytes": peak, "allocator_peak_over_weights_bytes": peak - weights}
    return {"weights_bytes": weights, "parameters": sum(p.numel() for p in denoiser.parameters()), "peak_bytes": peak,
            "peak_over_weights_bytes": peak - weights, "rss_before_build_bytes": baseline, "rss_after_build_bytes": loaded,
            **allocator, "seconds": time.perf_counter() - started, "seconds_training": training_seconds, **trained}


def store_in_fp8(args, engine, backend) -> None:
    """diffusers: LOBA's fp8_base; ComfyUI: its loader already built the weights in fp8 (comfy_backend)."""
    if args.backend == "diffusers":
        importlib.import_module(f"{engine.__name__}.models.fp8_base").store_base_in_fp8(backend)


def label_phases(engine) -> None:
    """Every phase of the step (denoise, teachers, student_forward, backward, optimizer) becomes a traced range."""
    phases = importlib.import_module(f"{engine.__name__}.train.phases")
    original = phases.PhaseClock.__call__

    @contextlib.contextmanager
    def labelled(clock, name):
        with AllocatorTrace.range(name), original(clock, name):
            yield
    phases.PhaseClock.__call__ = labelled


def allocator_figures(summary: dict, weights: int) -> dict:
    """The training's allocator peak (tensors built before it, the weights among them, included), per phase too."""
    peaks = summary["range_peaks"]
    return {"allocator_peak_bytes": peaks["training"], "allocator_peak_over_weights_bytes": peaks["training"] - weights,
            "allocator_loaded_bytes": summary["range_start_bytes"]["training"], "allocator_peak_in": summary["peak_in"],
            "allocator_phase_peaks_bytes": {name: value for name, value in peaks.items()
                                            if name not in ("build", "training")}}


if __name__ == "__main__":
    main()
