"""Checkpoint files: the trainer's state_dict() on disk, written atomically and read back safely.

Every random draw of training comes from the trainer's own generator, so its state is all the RNG
state there is; resuming continues exactly (on CPU, the same final weights as an uninterrupted run).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ..sliders.atomic import atomic_write
from .checkpoint_read import read_state

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
    return read_state(Path(path), FORMAT, FORMAT_VERSION)  # every failure a ConfigError('resume', ...) with the fix
