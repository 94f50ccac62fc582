"""The run facade: the one engine entry point every host calls (the Train node, `loba train`, `loba demo`,
the benchmarks). A RunRequest (model, prompts, config, callbacks, output folder, resume, previews) goes
in; a TrainedSlider that knows how to save itself comes out.

With an output folder the run keeps it current: loss.csv (at every checkpoint and at the end), loss.jsonl (every step),
checkpoints/step-NNNNNN.pt and slider-NNNNNN.safetensors every save_every_n_steps (as sd-scripts does),
a checkpoint when it is stopped, and samples/step-NNNNNN.png when asked to save its previews.

Launched as several processes (accelerate launch, `loba train --num-processes N`) each trains its share of every
step's batch (distributed.py) and rank 0 alone writes the folder; the returned slider is the same in every process.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Union

import torch

from ..adapters import AdapterNetwork
from ..adapters.from_weights import StartWeights, network_from_weights
from ..config import TrainConfig
from ..errors import ConfigError
from ..models.backend import ModelBackend
from ..models.fp8_base import check_fp8_base
from ..models.sources import ModelSource, load_backend
from ..prompts import PromptSet
from ..sliders.atomic import sweep_temp_files
from ..sliders.trained import TrainedSlider
from .calibration import maybe_calibrate
from .callbacks import TrainCallbacks
from .checkpoint import latest_checkpoint
from .distributed import World, check_world, current_world
from .instant import instant_slider
from .loop import train
from .preview import PreviewPolicy, PreviewSampler
from .recorder import RunRecorder
from .sharding import plan_sharding, shard_frozen_base
from .step_log import StepLog, check_trackers
from .validate import check_sizes_for_family, validate_before_model_work


@dataclass(frozen=True)
class RunRequest:
    prompts: PromptSet
    config: TrainConfig = field(default_factory=TrainConfig)
    model: Optional[ModelSource] = None  # loaded when no backend is given
    backend: Optional[ModelBackend] = None
    callbacks: Optional[TrainCallbacks] = None
    out_dir: Optional[Path] = None
    resume: Union[Path, str, None] = None  # a checkpoint file, or "auto": the latest one in out_dir (if any)
    preview: PreviewPolicy = field(default_factory=PreviewPolicy)
    save_samples: bool = False  # previews also go to out_dir/samples/step-NNNNNN.png
    resolution: int = 0  # for prompts that set none; 0 = the model's native resolution
    network: Optional[AdapterNetwork] = None  # start from these adapters instead of fresh ones
    network_weights: Optional[StartWeights] = None  # or from these LoRA files (read before the model loads)
    instant: bool = False  # save the config's initializer (init = closed_form) alone: no training step (instant.py)
    log_with: tuple = ()  # accelerate trackers beside loss.jsonl: tensorboard, wandb (step_log.py)
    logging_dir: Optional[Path] = None  # the trackers' folder (default out_dir/logs)
    world: Optional[World] = None  # data-parallel processes; None = the one this process was launched into


def run_training(request: RunRequest) -> TrainedSlider:
    """Train the slider a request describes. Bad input fails before any model is loaded; the model is
    left exactly as it was, whatever happens; a stop request or Ctrl-C returns the partial slider. With instant,
    the slider is the config's closed-form start alone (steps_done 0; its init_report says what it set)."""
    out_dir = None if request.out_dir is None else Path(request.out_dir)
    _check_request(request, out_dir)
    world = request.world or current_world()
    check_world(request.prompts, request.config, world)
    check_trackers(tuple(request.log_with))
    sharding = plan_sharding(world, request.config, request.model.dtype if request.model is not None else "float32")
    if request.model is not None and request.model.fp8_base:
        check_fp8_base(request.config, sharded=sharding is not None)
    # Every process reads the same checkpoint (a shared folder); only rank 0 writes anything.
    write_dir = out_dir if world.is_main else None
    # Before any model is loaded: a given backend already knows its native size; for a model still to load, a
    # placeholder stands in (square like every native size, so mask aspect checks decide the same).
    known = request.resolution or (request.backend.native_resolution if request.backend is not None else 512)
    # The family's size rules too where it is known before loading: a host's model, or a run file's `sdxl = true`.
    family = request.backend.family if request.backend is not None else ("sdxl" if request.model.sdxl else None)
    validate_before_model_work(request.prompts.with_default_resolution((known,) * 2), request.config, family,
                               request.resolution)
    if write_dir is not None:  # what a run killed mid-write (kill -9) left here; never listed as checkpoints
        sweep_temp_files(write_dir, recursive=True)
    resume = _resume_path(request.resume, out_dir)
    backend = request.backend or load_backend(_on_device(request.model, world))
    shard_frozen_base(backend, sharding, world)  # FSDP (accelerate launch --use_fsdp): 1/N of the base per process
    prompts = request.prompts.with_default_resolution((request.resolution or backend.native_resolution,) * 2)
    # A loaded model's family is known only now: its size rules (SDXL: multiples of 64) before any prompt is encoded.
    check_sizes_for_family(prompts, backend.family, request.resolution)
    backend.check_config(request.config)  # what this backend's files cannot hold, before any prompt is encoded
    prompts.validate()
    sizes = sorted({tuple(size) for pair in prompts.pairs() for size in pair.resolutions})
    with backend.schedule_for_sizes(sizes):  # Flux: the sigma shift of the run's image size, restored afterwards
        return _run(request, backend, prompts, write_dir, resume, world)


