"""Resumable training state: adapter, optimizer, schedule, step and the trainer's RNG state.

Every random draw of training comes from one dedicated generator, so its state is all the RNG state
there is; the global torch RNG is neither used nor touched.

Resuming from a checkpoint continues exactly: on CPU, the same final weights as a run that was
never interrupted with the same seed.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch

from ..errors import ConfigError
from ..sliders.atomic import atomic_write

FORMAT = "loba-checkpoint"
FORMAT_VERSION = 1


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step-{step:06d}.pt"


# Options that may change between a run and its resumption without changing what is trained.
RESUMABLE_CHANGES = {"max_train_steps", "save_every_n_steps", "save_precision"}


def fingerprint(prompts) -> str:
    return hashlib.sha256(json.dumps(prompts.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


def _training_identity(config: dict) -> dict:
    return {key: value for key, value in config.items() if key not in RESUMABLE_CHANGES}


def save_checkpoint(path: Path, trainer, step: int) -> None:
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": step,
        "network": trainer.network.module_state(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "generator": trainer.generator.get_state(),
        "config": json.loads(trainer.config.to_json()),
        "prompts_fingerprint": trainer.prompts_fingerprint,
        "trajectory_cache": None if trainer.step.cache is None else trainer.step.cache.state_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: torch.save(state, handle))


def _read(path: Path) -> dict:
    try:
        # weights_only: a checkpoint handed to --resume must not be able to run code.
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise ConfigError("resume", f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError("resume", f"{path} is not a LOBA checkpoint (expected one written by save_every_n_steps)")
    return state


def _check_same_training(state: dict, trainer, path: Path) -> None:
    saved, current = _training_identity(state["config"]), _training_identity(json.loads(trainer.config.to_json()))
    if saved != current:
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        raise ConfigError("resume", f"{path} was written with other training options ({', '.join(changed)} differ); "
                          "resume with the options of the run that wrote it (only max_train_steps, save_every_n_steps "
                          "and save_precision may change)")
    if state["prompts_fingerprint"] != trainer.prompts_fingerprint:
        raise ConfigError("resume", f"{path} was written for other prompts; resume with the same prompt set")
    if set(state["network"]) != set(trainer.network.names):
        raise ConfigError("resume", f"{path} was trained on other layers than the current targeting settings")


def load_checkpoint(path: Path, trainer) -> int:
    """Restore the trainer's state in place and return the number of steps already done."""
    state = _read(path)
    _check_same_training(state, trainer, path)
    trainer.network.load_module_state(state["network"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.scaler.load_state_dict(state["scaler"])
    trainer.generator.set_state(state["generator"])
    if trainer.step.cache is not None and state.get("trajectory_cache") is not None:
        trainer.step.cache.load_state_dict(state["trajectory_cache"])
    step = int(state["step"])
    if step >= trainer.config.max_train_steps:
        raise ConfigError("max_train_steps", f"the checkpoint is at step {step}; raise max_train_steps above it to continue")
    return step
