"""loss.csv: one row per optimizer step, the one format every host writes (CLI, demo, node checkpoints)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from ..sliders.atomic import atomic_write_text
from .callbacks import StepReport
from .phases import PHASES

LOSS_COLUMNS = ("step", "loss", "main_loss", "preservation_loss", "learning_rate", "timestep", "pair_index", "seconds",
                *(f"{phase}_seconds" for phase in PHASES), "canary_drift")


def report_row(report: StepReport) -> dict:
    row = {name: getattr(report, name) for name in LOSS_COLUMNS if hasattr(report, name)}
    row.update({f"{phase}_seconds": report.phases.get(phase, 0.0) for phase in PHASES})
    return row


def read_rows(path: Path, up_to_step: int) -> list[dict]:
    """The rows of an earlier run's loss.csv up to a step (a resumed run keeps the steps it does not redo)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["step"]) <= up_to_step]


def write_rows(path: Path, rows: Iterable[dict]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOSS_COLUMNS, extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(Path(path), buffer.getvalue())
