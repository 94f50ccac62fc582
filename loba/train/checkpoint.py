"""Resumable training state: adapter, optimizer, schedule, step and the trainer's RNG state.

Every random draw of training comes from one dedicated generator, so its state is all the RNG state
there is; the global torch RNG is neither used nor touched.

Resuming from a checkpoint continues exactly: on CPU, the same final weights as a run that was
never interrupted with the same seed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..atomic import atomic_write
from ..config import TrainConfig
from ..errors import ConfigError

FORMAT = "loba-checkpoint"
FORMAT_VERSION = 1


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step-{step:06d}.pt"


def save_checkpoint(path: Path, trainer, step: int) -> None:
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": step,
        "network": trainer.network.module_state(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "generator": trainer.generator.get_state(),
        "config": trainer.config.to_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path, network, optimizer, scheduler, generator: torch.Generator, config: TrainConfig) -> int:
    """Restore the state in place and return the number of steps already done."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=False)
    except (OSError, RuntimeError) as exc:
        raise ConfigError("resume", f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError("resume", f"{path} is not a LOBA checkpoint (expected one written by save_every_n_steps)")
    if set(state["network"]) != set(network.names):
        raise ConfigError("resume", f"{path} was trained on other layers than the current targeting settings; "
                          "use the same network options as the run that wrote it")
    network.load_module_state(state["network"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    step = int(state["step"])
    if step >= config.max_train_steps:
        raise ConfigError("max_train_steps", f"the checkpoint is at step {step}; raise max_train_steps above it to continue")
    return step
