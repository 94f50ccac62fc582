"""Optimizer registry: name -> factory(param_groups, lr, weight_decay, **optimizer_args) -> Optimizer.

Extend it with `OPTIMIZERS.register("myopt", factory)`; the name then works in `optimizer = "myopt"`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..config.train_config import OptimizerConfig
from ..errors import ConfigError
from ..registry import Registry
from .lion import Lion

OPTIMIZERS: Registry = Registry("optimizer", field="optimizer")

# These come from their own config fields; accepting them in optimizer_args would make two sources of truth.
_RESERVED_ARGS = ("lr", "weight_decay", "params")


def _adamw(param_groups, lr, weight_decay, **kwargs):
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay, **kwargs)


def _adam(param_groups, lr, weight_decay, **kwargs):
    return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, **kwargs)


def _sgd(param_groups, lr, weight_decay, **kwargs):
    kwargs.setdefault("momentum", 0.9)
    return torch.optim.SGD(param_groups, lr=lr, weight_decay=weight_decay, **kwargs)


def _lion(param_groups, lr, weight_decay, **kwargs):
    return Lion(param_groups, lr=lr, weight_decay=weight_decay, **kwargs)


def _prodigy(param_groups, lr, weight_decay, **kwargs):
    try:
        import prodigyopt
    except ImportError:
        raise ConfigError("optimizer", "prodigy needs the package prodigyopt: pip install prodigyopt") from None
    return prodigyopt.Prodigy(param_groups, lr=lr, weight_decay=weight_decay, **kwargs)


def _adamw8bit(param_groups, lr, weight_decay, **kwargs):
    try:
        import bitsandbytes
    except ImportError:
        raise ConfigError("optimizer", "adamw8bit needs the package bitsandbytes: pip install bitsandbytes") from None
    return bitsandbytes.optim.AdamW8bit(param_groups, lr=lr, weight_decay=weight_decay, **kwargs)


for _name, _factory in (("adamw", _adamw), ("adam", _adam), ("sgd", _sgd), ("lion", _lion),
                        ("prodigy", _prodigy), ("adamw8bit", _adamw8bit)):
    OPTIMIZERS.register(_name, _factory)


def optimizer_kwargs(cfg: OptimizerConfig) -> dict[str, Any]:
    """cfg.optimizer_args as keyword arguments; TOML/JSON lists become tuples (betas=(0.9, 0.99))."""
    args = cfg.optimizer_args
    if not isinstance(args, Mapping):
        raise ConfigError("optimizer_args", "must be a table of keyword arguments, e.g. {betas = [0.9, 0.99]}")
    for key in _RESERVED_ARGS:
        if key in args:
            raise ConfigError("optimizer_args", f"'{key}' is set by its own option (learning_rate, weight_decay), not here")
    return {str(k): tuple(v) if isinstance(v, list) else v for k, v in args.items()}


def build_optimizer(param_groups: list[dict], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """Build cfg.optimizer over param_groups ([{"params": [...], "lr": lr}], multipliers already applied)."""
    factory = OPTIMIZERS.get(cfg.optimizer)
    kwargs = optimizer_kwargs(cfg)
    try:
        return factory(param_groups, float(cfg.learning_rate), float(cfg.weight_decay), **kwargs)
    except ConfigError:
        raise
    except TypeError as exc:
        if "keyword argument" not in str(exc):
            raise
        raise ConfigError("optimizer_args", f"{cfg.optimizer} does not accept {sorted(kwargs)}: {exc}") from exc
    except ValueError as exc:
        if not kwargs:
            raise
        # With user arguments present, a rejected value is almost always one of them (e.g. betas out of range).
        raise ConfigError("optimizer_args", f"{cfg.optimizer} rejected {kwargs}: {exc}") from exc
