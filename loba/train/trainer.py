"""The trainer: everything one run changes (adapter, optimizer, schedule, loss scaler, RNG, trajectory
cache) and the optimizer step. It owns its state: state_dict() / load_state_dict() are what a checkpoint
holds, so the checkpoint module only reads and writes files."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import torch

from ..adapters import AdapterNetwork
from ..config import TrainConfig
from ..config.migrations import config_from_stored
from ..errors import ConfigError, StepAborted, TrainingAborted
from ..models.backend import ModelBackend
from ..optim import build_optimizer, build_scheduler
from ..prompts import PromptSet
from .phases import PhaseClock
from .regularization import configure_regularization, load_regularization_state, regularization_state
from .step import SliderStep, StepResult

# Options that may change between a run and its resumption without changing what is trained.
# Canaries only watch (their noise and prompts are their own), so they may change too.
RESUMABLE_CHANGES = {"max_train_steps", "save_every_n_steps", "save_precision", "canary_prompts", "canary_every",
                     "canary_drift_budget"}


def prompts_fingerprint(prompts: PromptSet) -> str:
    return hashlib.sha256(json.dumps(prompts.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


def _training_identity(config: dict) -> dict:
    return {key: value for key, value in config.items() if key not in RESUMABLE_CHANGES}


@dataclass
class Trainer:
    backend: ModelBackend
    network: AdapterNetwork
    step: SliderStep
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    config: TrainConfig
    scaler: torch.amp.GradScaler
    fingerprint: str
    steps_done: int = 0

    @classmethod
    def build(cls, backend: ModelBackend, network: AdapterNetwork, prompts: PromptSet, config: TrainConfig) -> Trainer:
        configure_regularization(network, config)
        step = SliderStep(backend, network, prompts, config, backend.encode_prompts(prompts.all_prompts()))
        optimizer = build_optimizer(network.param_groups(config.optimizer.learning_rate), config.optimizer)
        scheduler = build_scheduler(optimizer, config.optimizer, config.max_train_steps)
        fp16 = config.mixed_precision == "fp16" or backend.dtype == torch.float16
        scaler = torch.amp.GradScaler(backend.device.type, enabled=fp16)
        return cls(backend, network, step, optimizer, scheduler, torch.Generator().manual_seed(config.seed), config,
                   scaler, prompts_fingerprint(prompts))

    def one_step(self, clock: PhaseClock) -> tuple[float, StepResult]:
        rng = self._rng_state()
        try:
            self.step.progress = self.steps_done / max(self.config.max_train_steps, 1)
            plan = self.step.plan(self.generator)
            result = self.step.run(plan, clock)
        except StepAborted:
            # A stop inside the denoise: nothing was learned yet, so undo the step's random draws too and a
            # checkpoint of this state resumes exactly as if the step had never started.
            self._set_rng_state(rng)
            raise
        where = f"at timestep {plan.timestep} (pair {plan.pair.name or plan.pair_index})"
        with clock("backward"):
            norm = self._backward(result.loss)
        # The step's one host read of device values (a sync): both finite checks and the logged losses together.
        # A non-finite loss only made non-finite adapter gradients so far; no optimizer step has used them.
        _, _, loss, norm_value = result.read(result.loss, norm)
        if not math.isfinite(loss):
            raise TrainingAborted(f"the loss became {loss} {where}; lower learning_rate or guidance_scale")
        if not self.scaler.is_enabled() and not math.isfinite(norm_value):
            # fp16 loss scaling skips such steps by design; anywhere else a non-finite gradient is a failure.
            raise TrainingAborted(f"the gradient became non-finite {where}; lower learning_rate or use bf16/fp32")
        lr = self.base_learning_rate()
        with clock("optimizer"):
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
        if self.network.ema is not None:
            self.network.ema.update(self.network)
        self.steps_done += 1
        return lr, result

    def _rng_state(self) -> tuple:
        cache = self.step.cache
        return self.generator.get_state(), None if cache is None else cache.generator.get_state()

    def _set_rng_state(self, state: tuple) -> None:
        self.generator.set_state(state[0])
        if state[1] is not None:
            self.step.cache.generator.set_state(state[1])

    def _backward(self, loss: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        # With gradient checkpointing the adapter hooks run again inside backward and read the
        # network's multiplier then: nothing may change it between the student forward and here.
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.config.optimizer.max_grad_norm
        return torch.nn.utils.clip_grad_norm_(self.network.parameters(), max_norm if max_norm > 0 else float("inf"))

    def base_learning_rate(self) -> float:
        group = self.optimizer.param_groups[0]
        return group["lr"] / group.get("lr_multiplier", 1.0)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly, plus what identifies the training (config, prompts)."""
        cache = self.step.cache
        return {"step": self.steps_done, "network": self.network.module_state(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "generator": self.generator.get_state(), "config": json.loads(self.config.to_json()),
                "prompts_fingerprint": self.fingerprint, "trajectory_cache": None if cache is None else cache.state_dict(),
                **regularization_state(self.network)}

    def load_state_dict(self, state: dict[str, Any], source: str = "the checkpoint") -> None:
        """Continue from `state`; refuses one written for other training options, prompts or layers."""
        self._check_same_training(state, source)
        self.network.load_module_state(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        if self.step.cache is not None and state.get("trajectory_cache") is not None:
            self.step.cache.load_state_dict(state["trajectory_cache"])
        load_regularization_state(self.network, state)
        self.steps_done = int(state["step"])

    def _check_same_training(self, state: dict[str, Any], source: str) -> None:
        # The stored config may be from an older LOBA: compare it in the current version's form.
        stored = json.loads(config_from_stored(state["config"], where=source).to_json())
        saved, current = _training_identity(stored), _training_identity(json.loads(self.config.to_json()))
        if saved != current:
            changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
            raise ConfigError("resume", f"{source} was written with other training options ({', '.join(changed)} differ); "
                              "resume with the options of the run that wrote it (only max_train_steps, save_every_n_steps "
                              "save_precision and the canary options may change)")
        if state["prompts_fingerprint"] != self.fingerprint:
            raise ConfigError("resume", f"{source} was written for other prompts; resume with the same prompt set")
        if set(state["network"]) != set(self.network.names):
            raise ConfigError("resume", f"{source} was trained on other layers than the current targeting settings")
        step = int(state["step"])
        if step >= self.config.max_train_steps:
            raise ConfigError("max_train_steps", f"the checkpoint is at step {step}; raise max_train_steps above it to continue")
