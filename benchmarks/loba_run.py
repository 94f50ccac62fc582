"""One LOBA training run for the benchmarks, in its own process (so its peak memory is its own).

Times every step and reads its split into denoise / teachers / student forward / backward / optimizer
from the step's own report (StepReport.phases, device-synchronized), optionally saves the slider every N steps
(save time excluded from the clock) for the time-to-effect figure, and measures the floor: one batched
teacher forward plus one student forward+backward on the same model and batch.

Usage: python -m benchmarks.loba_run --model DIR --out FILE.json [--steps N] [--cache P] [...]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import torch


def current_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS")) / 1024


def erase_prompts(resolution: int, batch_size: int, anchors: bool):
    from loba.prompts import AnchorPrompt, PromptPair, PromptSet

    pair = PromptPair(target="a red circle", positive="a red circle", unconditional="a circle", neutral="a circle",
                      action="erase", guidance_scale=1.0, resolutions=((resolution, resolution),), batch_size=batch_size)
    kept = ("", "a blue circle", "a green square", "a yellow triangle") if anchors else ()
    return PromptSet((pair,), tuple(AnchorPrompt(p) for p in kept))


def recipe_run(name: str, steps: int, seed: int):
    """(prompts, config) of a shipped toy-world recipe, with the step budget and seed of this run."""
    from loba.config.runfile import split_run_table
    from loba.prompts.loader import read_prompt_table
    from loba.toyworld.demo import recipe_path

    path = recipe_path(name, "train")
    _, config, prompts = split_run_table(read_prompt_table(path), path.parent, path.name)
    return prompts, config.replace(max_train_steps=steps, seed=seed)


def floor_seconds(backend, prompts, config, reps: int = 10) -> float:
    """One batched no-grad teacher forward for every prompt the pair needs + one student forward/backward."""
    from loba.train.loop import build_network
    from loba.train.step import SliderStep

    network = build_network(backend, config)
    step = SliderStep(backend, network, prompts, config, backend.encode_prompts(prompts.all_prompts()))
    generator = torch.Generator().manual_seed(0)
    times = []
    with torch.enable_grad(), backend.training_session(), network.attached(backend.denoiser()):
        for _ in range(reps + 2):
            plan = step.plan(generator)
            x_t = plan.noise
            started = time.perf_counter()
            step.teachers(plan, x_t)
            out = step.student(plan, x_t)
            sum(o.float().square().mean() for o in out).backward()
            times.append(time.perf_counter() - started)
    return statistics.median(times[2:])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    for name, kind, default in (("steps", int, 40), ("rank", int, 4), ("alpha", float, 1.0), ("lr", float, 1e-4),
                                ("denoise_steps", int, 50), ("denoise_cfg", float, 3.0), ("cache", int, 0),
                                ("refresh", int, 8), ("seed", int, 0), ("threads", int, 0), ("save_every", int, 0),
                                ("resolution", int, 64), ("batch_size", int, 2)):
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=default)
    parser.add_argument("--preset", default="all_linear")
    parser.add_argument("--adapter-in-denoise", dest="adapter_in_denoise", default="yes", choices=("yes", "no"))
    parser.add_argument("--anchors", default="no", choices=("yes", "no"))
    parser.add_argument("--save-dir", dest="save_dir", default="")
    parser.add_argument("--recipe", default="", help="train a shipped toy-world recipe (its prompts and settings) instead")
    parser.add_argument("--override", default="{}", help="JSON {config field: value} laid over the run's config")
    return parser.parse_args()


def run_config(args: argparse.Namespace):
    """(prompts, config) of this run: the erase pair with the given settings, or a shipped recipe."""
    from loba.config import TrainConfig

    if args.recipe:
        prompts, config = recipe_run(args.recipe, args.steps, args.seed)
        return prompts, config.replace(**json.loads(args.override))
    prompts = erase_prompts(args.resolution, args.batch_size, args.anchors == "yes")
    config = TrainConfig().replace(
        max_train_steps=args.steps, network_dim=args.rank, network_alpha=args.alpha, learning_rate=args.lr,
        max_denoising_steps=args.denoise_steps, leco_denoise_guidance_scale=args.denoise_cfg, seed=args.seed,
        trajectory_cache=args.cache, trajectory_refresh_every=args.refresh, preset=args.preset,
        denoise_with_adapter=args.adapter_in_denoise == "yes", preservation_weight=5.0 if args.anchors == "yes" else 1.0)
    return prompts, config.replace(**json.loads(args.override))


def initialized(args, backend, prompts, config):
    """(network or None, seconds, report) of the config's initializer, run here (timed) instead of inside the run,
    so the start itself can be saved as step 0 (the closed form alone: the instant slider)."""
    from loba.adapters.initializers import initialize
    from loba.sliders.trained import save_trained_slider
    from loba.train.loop import build_network

    if config.network.init == "default":
        return None, 0.0, {}
    started = time.perf_counter()
    network = build_network(backend, config)
    report = initialize(network, backend, prompts, config)
    seconds = time.perf_counter() - started
    if args.save_dir:
        save_trained_slider(Path(args.save_dir) / "step-00000.safetensors", network, backend, config, prompts, 0)
    return network, seconds, {"modules": len(report.modules), "seconds": report.seconds,
                              "max_truncation_error": report.max_truncation_error,
                              "mean_truncation_error": statistics.fmean(report.truncation_error.values())}


def step_clock(args, backend, prompts, config):
    """Callbacks that stamp every step, keep its phases (device-synchronized) and save the slider every
    --save-every steps with the save time left out of the clock."""
    from loba.sliders.trained import save_trained_slider
    from loba.train.callbacks import TrainCallbacks

    class StepClock(TrainCallbacks):
        sync_phases = True

        def __init__(self):
            self.phases, self.stamps, self.paused, self.started = [], [], 0.0, time.perf_counter()

        def on_step(self, report, network):
            self.phases.append(dict(report.phases))
            self.stamps.append(time.perf_counter() - self.started - self.paused)
            if args.save_every and report.step % args.save_every == 0:
                t0 = time.perf_counter()
                save_trained_slider(Path(args.save_dir) / f"step-{report.step:05d}.safetensors", network, backend, config,
                                    prompts, report.step)
                self.paused += time.perf_counter() - t0

    return StepClock()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from loba.toyworld.backend import toy_backend
    from loba.toyworld.sampling import load_toy_components
    from loba.train.run import RunRequest, run_training

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # libraries imported, no model yet
    backend = toy_backend(load_toy_components(args.model))
    loaded = current_rss_mb()  # the model is loaded; what grows from here is training
    prompts, config = run_config(args)
    network, init_seconds, init_report = initialized(args, backend, prompts, config)
    clock = step_clock(args, backend, prompts, config)
    result = run_training(RunRequest(prompts, config, backend=backend, callbacks=clock, network=network))
    steps = [b - a for a, b in zip([0.0] + clock.stamps[:-1], clock.stamps)]
    Path(args.out).write_text(json.dumps({
        "step_seconds": steps, "stamps": [init_seconds + t for t in clock.stamps], "phases": clock.phases,
        "init_seconds": init_seconds, "init": init_report,
        "modules": result.report.num_modules, "parameters": result.report.num_parameters,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "baseline_rss_mb": baseline, "loaded_rss_mb": loaded,
        "floor_seconds": floor_seconds(backend, prompts, config), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
