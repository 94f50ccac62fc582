"""The per-step log a cluster user reads: OUT/loss.jsonl (one JSON object per optimizer step, always, flushed as it
is written, so `tail -f` follows a run) and, with the run file's `log_with`, accelerate's trackers (tensorboard,
wandb) when their optional packages are installed. Only the writing process (rank 0) keeps one."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError
from ..registry import Registry
from ..sliders.atomic import atomic_write_text


@dataclass(frozen=True)
class TrackerKind:
    package: str  # the optional package it needs (checked before any model work)
    make: Callable[[str, Path], Any]  # (run name, logging dir) -> an accelerate GeneralTracker


TRACKERS: Registry[TrackerKind] = Registry("tracker", field="log_with")


def _tensorboard(run_name: str, logging_dir: Path):
    from accelerate.tracking import TensorBoardTracker

    return TensorBoardTracker(run_name, str(logging_dir))


def _wandb(run_name: str, logging_dir: Path):
    from accelerate.tracking import WandBTracker

    return WandBTracker(run_name, dir=str(logging_dir))


TRACKERS.register("tensorboard", TrackerKind("tensorboard", _tensorboard))
TRACKERS.register("wandb", TrackerKind("wandb", _wandb))


def check_trackers(log_with: tuple[str, ...]) -> None:
    """Before any model work: every tracker named is known and its package (and accelerate) is importable."""
    for name in log_with:
        if name not in TRACKERS:
            raise ConfigError("log_with", f"unknown tracker {name!r}; use {', '.join(TRACKERS.names())} (or none)")
        for package in ("accelerate", TRACKERS.get(name).package):
            if importlib.util.find_spec(package) is None:
                raise ConfigError("log_with", f"{name} logging needs the optional package {package!r}, which is not "
                                              f"installed: pip install {package}, or remove {name} from log_with "
                                              "(loss.csv and loss.jsonl are written either way)")


class StepLog:
    """loss.jsonl, plus the trackers. Values logged are the loss.csv row's (the same names)."""

    def __init__(self, out_dir: Path, log_with: tuple[str, ...] = (), run_name: str = "loba",
                 logging_dir: Optional[Path] = None):
        self.path = Path(out_dir) / "loss.jsonl"
        self.kinds, self.run_name = log_with, run_name
        self.logging_dir = Path(logging_dir) if logging_dir is not None else Path(out_dir) / "logs"
        self.trackers: list[Any] = []
        self.handle = None

    def start(self, kept_rows: list[dict], config: dict) -> None:
        """A resumed run keeps the lines of the steps it does not redo (the same rows loss.csv keeps)."""
        kept = {int(row["step"]) for row in kept_rows}
        lines = [line for line in _read_lines(self.path) if json.loads(line).get("step") in kept]
        atomic_write_text(self.path, "".join(line + "\n" for line in lines))
        self.handle = open(self.path, "a", encoding="utf-8")
        for name in self.kinds:
            tracker = TRACKERS.get(name).make(self.run_name, self.logging_dir)
            tracker.start()
            tracker.store_init_configuration(config)
            self.trackers.append(tracker)

    def log(self, row: dict) -> None:
        if self.handle is not None:
            self.handle.write(json.dumps(row, sort_keys=True, default=float) + "\n")
            self.handle.flush()
        values = {key: value for key, value in row.items() if isinstance(value, (int, float)) and key != "step"}
        for tracker in self.trackers:
            tracker.log(values, step=int(row["step"]))

    def close(self) -> None:
        try:
            for tracker in self.trackers:
                tracker.finish()
        finally:
            self.trackers = []
            if self.handle is not None:
                self.handle.close()
                self.handle = None


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            json.loads(line)
        except ValueError:  # a line cut by a kill: dropped
            continue
        lines.append(line)
    return lines
