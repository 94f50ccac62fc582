"""The training entry point shared by the CLI and the ComfyUI nodes."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ..adapters import AdapterNetwork
from ..adapters.targeting import TargetingReport, describe, select_targets
from ..config.train_config import TrainConfig
from ..errors import TrainingAborted
from ..models.backend import ModelBackend
from ..optim import build_optimizer, build_scheduler
from ..prompts import PromptSet
from .callbacks import StepReport, TrainCallbacks, TrainStart
from .checkpoint import checkpoint_path, fingerprint, load_checkpoint, save_checkpoint
from .step import SliderStep
from .validate import validate_before_model_work


@dataclass
class TrainResult:
    network: AdapterNetwork
    steps_done: int
    stopped: bool
    report: TargetingReport
    losses: list[float] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)


@dataclass
class _Trainer:
    backend: ModelBackend
    network: AdapterNetwork
    step: SliderStep
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    config: TrainConfig
    scaler: torch.amp.GradScaler
    prompts_fingerprint: str

    def one_step(self) -> tuple[float, object]:
        plan = self.step.plan(self.generator)
        result = self.step.run(plan)
        where = f"at timestep {plan.timestep} (pair {plan.pair.name or plan.pair_index})"
        if not torch.isfinite(result.loss):
            raise TrainingAborted(f"the loss became {float(result.loss.detach())} {where}; lower learning_rate or guidance_scale")
        self.optimizer.zero_grad(set_to_none=True)
        # With gradient checkpointing the adapter hooks run again inside backward and read the
        # network's multiplier then: nothing may change it between the student forward and here.
        self.scaler.scale(result.loss).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.config.optimizer.max_grad_norm
        norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), max_norm if max_norm > 0 else float("inf"))
        if not self.scaler.is_enabled() and not torch.isfinite(norm):
            # fp16 loss scaling skips such steps by design; anywhere else a non-finite gradient is a failure.
            raise TrainingAborted(f"the gradient became non-finite {where}; lower learning_rate or use bf16/fp32")
        lr = self.base_learning_rate()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return lr, result

    def base_learning_rate(self) -> float:
        group = self.optimizer.param_groups[0]
        return group["lr"] / group.get("lr_multiplier", 1.0)


def _uses_fp16(backend: ModelBackend, config: TrainConfig) -> bool:
    return config.mixed_precision == "fp16" or backend.dtype == torch.float16


def build_network(backend: ModelBackend, config: TrainConfig) -> AdapterNetwork:
    """Adapters initialized from the config's seed (same seed, same slider) without touching the global RNG."""
    targets = select_targets(backend.denoiser(), config.network)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return AdapterNetwork(targets, backend.denoiser())


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
          out_dir: Optional[Path] = None, resume: Optional[Path] = None, network: Optional[AdapterNetwork] = None) -> TrainResult:
    """Train a slider. The model is left exactly as it was, whatever happens.

    Safe to call under torch.inference_mode() or no_grad (as ComfyUI runs nodes): adapters, embeddings
    and optimizer state are created outside it, as normal tensors autograd can use.
    """
    validate_before_model_work(prompts, config)
    with torch.inference_mode(False), torch.enable_grad():
        return _train(backend, prompts, config, callbacks or TrainCallbacks(), out_dir, resume, network)


def _train(backend: ModelBackend, prompts: PromptSet, config: TrainConfig, callbacks: TrainCallbacks,
           out_dir: Optional[Path], resume: Optional[Path], network: Optional[AdapterNetwork]) -> TrainResult:
    root = backend.denoiser()
    network = network or build_network(backend, config)
    report = describe(network.targets, root)
    embeddings = backend.encode_prompts(prompts.all_prompts())
    step = SliderStep(backend, network, prompts, config, embeddings)
    optimizer = build_optimizer(network.param_groups(config.optimizer.learning_rate), config.optimizer)
    scheduler = build_scheduler(optimizer, config.optimizer, config.max_train_steps)
    generator = torch.Generator().manual_seed(config.seed)
    scaler = torch.amp.GradScaler(backend.device.type, enabled=_uses_fp16(backend, config))
    trainer = _Trainer(backend, network, step, optimizer, scheduler, generator, config, scaler, fingerprint(prompts))
    start = load_checkpoint(resume, trainer) if resume else 0
    result = TrainResult(network, start, False, report)
    callbacks.on_start(TrainStart(config.max_train_steps, start, report.num_modules, report.num_parameters, len(step.pairs)))
    error: Optional[BaseException] = None
    try:
        with backend.training_session(), network.attached(root), _gradient_checkpointing(backend, config.gradient_checkpointing):
            _run_steps(trainer, result, callbacks, out_dir)
    except BaseException as exc:
        error = exc
        raise
    finally:
        network.multiplier = 1.0
        callbacks.on_end(result.steps_done, result.stopped, error)
    return result


def _run_steps(trainer: _Trainer, result: TrainResult, callbacks: TrainCallbacks, out_dir: Optional[Path]) -> None:
    config = trainer.config
    for index in range(result.steps_done, config.max_train_steps):
        if callbacks.should_stop():
            result.stopped = True
            return
        started = time.perf_counter()
        lr, step_result = trainer.one_step()
        result.steps_done = index + 1
        result.losses.append(float(step_result.loss.detach()))
        callbacks.on_step(StepReport(index + 1, config.max_train_steps, result.losses[-1], step_result.main_loss,
                                     step_result.preservation_loss, lr, step_result.timestep, step_result.pair_index,
                                     time.perf_counter() - started), trainer.network)
        every = config.save_every_n_steps
        if out_dir is not None and every and result.steps_done % every == 0 and result.steps_done < config.max_train_steps:
            path = checkpoint_path(out_dir, result.steps_done)
            save_checkpoint(path, trainer, result.steps_done)
            result.checkpoints.append(path)
            callbacks.on_checkpoint(path, result.steps_done)
