"""The trainer: everything one run changes (adapter, optimizer, schedule, loss scaler, RNG, trajectory
cache) and the optimizer step. It owns its state: state_dict() / load_state_dict() are what a checkpoint
holds, so the checkpoint module only reads and writes files."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
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
from .distributed import SINGLE, World
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
    world: World = SINGLE  # data-parallel: this process's rank and the process count (distributed.py)
    stop_requested: Callable[[], bool] = lambda: False  # this process's host stop request, shared in the all_reduce
    stop_agreed: bool = False  # after a step with several processes: some process asked to stop

    @classmethod
    def build(cls, backend: ModelBackend, network: AdapterNetwork, prompts: PromptSet, config: TrainConfig,
              world: World = SINGLE) -> Trainer:
        configure_regularization(network, config)
        step = SliderStep(backend, network, prompts, config, backend.encode_prompts(prompts.all_prompts()))
        optimizer = build_optimizer(network.param_groups(config.optimizer.learning_rate), config.optimizer)
        scheduler = build_scheduler(optimizer, config.optimizer, config.max_train_steps)
        fp16 = config.mixed_precision == "fp16" or backend.dtype == torch.float16
        scaler = torch.amp.GradScaler(backend.device.type, enabled=fp16)
        return cls(backend, network, step, optimizer, scheduler, torch.Generator().manual_seed(config.seed), config,
                   scaler, prompts_fingerprint(prompts), world=world)

    def one_step(self, clock: PhaseClock) -> tuple[float, StepResult]:
        """One optimizer step: gradient_accumulation_steps draws, each this process's rows of the plan, their
        gradients averaged over the draws and (one all_reduce) over the processes, then clipped and applied."""
        rng = self._rng_state()
        draws = self.config.gradient_accumulation_steps
        self.optimizer.zero_grad(set_to_none=True)
        try:
            self.step.progress = self.steps_done / max(self.config.max_train_steps, 1)
            results = [self._draw(clock, draws) for _ in range(draws)]
        except StepAborted:
            # A stop inside the denoise: nothing was learned yet, so undo the step's random draws too and a
            # checkpoint of this state resumes exactly as if the step had never started.
            self._set_rng_state(rng)
            self.optimizer.zero_grad(set_to_none=True)
            raise
        result = _mean_result(results)
        with clock("all_reduce"):
            self.stop_agreed = self._all_reduce(result)
        with clock("backward"):
            norm = self._unscale_and_clip()
        first = results[0]
        where = f"at timestep {first.timestep} (pair {self.step.pairs[first.pair_index].name or first.pair_index})"
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

    def _draw(self, clock: PhaseClock, draws: int) -> StepResult:
        """One draw of the step: the full plan from the shared generator (every process draws the same), this
        process's rows of it trained, its gradient added with weight 1 / draws."""
        plan = self.step.plan(self.generator)
        rows = self.world.rows(plan.noise.shape[0]) if self.world.size > 1 else None
        result = self.step.run(plan, clock, rows)
        with clock("backward"):
            # With gradient checkpointing the adapter hooks run again inside backward and read the
            # network's multiplier then: nothing may change it between the student forward and here.
            self.scaler.scale(result.loss / draws).backward()
        return result

    def _all_reduce(self, result: StepResult) -> bool:
        """Adapter gradients, the logged losses and the stop flag averaged over the processes in one all_reduce;
        True when any process was asked to stop (all of them then stop after this same step)."""
        if self.world.size == 1:
            return False
        # Every process must send the same buffer: a parameter without a gradient here (module_dropout skipped its
        # layer in this process only) sends zeros, as DDP does.
        for param in self.network.parameters():
            if param.requires_grad and param.grad is None:
                param.grad = torch.zeros_like(param)
        grads = [p.grad for p in self.network.parameters() if p.requires_grad]
        stop = torch.tensor([1.0 if self.stop_requested() else 0.0], device=result.main.device)
        losses = torch.stack([result.loss.detach().float().reshape(()), result.main, result.preservation, stop[0]])
        self.world.mean_([*grads, losses])
        result.loss, result.main, result.preservation = losses[0], losses[1], losses[2]
        return bool(losses[3] > 0)

    def _unscale_and_clip(self) -> torch.Tensor:
        self.scaler.unscale_(self.optimizer)
        max_norm = self.config.optimizer.max_grad_norm
        return torch.nn.utils.clip_grad_norm_(self.network.parameters(), max_norm if max_norm > 0 else float("inf"))

    def _rng_state(self) -> tuple:
        cache = self.step.cache
        return self.generator.get_state(), None if cache is None else cache.generator.get_state()

    def _set_rng_state(self, state: tuple) -> None:
        self.generator.set_state(state[0])
        if state[1] is not None:
            self.step.cache.generator.set_state(state[1])

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


def _mean_result(results: list[StepResult]) -> StepResult:
    """The draws of one optimizer step as one result: mean losses; the first draw's timestep and pair are logged."""
    if len(results) == 1:
        return results[0]
    mean = lambda values: torch.stack([v.detach().float().reshape(()) for v in values]).mean()  # noqa: E731
    first = results[0]
    return StepResult(mean([r.loss for r in results]), mean([r.main for r in results]),
                      mean([r.preservation for r in results]), first.timestep, first.pair_index)
