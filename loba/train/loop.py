"""The training loop: build the trainer, resume it, run its steps, checkpoint, stop on request.

Hosts do not call this directly: loba.train.run.run_training (the run facade) wraps it with model
loading, loss logs, previews and slider files.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ..adapters import AdapterNetwork
from ..adapters.initializers import initialize
from ..adapters.targeting import TargetingReport, describe, select_targets
from ..adapters.text_encoder import adapter_root, has_text_encoder, select_all_targets
from ..config import TrainConfig
from ..errors import StepAborted
from ..models.backend import ModelBackend
from ..prompts import PromptSet
from .callbacks import StepReport, TrainCallbacks, TrainStart
from .canaries import CanaryBudgetExceeded, CanaryMonitor
from .checkpoint import checkpoint_path, read_checkpoint, write_checkpoint
from .distributed import SINGLE, World
from .offload import offloaded
from .phases import PhaseClock
from .trainer import Trainer
from .validate import validate_before_model_work


@dataclass
class TrainResult:
    network: AdapterNetwork
    steps_done: int
    stopped: bool
    report: TargetingReport
    reports: list[StepReport] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    stop_reason: str = ""  # why a run stopped on its own (the canary drift budget); "" for a host's stop

    @property
    def losses(self) -> list[float]:
        return [r.loss for r in self.reports]


def build_network(backend: ModelBackend, config: TrainConfig) -> AdapterNetwork:
    """Adapters initialized from the config's seed (same seed, same slider) without touching the global RNG."""
    targets = select_all_targets(backend, config, select_targets)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return AdapterNetwork(targets, adapter_root(backend, [t.name for t in targets]))


@contextlib.contextmanager
def _gradient_checkpointing(backend: ModelBackend, enabled: bool):
    """On for the run if asked; the model's own setting is restored afterwards, whatever it was."""
    previous = backend.gradient_checkpointing()
    if enabled == previous:
        yield
        return
    backend.set_gradient_checkpointing(enabled)
    try:
        yield
    finally:
        backend.set_gradient_checkpointing(previous)


def train(backend: ModelBackend, prompts: PromptSet, config: TrainConfig, *, callbacks: Optional[TrainCallbacks] = None,
          out_dir: Optional[Path] = None, resume: Optional[Path] = None, network: Optional[AdapterNetwork] = None,
          world: World = SINGLE) -> TrainResult:
    """Train a slider. The model is left exactly as it was, whatever happens.

    Safe to call under torch.inference_mode() or no_grad (as ComfyUI runs nodes): adapters, embeddings
    and optimizer state are created outside it, as normal tensors autograd can use. A stop request
    (callbacks.should_stop(), polled between steps and inside the denoise) or Ctrl-C ends the run as
    stopped with every finished step kept; with out_dir a checkpoint of that state is written.

    With several processes (world, distributed.py) each trains its rows of every step; only a process given an
    out_dir writes checkpoints (the facade gives it to rank 0 alone), and a stop request stops every process
    after the same step.
    """
    validate_before_model_work(prompts, config)
    with torch.inference_mode(False), torch.enable_grad():
        return _train(backend, prompts, config, callbacks or TrainCallbacks(), out_dir, resume, network, world)


