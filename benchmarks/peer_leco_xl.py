"""Memory of p1atdev/LECO's SDXL trainer (train_lora_xl.train) on SDXL's real UNet architecture, random weights.

    python -m benchmarks.peer_leco_xl --leco DIR --resolution 512 --rank 16 --precision bf16 --out FILE.json

DIR is a checkout of p1atdev/LECO (fetched, never committed). Two subprocesses: the first builds the same
random SDXL UNet as benchmarks.memory (sdxl_architecture: real config, randomize(seed 0)) and saves it as a
diffusers folder in a temporary directory; the second (`--run`) trains LECO's own loop on it and writes its
peak RSS. Changed in LECO, only what cannot run here: the device (its hard-coded cuda:0 -> CPU, flush a
no-op), wandb (not installed: an empty module, LECO only calls it with use_wandb), a bug of LECO's (it
passes the (text, pooled) tuple as one argument to PromptEmbedsXL, which then fails), and model loading: the
UNet is read from the folder, and the text encoders are not run: each prompt gets random embeddings of
SDXL's shapes (2048-wide context, 1280 pooled), as benchmarks.memory does. On a CPU a second, traced run
gives the allocator's peak after the UNet is loaded (benchmarks/allocator_peak.py). LECO's loop, denoise (CFG 3,
adapter on), teachers (three batch-2 forwards: uncond + prompt each), student (batch 2, with grad; LECO
has no gradient checkpointing) and LoRA are untouched. Runs under this venv's diffusers (LECO pins 0.20).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import json
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

from benchmarks.allocator_peak import with_allocator_figures

REPO = Path(__file__).resolve().parents[1]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
PROMPT = {"target": "a photo of a cat", "positive": "a photo of a fluffy cat", "neutral": "a photo of a cat",
          "unconditional": "", "action": "enhance", "guidance_scale": 1.0, "batch_size": 1}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leco", required=True, help="checkout of p1atdev/LECO")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--precision", choices=tuple(DTYPES), default="bf16")
    parser.add_argument("--size", choices=("full", "small", "tiny"), default="full")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--denoising-steps", type=int, default=2, help="max_denoising_steps (2: one CFG denoise step)")
    parser.add_argument("--method", default="full", help="LECO training_method; 'full' = LOBA's all_linear")
    parser.add_argument("--out", required=True)
    parser.add_argument("--save", default="", help="internal: build the random UNet and save it to this folder")
    parser.add_argument("--run", default="", help="internal: train LECO on the UNet folder given")
    parser.add_argument("--trace", type=int, default=0, help="internal: train under the allocator trace")
    parser.add_argument("--no-allocator-trace", action="store_true", help="CPU: skip the traced second run")
    return parser.parse_args(argv)


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def save_unet(args) -> None:
    from diffusers import UNet2DConditionModel

    from benchmarks.sdxl_architecture import diffusers_unet_config, randomize

    torch.set_default_dtype(DTYPES[args.precision])
    unet = UNet2DConditionModel(**diffusers_unet_config(args.size))
    randomize(unet)
    unet.save_pretrained(Path(args.save) / "unet")


def patch_leco(args, loaded: dict, trace=None) -> None:
    """CPU instead of cuda:0, no wandb, the UNet from the folder and random prompt embeddings."""
    wandb = types.ModuleType("wandb")
    wandb.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    sys.modules.setdefault("wandb", wandb)
    sys.path.insert(0, args.leco)
    import model_util
    import train_lora_xl
    import train_util
    from diffusers import UNet2DConditionModel

    from benchmarks.sdxl_architecture import CONTEXT_DIM, POOLED_DIM, TOKENS

    train_lora_xl.DEVICE_CUDA = torch.device("cpu")
    train_lora_xl.flush = lambda: None
    generator = torch.Generator().manual_seed(0)

    def load_models_xl(path, scheduler_name, weight_dtype=torch.float32):
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=DTYPES[args.precision])
        loaded.update(rss=rss_bytes(), weights=sum(t.numel() * t.element_size() for t in [*unet.parameters(), *unet.buffers()]))
        if trace is not None:
            trace.mark("loaded")
        return [None, None], [torch.nn.Identity(), torch.nn.Identity()], unet, model_util.create_noise_scheduler(scheduler_name)

    def encode_prompts_xl(tokenizers, text_encoders, prompts, num_images_per_prompt=1):
        dtype = DTYPES[args.precision]  # what LECO's encoders, cast to its weight dtype, return
        return (torch.randn(len(prompts), TOKENS, CONTEXT_DIM, generator=generator).to(dtype),
                torch.randn(len(prompts), POOLED_DIM, generator=generator).to(dtype))

    model_util.load_models_xl = load_models_xl
    train_util.encode_prompts_xl = encode_prompts_xl
    # LECO's own bug: train() passes encode_prompts_xl's (text, pooled) tuple as ONE argument to
    # PromptEmbedsXL(*args), which reads args[1] (IndexError at its first prompt): unpack it.
    embeds = train_lora_xl.PromptEmbedsXL
    train_lora_xl.PromptEmbedsXL = lambda *a: embeds(*a[0]) if len(a) == 1 else embeds(*a)


def run_leco(args) -> None:
    from benchmarks.allocator_peak import AllocatorTrace, figures_after_mark

    loaded: dict = {}
    baseline = rss_bytes()
    with (AllocatorTrace() if args.trace else contextlib.nullcontext()) as trace:
        train_leco(args, loaded, trace)
    peak = rss_bytes()
    result = {
        "peer": "p1atdev/LECO train_lora_xl", "resolution": args.resolution, "precision": args.precision,
        "rank": args.rank, "steps": args.steps, "denoising_steps": args.denoising_steps, "gradient_checkpointing": False,
        "weights_bytes": loaded["weights"], "peak_bytes": peak, "peak_over_weights_bytes": peak - loaded["weights"],
        "rss_before_build_bytes": baseline, "rss_after_build_bytes": loaded["rss"],
        "peak_over_loaded_bytes": peak - loaded["rss"], "seconds": loaded["seconds"]}
    if trace is not None:
        result.update(figures_after_mark(trace.summary(), "loaded", loaded["weights"]))
    Path(args.out).write_text(json.dumps(result, indent=1))


def train_leco(args, loaded: dict, trace) -> None:
    import yaml

    patch_leco(args, loaded, trace)
    import config_util
    import prompt_util
    import train_lora_xl

    folder = Path(args.out).parent
    prompts_file = folder / "prompts.yaml"
    prompts_file.write_text(yaml.safe_dump([{**PROMPT, "resolution": args.resolution}]))
    precision = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[args.precision]
    config = config_util.RootConfig(
        prompts_file=str(prompts_file), pretrained_model={"name_or_path": args.run, "v2": False, "v_pred": False},
        network={"type": "lierla", "rank": args.rank, "alpha": 1.0, "training_method": args.method},
        train={"precision": precision, "noise_scheduler": "ddim", "iterations": args.steps, "lr": 1e-4,
               "optimizer": "AdamW", "lr_scheduler": "constant", "max_denoising_steps": args.denoising_steps},
        save={"name": "leco", "path": str(folder / "saved"), "per_steps": 10**9, "precision": precision},
        logging={"use_wandb": False, "verbose": False}, other={"use_xformers": False})
    started = time.perf_counter()
    train_lora_xl.train(config, prompt_util.load_prompts_from_yaml(str(prompts_file)))
    loaded["seconds"] = time.perf_counter() - started


def main(argv=None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    if args.save:
        return save_unet(args)
    if args.run:
        return run_leco(args)
    common = ["--leco", str(Path(args.leco).resolve()), "--resolution", str(args.resolution), "--rank", str(args.rank),
              "--precision", args.precision, "--size", args.size, "--steps", str(args.steps),
              "--denoising-steps", str(args.denoising_steps), "--method", args.method]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "leco.json"
        me = [sys.executable, "-m", "benchmarks.peer_leco_xl", *common, "--out", str(out)]
        subprocess.run([*me, "--save", folder], cwd=REPO, check=True)
        subprocess.run([*me, "--run", folder], cwd=REPO, check=True)
        result = json.loads(out.read_text())
        if not args.no_allocator_trace:  # the RSS above comes from the untraced run; the allocator's from this one
            subprocess.run([*me, "--run", folder, "--trace", "1"], cwd=REPO, check=True)
            result = with_allocator_figures(result, json.loads(out.read_text()))
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"LECO (no ckpt) {args.resolution}: weights {result['weights_bytes'] / 1e9:.2f} GB, peak {result['peak_bytes'] / 1e9:.2f} GB, "
          f"peak-weights {result['peak_over_weights_bytes'] / 1e9:.2f} GB, peak-loaded {result['peak_over_loaded_bytes'] / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
