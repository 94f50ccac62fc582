"""Optimizers and learning-rate schedules, both extensible through their registries."""

from .lion import Lion
from .optimizers import OPTIMIZERS, build_optimizer, optimizer_kwargs
from .schedules import SCHEDULES, build_scheduler, lr_factor, validate_names

__all__ = ["OPTIMIZERS", "SCHEDULES", "Lion", "build_optimizer", "build_scheduler", "lr_factor", "optimizer_kwargs",
           "validate_names"]
