"""Runs p1atdev/LECO's own train() on a diffusers folder, on the CPU, and records its per-step times.

Executed by LECO's own Python (its pinned diffusers/transformers), from `benchmarks.speed`; it imports
LECO from the checkout given on the command line and changes only what cannot run here:
- the device: LECO hard-codes cuda:0 (we point it at the CPU) and xformers (a no-op here);
- model loading: LECO fetches its tokenizer from the Hub and forces 12 CLIP layers; we load the
  tokenizer, text encoder and UNet of the given folder as they are (the text encoder only encodes the
  prompts once, outside the timed loop);
- the optimizer class is LECO's own choice, subclassed only to stamp the time of each step.
Its training loop, objective, denoise (CFG 3, adapter on) and LoRA are untouched.

Usage: python peer_leco.py --leco DIR --model DIR --out FILE.json --steps N --rank R --alpha A --lr LR
       --denoise-steps T --save-every S --save-dir DIR --prompt-yaml FILE [--method xattn]
"""

import argparse
import json
import resource
import sys
import time


def current_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS")) / 1024


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    for name in ("leco", "model", "out", "save_dir", "prompt_yaml", "method"):
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default="full" if name == "method" else None)
    for name, kind in (("steps", int), ("rank", int), ("alpha", float), ("lr", float), ("denoise_steps", int),
                       ("save_every", int), ("seed", int), ("threads", int)):
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=0)
    return parser.parse_args()


def patch_leco(args, loaded_rss: list, stamps: list) -> None:
    """Run LECO on the CPU from the local diffusers folder, and stamp the end of every optimizer step."""
    import model_util
    import torch
    import train_lora
    import train_util
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    train_lora.DEVICE_CUDA = torch.device("cpu")
    train_lora.flush = lambda: None
    UNet2DConditionModel.enable_xformers_memory_efficient_attention = lambda self: None

    def load_models(path, scheduler_name, v2=False, v_pred=False, weight_dtype=torch.float32):
        tokenizer = CLIPTokenizer.from_pretrained(args.model, subfolder="tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(args.model, subfolder="text_encoder")
        unet = UNet2DConditionModel.from_pretrained(args.model, subfolder="unet")
        scheduler = model_util.create_noise_scheduler(scheduler_name, "v_prediction" if v_pred else "epsilon")
        loaded_rss.append(current_rss_mb())  # the model is loaded; what grows from here is training
        return tokenizer, text_encoder, unet, scheduler

    model_util.load_models = load_models
    original_get_optimizer = train_util.get_optimizer

    def stamped(name):
        base = original_get_optimizer(name)

        class Stamped(base):
            def step(self, *a, **k):
                out = super().step(*a, **k)
                stamps.append(time.perf_counter())
                return out

        return Stamped

    train_lora.train_util.get_optimizer = stamped


def leco_config(args):
    import config_util

    return config_util.RootConfig(
        prompts_file=args.prompt_yaml,
        pretrained_model={"name_or_path": args.model},
        network={"type": "lierla", "rank": args.rank, "alpha": args.alpha, "training_method": args.method},
        train={"precision": "float32", "noise_scheduler": "ddim", "iterations": args.steps, "lr": args.lr,
               "optimizer": "AdamW", "lr_scheduler": "constant", "max_denoising_steps": args.denoise_steps},
        save={"name": "leco", "path": args.save_dir, "per_steps": args.save_every or 10**9, "precision": "float32"},
        logging={"use_wandb": False, "verbose": False},
        other={"use_xformers": False},
    )


def main() -> None:
    args = parse_args()
    sys.path.insert(0, args.leco)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    import prompt_util
    import train_lora

    loaded_rss, stamps = [], []
    patch_leco(args, loaded_rss, stamps)
    config = leco_config(args)
    prompts = prompt_util.load_prompts_from_yaml(args.prompt_yaml)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # libraries imported, no model yet
    started = time.perf_counter()
    train_lora.train(config, prompts)
    step_seconds = [b - a for a, b in zip([started] + stamps[:-1], stamps)]
    with open(args.out, "w") as handle:
        json.dump({"step_seconds": step_seconds, "stamps": [s - started for s in stamps],
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "baseline_rss_mb": baseline,
                   "loaded_rss_mb": loaded_rss[0], "torch": torch.__version__}, handle)


if __name__ == "__main__":
    main()