def _train(backend: ModelBackend, prompts: PromptSet, config: TrainConfig, callbacks: TrainCallbacks,
           out_dir: Optional[Path], resume: Optional[Path], network: Optional[AdapterNetwork],
           world: World = SINGLE) -> TrainResult:
    if network is None:
        network = build_network(backend, config)
        if not resume:  # a checkpoint holds the weights: the initializer (e.g. closed_form) only starts a run
            initialize(network, backend, prompts, config)
    root = adapter_root(backend, network.names)  # the denoiser, or it and the text encoders
    report = describe(network.targets, root)
    trainer = Trainer.build(backend, network, prompts, config, world)
    if world.size == 1:
        trainer.step.should_stop = callbacks.should_stop
    else:  # a stop inside one process's denoise would leave the others waiting in the all_reduce: stop between steps
        trainer.stop_requested = callbacks.should_stop
    if resume:
        trainer.load_state_dict(read_checkpoint(resume), str(resume))
    result = TrainResult(network, trainer.steps_done, False, report)
    canaries = CanaryMonitor(trainer)  # encodes its prompts now, before the training session, as Trainer.build does
    callbacks.on_start(TrainStart(config.max_train_steps, trainer.steps_done, report.num_modules, report.num_parameters,
                                  len(trainer.step.pairs)))
    error: Optional[BaseException] = None
    try:
        text_encoders = backend.text_encoder_session() if has_text_encoder(network.names) else contextlib.nullcontext()
        with backend.training_session(), text_encoders, network.attached(root), \
                _gradient_checkpointing(backend, config.gradient_checkpointing), offloaded(backend, config.offload):
            _run_steps(trainer, result, callbacks, out_dir, canaries)
    except BaseException as exc:
        error = exc
        raise
    finally:
        network.multiplier = 1.0
        callbacks.on_end(result.steps_done, result.stopped, error)
    return result


def _run_steps(trainer: Trainer, result: TrainResult, callbacks: TrainCallbacks, out_dir: Optional[Path],
               canaries: CanaryMonitor) -> None:
    config = trainer.config
    clock = PhaseClock(trainer.backend.device, callbacks.sync_phases)
    try:
        while trainer.steps_done < config.max_train_steps and not _stop(trainer, callbacks):
            _one_step(trainer, result, callbacks, clock, out_dir, canaries)
    except CanaryBudgetExceeded as exc:
        result.stop_reason = str(exc)
    except (StepAborted, KeyboardInterrupt, *callbacks.stop_exceptions):
        # A step stopped before its optimizer update is dropped; one stopped in its preview or checkpoint is kept.
        pass
    result.stopped = trainer.steps_done < config.max_train_steps
    if result.stopped and out_dir is not None and trainer.steps_done > 0:
        # A second cancel here loses only this checkpoint (the atomic write leaves no half file), never the slider.
        with contextlib.suppress(KeyboardInterrupt, *callbacks.stop_exceptions):
            _checkpoint(trainer, result, callbacks, out_dir)


def _stop(trainer: Trainer, callbacks: TrainCallbacks) -> bool:
    """Alone: the host's request. With several processes: the request any of them shared in the last all_reduce."""
    return trainer.stop_agreed if trainer.world.size > 1 else callbacks.should_stop()


def _one_step(trainer: Trainer, result: TrainResult, callbacks: TrainCallbacks, clock: PhaseClock,
              out_dir: Optional[Path], canaries: CanaryMonitor) -> None:
    started = time.perf_counter()
    lr, step = trainer.one_step(clock)
    result.steps_done = trainer.steps_done
    drift = canaries.after_step(trainer.steps_done, clock)
    report = StepReport(trainer.steps_done, trainer.config.max_train_steps, float(step.loss.detach()), step.main_loss,
                        step.preservation_loss, lr, step.timestep, step.pair_index, time.perf_counter() - started,
                        clock.take(), drift)
    result.reports.append(report)
    callbacks.on_step(report, trainer.network)
    canaries.check_budget(drift, trainer.steps_done)  # after the step is logged: its row shows the drift that stopped it
    every = trainer.config.save_every_n_steps
    if out_dir is not None and every and result.steps_done % every == 0 and result.steps_done < trainer.config.max_train_steps:
        _checkpoint(trainer, result, callbacks, out_dir)


def _checkpoint(trainer: Trainer, result: TrainResult, callbacks: TrainCallbacks, out_dir: Path) -> None:
    path = write_checkpoint(checkpoint_path(out_dir, trainer.steps_done), trainer.state_dict())
    result.checkpoints.append(path)
    callbacks.on_checkpoint(path, trainer.steps_done)
