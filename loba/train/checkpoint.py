"""Checkpoint files: the trainer's state_dict() on disk, written atomically and read back safely.

Every random draw of training comes from the trainer's own generator, so its state is all the RNG
state there is; resuming continues exactly (on CPU, the same final weights as an uninterrupted run).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..sliders.atomic import atomic_write

FORMAT = "loba-checkpoint"
FORMAT_VERSION = 1
_CHECKPOINT = re.compile(r"^step-(\d+)\.pt$")  # exactly: never a temp file (.step-N.pt.loba-....tmp) or a stray copy


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step-{step:06d}.pt"


def list_checkpoints(out_dir: Path) -> list[Path]:
    """The run's checkpoint files, by step."""
    folder = Path(out_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m[1]), path) for path in folder.iterdir() if (m := _CHECKPOINT.match(path.name)) and path.is_file()]
    return [path for _, path in sorted(found)]


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def write_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    atomic_write(path, lambda handle: torch.save(payload, handle))
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        # weights_only: a checkpoint handed to --resume must not be able to run code.
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise ConfigError("resume", f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError("resume", f"{path} is not a LOBA checkpoint (expected one written by save_every_n_steps)")
    return state
