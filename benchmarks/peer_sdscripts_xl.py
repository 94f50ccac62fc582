"""Memory of kohya-ss/sd-scripts' SDXL LECO trainer (sdxl_train_leco.py) on SDXL's real UNet architecture.

    python -m benchmarks.peer_sdscripts_xl --sd-scripts DIR [--python PY] --resolution 1024 --rank 16
        --precision bf16 --steps 2 --denoising-steps 2 [--gradient-checkpointing] --out FILE.json

DIR is a checkout of sd-scripts with sdxl_train_leco.py (fetched, never committed); PY a Python with its
requirements (sd-scripts pins transformers 4.54, which this venv's 5.x does not satisfy). Its own main() runs:
argument checks, accelerate, its SDXL UNet (library/sdxl_original_unet.py, built in the dtype its loader
would load in, then cast by main() as always), its LoRA (networks.lora, default targets: the transformer
blocks' linears), its denoise, teachers, student, AdamW and save. Changed, only what cannot run offline: the
checkpoint is not read (the UNet gets random weights, benchmarks.sdxl_architecture.randomize), the
tokenizers are not downloaded and the text encoders not run (each prompt gets random embeddings of SDXL's
shapes, 2048-wide context and 1280 pooled, as benchmarks.memory does). On a CPU a second run under the
allocator trace (benchmarks/allocator_peak.py) gives the live-tensor peak after setup, the figure a GPU's
max_memory_allocated gives; the RSS figures come from the untraced run. On a GPU (accelerate picks it) the
peak is torch.cuda.max_memory_allocated from the end of its setup, and "step_seconds" times each step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.allocator_peak import with_allocator_figures

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}
PROMPTS = """[[prompts]]
target = "a photo of a cat"
positive = "a photo of a fluffy cat"
neutral = "a photo of a cat"
unconditional = ""
action = "enhance"
guidance_scale = 1.0
resolution = {resolution}
batch_size = 1
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sd-scripts", required=True, help="checkout of kohya-ss/sd-scripts with sdxl_train_leco.py")
    parser.add_argument("--python", default=sys.executable, help="a Python with sd-scripts' requirements")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="bf16")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--denoising-steps", type=int, default=2, help="max_denoising_steps")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--no-allocator-trace", action="store_true", help="CPU: skip the traced second run")
    parser.add_argument("--out", required=True)
    parser.add_argument("--run", default="", help="internal: train in this folder ('traced' or 'plain' in --trace)")
    parser.add_argument("--trace", type=int, default=0, help="internal: run under the allocator trace")
    return parser.parse_args(argv)


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def command_line(args, folder: Path) -> list[str]:
    """sd-scripts' own arguments for the settings LOBA's run uses (AdamW, lr 1e-4, alpha 1, constant lr)."""
    prompts = folder / "prompts.toml"
    prompts.write_text(PROMPTS.format(resolution=args.resolution))
    line = ["sdxl_train_leco.py", "--pretrained_model_name_or_path", str(folder / "random-sdxl.safetensors"),
            "--output_dir", str(folder / "out"), "--output_name", "leco", "--prompts_file", str(prompts),
            "--max_train_steps", str(args.steps), "--max_denoising_steps", str(args.denoising_steps),
            "--network_module", "networks.lora", "--network_dim", str(args.rank), "--network_alpha", "1",
            "--learning_rate", "1e-4", "--optimizer_type", "AdamW", "--lr_scheduler", "constant",
            "--mixed_precision", PRECISIONS[args.precision], "--save_precision", "float", "--seed", "0", "--sdpa"]
    return line + (["--gradient_checkpointing"] if args.gradient_checkpointing else [])


def patch_sd_scripts(args, seen: dict, trace) -> None:
    """The UNet built with random weights instead of read, no tokenizer download, random prompt embeddings."""
    import sdxl_train_leco
    import torch
    from library import leco_train_util, sdxl_original_unet, sdxl_train_util, strategy_sdxl

    from benchmarks.sdxl_architecture import CONTEXT_DIM, POOLED_DIM, TOKENS, randomize

    def load_target_model(run_args, accelerator, model_version, weight_dtype):
        dtype = sdxl_train_util.match_mixed_precision(run_args, weight_dtype) or torch.float32  # as its loader
        with torch.device("meta"):
            unet = sdxl_original_unet.SdxlUNet2DConditionModel()
        unet = unet.to_empty(device="cpu").to(dtype)
        randomize(unet)
        seen["unet"] = unet
        return False, torch.nn.Identity(), torch.nn.Identity(), None, unet, None, None

    class OfflineTokenizeStrategy:  # main() builds it right after casting the UNet: the end of its setup
        def __init__(self, *_):
            unet = seen["unet"]
            seen["weights"] = sum(t.numel() * t.element_size() for t in [*unet.parameters(), *unet.buffers()])
            seen["loaded_rss"] = rss_bytes()
            if torch.cuda.is_available():  # the card's peak counts from here, as LOBA's rows count theirs
                torch.cuda.reset_peak_memory_stats()
            if trace is not None:
                trace.mark("loaded")

        def tokenize(self, prompt):
            return prompt

    generator = torch.Generator().manual_seed(0)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.precision]

    def encode_prompt_sdxl(tokenize_strategy, text_encoding_strategy, text_encoders, prompt):
        return leco_train_util.PromptEmbedsXL(torch.randn(1, TOKENS, CONTEXT_DIM, generator=generator).to(dtype),
                                              torch.randn(1, POOLED_DIM, generator=generator).to(dtype))

    sdxl_train_util.load_target_model = load_target_model
    strategy_sdxl.SdxlTokenizeStrategy = OfflineTokenizeStrategy
    sdxl_train_leco.encode_prompt_sdxl = encode_prompt_sdxl
    watch_training(seen)



