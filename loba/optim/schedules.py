"""Learning-rate schedule registry and the warmup-then-shape LambdaLR built from it.

A schedule is `(step, total_steps, num_cycles) -> factor in [0, 1]`, evaluated after warmup:
`step` counts from 0 at the first post-warmup step and `total_steps` is the number of post-warmup steps.
Extend it with `SCHEDULES.register("myshape", fn)`.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from ..config.train_config import OptimizerConfig
from ..registry import Registry
from .optimizers import OPTIMIZERS

SCHEDULES: Registry = Registry("learning-rate schedule", field="lr_scheduler")


def _progress(step: int, total_steps: int) -> float:
    return min(max(step / max(total_steps, 1), 0.0), 1.0)


def constant(step: int, total_steps: int, num_cycles: int) -> float:
    return 1.0


def linear(step: int, total_steps: int, num_cycles: int) -> float:
    return 1.0 - _progress(step, total_steps)


def cosine(step: int, total_steps: int, num_cycles: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * _progress(step, total_steps)))


def cosine_with_restarts(step: int, total_steps: int, num_cycles: int) -> float:
    progress = _progress(step, total_steps)
    if progress >= 1.0:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * ((max(int(num_cycles), 1) * progress) % 1.0)))


SCHEDULES.register("constant", constant)
SCHEDULES.register("linear", linear)
SCHEDULES.register("cosine", cosine)
SCHEDULES.register("cosine_with_restarts", cosine_with_restarts)
# Both are `constant`; they exist so that `lr_scheduler = "warmup"` reads naturally next to lr_warmup_steps.
SCHEDULES.register("warmup", constant)
SCHEDULES.register("constant_with_warmup", constant)


def lr_factor(step: int, cfg: OptimizerConfig, total_steps: int) -> float:
    """Multiplier of the base LR at optimizer step `step` (0-based): linear warmup, then the shape."""
    warmup = int(cfg.lr_warmup_steps)
    if step < warmup:
        # (s+1)/(warmup+1): the very first step already learns a little instead of wasting a step at lr 0.
        return (step + 1) / (warmup + 1)
    shape = SCHEDULES.get(cfg.lr_scheduler)
    return float(shape(step - warmup, max(int(total_steps) - warmup, 1), int(cfg.lr_scheduler_num_cycles)))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimizerConfig, total_steps: int) -> LambdaLR:
    """LambdaLR over cfg's warmup + schedule; its state_dict round-trips so resumed runs continue exactly."""
    SCHEDULES.get(cfg.lr_scheduler)  # fail now, not at the first step

    # A plain function (not a callable object) keeps the state_dict free of pickled code.
    def factor(step: int) -> float:
        return lr_factor(step, cfg, total_steps)

    return LambdaLR(optimizer, factor)


def validate_names(cfg) -> None:
    """Raise ConfigError for an unregistered optimizer or schedule before any model is loaded.

    Accepts an OptimizerConfig or anything with one in `.optimizer` (a TrainConfig).
    """
    nested = getattr(cfg, "optimizer", None)
    opt_cfg = nested if isinstance(nested, OptimizerConfig) else cfg
    OPTIMIZERS.get(opt_cfg.optimizer)
    SCHEDULES.get(opt_cfg.lr_scheduler)