def _run(request: RunRequest, backend: ModelBackend, prompts: PromptSet, write_dir: Optional[Path], resume,
         world: World) -> TrainedSlider:
    """The run on a loaded backend; write_dir is None on every process but rank 0 (and without an output folder)."""
    if request.instant:
        with torch.inference_mode(False):  # hosts run nodes under inference mode: adapters must be normal tensors
            return instant_slider(backend, prompts, request.config)[0]
    previews = request.preview.every and world.is_main
    sampler = PreviewSampler(backend, prompts, request.config, request.preview) if previews else None
    step_log = None if write_dir is None else StepLog(write_dir, tuple(request.log_with), write_dir.name or "loba",
                                                      request.logging_dir)
    recorder = RunRecorder(backend, prompts, request.config, request.callbacks or TrainCallbacks(), write_dir, sampler,
                           request.preview, request.save_samples, step_log)
    network = request.network
    if network is None and request.network_weights is not None:
        with torch.inference_mode(False):  # hosts run nodes under inference mode: adapters must be normal tensors
            network, _ = network_from_weights(backend, request.config, request.network_weights)
    result = train(backend, prompts, request.config, callbacks=recorder, out_dir=write_dir, resume=resume, network=network,
                   world=world)
    # Here, once, so every host's saved file (and in-memory slider) is the calibrated one; checkpoints stay as trained.
    calibration = maybe_calibrate(result.network, backend, prompts, request.config)
    return TrainedSlider(result.network, backend, request.config, prompts, result.steps_done, result.stopped, result.report,
                         recorder.rows, result.checkpoints, recorder.step_files, recorder.samples, result.stop_reason,
                         calibration)


def _on_device(source: ModelSource, world: World) -> ModelSource:
    """Launched on GPUs, each process loads the model onto its own (cuda:LOCAL_RANK)."""
    if world.device is None:
        return source
    if not source.device.startswith("cuda"):  # NCCL all-reduces device tensors only
        raise ConfigError("device", f"the processes were launched on GPUs but the run file trains on {source.device}: "
                                    "set device = \"cuda\" (each process takes its own GPU)")
    return replace(source, device=str(world.device))


def _check_request(request: RunRequest, out_dir: Optional[Path]) -> None:
    if request.backend is None and request.model is None:
        raise ConfigError("pretrained_model_name_or_path", "no model: give a model path or name (e.g. toyworld)")
    if out_dir is None and request.config.save_every_n_steps:
        raise ConfigError("save_every_n_steps", "checkpoints need an output folder; set one or use 0")
    if request.config.network.dim_from_weights and request.network_weights is None:
        raise ConfigError("dim_from_weights", "takes the rank from network_weights: give a LoRA file, or turn it off")
    if out_dir is None and (request.save_samples or request.resume == "auto"):
        raise ConfigError("out_dir", "saved previews and resume = auto need an output folder")
    if request.instant:
        _check_instant(request)


def _check_instant(request: RunRequest) -> None:
    """An instant slider is the closed-form start of a fresh slider: nothing to resume, no LoRA to start from."""
    if request.config.network.init == "default":
        raise ConfigError("init", "an instant slider is the closed-form start saved without training: set init = closed_form")
    if request.resume:
        raise ConfigError("resume", "an instant slider trains no step, so there is nothing to resume: drop resume or instant")
    if request.network is not None or request.network_weights is not None:
        raise ConfigError("network_weights", "an instant slider starts from the closed form, not from a LoRA: "
                                             "drop the start weights or instant")


def _resume_path(resume: Union[Path, str, None], out_dir: Optional[Path]) -> Optional[Path]:
    if not resume:
        return None
    if resume == "auto":
        return latest_checkpoint(out_dir)
    path = Path(resume)
    if not path.is_file():
        raise ConfigError("resume", f"{path} does not exist; give a checkpoint written by save_every_n_steps, or auto")
    return path