def watch_training(seen: dict) -> None:
    """Count the adapter's parameters and time each step of sd-scripts' loop, through its own train_util calls."""
    from library import train_util

    get_optimizer = train_util.get_optimizer

    def counted_optimizer(run_args, trainable_params):
        seen["adapter_parameters"] = sum(p.numel() for group in trainable_params for p in group["params"])
        return get_optimizer(run_args, trainable_params)

    train_util.get_optimizer = counted_optimizer
    get_scheduler, init_trackers = train_util.get_scheduler_fix, train_util.init_trackers

    def timed_scheduler(*a, **k):  # its loop calls lr_scheduler.step() once per step: the step's end
        scheduler = get_scheduler(*a, **k)
        step = scheduler.step

        def timed_step(*sa, **sk):
            seen["step_ends"].append(time.perf_counter())
            return step(*sa, **sk)
        scheduler.step = timed_step
        return scheduler

    def timed_init_trackers(*a, **k):  # called right before its training loop
        seen["step_ends"] = [time.perf_counter()]
        return init_trackers(*a, **k)

    train_util.get_scheduler_fix, train_util.init_trackers = timed_scheduler, timed_init_trackers


def run_sd_scripts(args) -> None:
    sys.path[:0] = [str(Path(args.sd_scripts).resolve()), str(REPO)]
    from benchmarks.allocator_peak import AllocatorTrace, figures_after_mark

    folder, seen, baseline = Path(args.run), {}, rss_bytes()
    sys.argv = command_line(args, folder)
    started = time.perf_counter()
    with (AllocatorTrace() if args.trace else contextlib.nullcontext()) as trace:
        patch_sd_scripts(args, seen, trace)
        import sdxl_train_leco

        sdxl_train_leco.main()
    import torch

    cuda = torch.cuda.is_available()
    peak, weights = (torch.cuda.max_memory_allocated() if cuda else rss_bytes()), seen["weights"]
    result = {"peer": "kohya-ss/sd-scripts sdxl_train_leco", "resolution": args.resolution, "precision": args.precision,
              "rank": args.rank, "steps": args.steps, "denoising_steps": args.denoising_steps,
              "gradient_checkpointing": args.gradient_checkpointing, "weights_bytes": weights, "peak_bytes": peak,
              "peak_over_weights_bytes": peak - weights, "rss_before_build_bytes": baseline,
              "rss_after_build_bytes": seen["loaded_rss"], "peak_over_loaded_bytes": peak - seen["loaded_rss"],
              "seconds": time.perf_counter() - started, "device": "cuda" if cuda else "cpu",
              "adapter_parameters": seen["adapter_parameters"],
              "step_seconds": [b - a for a, b in zip(seen["step_ends"], seen["step_ends"][1:])]}
    if cuda:
        result.update(allocator_peak_bytes=peak, allocator_peak_over_weights_bytes=peak - weights)
    elif trace is not None:
        result.update(figures_after_mark(trace.summary(), "loaded", weights))
    (folder / "result.json").write_text(json.dumps(result, indent=1))


def run_once(args, trace: bool) -> dict:
    common = ["--sd-scripts", str(Path(args.sd_scripts).resolve()), "--resolution", str(args.resolution),
              "--rank", str(args.rank), "--precision", args.precision, "--steps", str(args.steps),
              "--denoising-steps", str(args.denoising_steps), "--out", args.out]
    common += ["--gradient-checkpointing"] if args.gradient_checkpointing else []
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([args.python, "-m", "benchmarks.peer_sdscripts_xl", *common, "--run", folder,
                               "--trace", str(int(trace))], cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
        return json.loads((Path(folder) / "result.json").read_text())


def measure(args) -> dict:
    """The untraced run's RSS figures with, on a CPU, the traced run's allocator figures."""
    result = run_once(args, trace=False)
    if "error" in result or args.no_allocator_trace or result["device"] != "cpu":
        return result
    return with_allocator_figures(result, run_once(args, trace=True))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.run:
        return run_sd_scripts(args)
    result = measure(args)
    Path(args.out).write_text(json.dumps(result, indent=1))
    if "error" in result:
        raise SystemExit(f"sd-scripts peer failed: {result['error']}")
    print(f"sd-scripts LECO ({'ckpt' if args.gradient_checkpointing else 'no ckpt'}) {args.resolution}: weights "
          f"{result['weights_bytes'] / 1e9:.2f} GB, peak {result['peak_bytes'] / 1e9:.2f} GB, peak-weights "
          f"{result['peak_over_weights_bytes'] / 1e9:.2f} GB, allocator peak-weights "
          f"{result.get('allocator_peak_over_weights_bytes', float('nan')) / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
