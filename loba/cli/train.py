"""`loba train`: a run file -> the run facade -> OUT/slider.safetensors, loss.csv, checkpoints/, samples/.

Ctrl-C (SIGINT) or SIGTERM never loses work: the step in flight is dropped, the partial slider and a
checkpoint are written, and the command exits 128 + the signal number.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from ..config.runfile import load_run_file
from ..errors import ConfigError
from ..images import parse_weights
from ..models.sources import ModelSource
from ..train.callbacks import StepReport, TrainCallbacks, TrainStart
from ..train.distributed import current_world
from ..train.preview import PreviewPolicy

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="run file: model, training options and prompts (sd-scripts LECO keys work)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder: slider.safetensors (or <output_name>.safetensors), loss.csv, checkpoints/, "
                             "slider-NNNNNN.safetensors, samples/ (default: the run file's output_dir)")
    parser.add_argument("--resume", help="checkpoint to continue from, or 'auto' for the newest in OUT/checkpoints")
    parser.add_argument("--model", help="base model: a diffusers folder, hub id, checkpoint file or 'toyworld' "
                                        "(overrides pretrained_model_name_or_path)")
    parser.add_argument("--hub-model", metavar="USER/NAME", help="base model from the Hugging Face Hub (overrides "
                        "pretrained_model_name_or_path; revision, variant, subfolder: --set revision=... or run-file keys)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override an option, e.g. --set network_dim=8")
    parser.add_argument("--preview-every", type=int, default=0, metavar="N",
                        help="every N steps write a sample grid at the preview weights to OUT/samples/step-NNNNNN.png")
    parser.add_argument("--preview-weights", default="-1, 0, 1", help="slider weights of the previews, comma-separated")
    parser.add_argument("--instant", action="store_true",
                        help="save the closed-form start alone, no training step (seconds): the instant slider; "
                             "needs init = closed_form in the run file or --set init=closed_form")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--num-processes", type=int, default=1, metavar="N",
                        help="train data-parallel in N processes (GPUs, or CPU processes without one) through "
                             "accelerate's launcher: each trains batch_size / N rows of every step, rank 0 writes OUT; "
                             "the same as `accelerate launch --multi_gpu --num_processes N -m loba.cli train ...`")


class CliCallbacks(TrainCallbacks):
    """Progress bar; a stop signal ends the run after (or inside) the current step."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.stop_signal: Optional[int] = None

    def on_start(self, start: TrainStart) -> None:
        print(f"training {start.num_modules} modules ({start.num_parameters:,} parameters) on {start.num_pairs} prompt pairs")
        if not self.quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=start.total_steps, initial=start.start_step, desc="loba", unit="step")

    def on_step(self, report: StepReport, network) -> None:
        if self.bar is not None:
            self.bar.update(1)
            drift = {} if report.canary_drift is None else {"drift": f"{report.canary_drift:.4f}"}
            self.bar.set_postfix(loss=f"{report.loss:.5f}", t=report.timestep, **drift)
        elif report.canary_drift is not None:
            print(f"step {report.step}: canary drift {report.canary_drift:.4f}")

    def should_stop(self) -> bool:
        return self.stop_signal is not None

    def on_end(self, steps_done: int, stopped: bool, error) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def stop_on_signals(callbacks: CliCallbacks) -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to stop instead of killing it; the previous handlers come back after."""
    def request_stop(signum, frame):
        callbacks.stop_signal = signum
        print(f"\nloba: {signal.Signals(signum).name}: stopping after this step, saving the partial slider")

    previous = {sig: signal.signal(sig, request_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_train(config_path: Path, out_dir: Optional[Path], *, resume: Optional[str] = None, model: Optional[str] = None,
              overrides: Optional[dict] = None, quiet: bool = False, preview_every: int = 0,
              preview_weights: str = "-1, 0, 1", instant: bool = False, hub_model: Optional[str] = None) -> int:
    from ..train.run import RunRequest, run_training

    run = load_run_file(config_path, _model_overrides(overrides, model, hub_model))
    out_dir = out_dir or (run.output_dir and Path(config_path).parent / run.output_dir)
    if not out_dir:
        raise ConfigError("out", f"no output folder: pass --out DIR or set output_dir in {Path(config_path).name}")
    weights = tuple(parse_weights(preview_weights, "--preview-weights")) if preview_every else ()
    source = ModelSource(run.model, run.prediction_type, run.sdxl, run.model_dtype, run.model_config, run.device,
                         with_vae=bool(preview_every), clip_skip=run.clip_skip,
                         zero_terminal_snr=run.zero_terminal_snr, hub=run.hub, fp8_base=run.fp8_base,
                         guidance=getattr(run.config.sampling, "guidance", None))  # Flux dev's, where the config has it
    _check_push(run)
    world = current_world()
    callbacks = CliCallbacks(quiet or not world.is_main)  # one progress bar: rank 0's
    start = None
    if run.network_weights:  # read and checked before the model loads
        from ..adapters.from_weights import read_start_weights

        start = read_start_weights(run.network_weights, run.network_weights_multipliers, run.network_weights_merge)
    request = RunRequest(run.prompts, run.config, model=source, callbacks=callbacks, out_dir=Path(out_dir), resume=resume,
                         preview=PreviewPolicy(preview_every, weights), save_samples=bool(preview_every), network_weights=start,
                         instant=instant, log_with=run.log_with, logging_dir=run.logging_dir, world=world)
    with stop_on_signals(callbacks):
        slider = run_training(request)
    if world.size > 1:  # the figure a cluster user sizes machines by (with FSDP: compare the sharded base's share)
        print(f"loba: rank {world.rank}: peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} "
              "MiB", flush=True)
    if not world.is_main:  # every process holds the same slider; rank 0 alone writes it
        return 128 + int(callbacks.stop_signal) if callbacks.stop_signal is not None else 0
    path = slider.save(Path(out_dir) / f"{run.output_name}.safetensors")
    if instant:
        summary = getattr(slider.init_report, "summary", None)  # the closed form's; an initializer may report nothing
        print(f"wrote {path}: the instant slider, no training step" + (f" ({summary()})" if summary else ""))
        return _push_after_run(Path(out_dir), path, Path(config_path), run)
    final = slider.losses[-1] if slider.losses else float("nan")
    print(f"wrote {path} after {slider.steps_done} steps (final loss {final:.5f})")
    if slider.stop_reason:
        print(slider.stop_reason)
    if callbacks.stop_signal is not None:
        print(f"stopped by {signal.Signals(callbacks.stop_signal).name}: resume with --resume auto")
        return 128 + int(callbacks.stop_signal)
    return _push_after_run(Path(out_dir), path, Path(config_path), run)


def _model_overrides(overrides: Optional[dict], model: Optional[str], hub_model: Optional[str]) -> dict:
    overrides = dict(overrides or {})
    if model:
        overrides["pretrained_model_name_or_path"] = model
    if hub_model:
        from ..hub.push import check_repo_id

        overrides["pretrained_model_name_or_path"] = check_repo_id(hub_model, "--hub-model")
    return overrides


def _check_push(run) -> None:
    """With push_to_hub: the token is found before the run, so a long training never ends on a push that cannot work."""
    if run.push_to_hub:
        from ..hub.push import hub_token

        hub_token()


def _push_after_run(out_dir: Path, slider: Path, config_path: Path, run) -> int:
    if run.push_to_hub:
        from ..hub.push import push_run

        result = push_run(out_dir, run.push_to_hub, private=run.hub_private, slider=slider, run_file=config_path)
        print(f"pushed {len(result.files)} files to {result.url}")
    return 0
