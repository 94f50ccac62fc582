"""What `loba push DIR` uploads, read from a run folder before anything touches the network: the slider, the
run file, loss.csv and its curve, the newest preview grid and the evaluation (metrics.json, report.html, grid)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ConfigError

_STEP_SLIDER = re.compile(r"^slider-\d{6}(-ema)?\.safetensors$")  # save_every_n_steps' files, not the final slider
EVAL_FOLDERS = ("eval", ".")  # `loba eval --out DIR/eval`, or an evaluation written into the run folder itself


@dataclass(frozen=True)
class RunBundle:
    folder: Path
    slider: Path
    metadata: dict[str, str]
    run_file: Optional[Path] = None
    loss_csv: Optional[Path] = None
    preview: Optional[Path] = None  # the newest samples/step-NNNNNN.png, else the evaluation's grid.png
    metrics: Optional[dict] = None
    eval_files: tuple[Path, ...] = ()  # metrics.json, report.html, grid.png of the evaluation

    @property
    def losses(self) -> list[float]:
        if self.loss_csv is None:
            return []
        import csv

        with open(self.loss_csv, newline="") as handle:
            return [float(row["loss"]) for row in csv.DictReader(handle) if row.get("loss") not in (None, "")]


def find_slider(folder: Path, slider: Optional[Path] = None) -> Path:
    """The run's final slider: `slider` when given, else slider.safetensors, else the one other top-level
    .safetensors that is not a step file (a run with output_name)."""
    if slider is not None:
        if not Path(slider).is_file():
            raise ConfigError("--slider", f"{slider} does not exist; name the slider file of the run")
        return Path(slider)
    if not folder.is_dir():
        raise ConfigError("DIR", f"{folder} is not a folder; give the output folder of `loba train` (--out DIR)")
    if (folder / "slider.safetensors").is_file():
        return folder / "slider.safetensors"
    finals = sorted(p for p in folder.glob("*.safetensors") if not _STEP_SLIDER.match(p.name))
    if len(finals) == 1:
        return finals[0]
    if not finals:
        raise ConfigError("DIR", f"{folder} holds no slider (.safetensors); push the folder `loba train --out` wrote "
                                 "after the run ended")
    raise ConfigError("--slider", f"{folder} holds several sliders ({', '.join(p.name for p in finals)}); pick one with --slider")


def read_bundle(folder: Path, slider: Optional[Path] = None, run_file: Optional[Path] = None) -> RunBundle:
    """Everything a push of `folder` would upload; bad input is a ConfigError and nothing is read from the network."""
    folder = Path(folder)
    path = find_slider(folder, slider)
    metadata = _slider_metadata(path)
    if run_file is not None and not Path(run_file).is_file():
        raise ConfigError("--run-file", f"{run_file} does not exist")
    run_file = Path(run_file) if run_file else _find_run_file(folder)
    samples = sorted((folder / "samples").glob("step-*.png"))
    metrics, eval_files = _evaluation(folder)
    grid = next((p for p in eval_files if p.name == "grid.png"), None)
    return RunBundle(folder, path, metadata, run_file, _file(folder / "loss.csv"), samples[-1] if samples else grid,
                     metrics, eval_files)


def _slider_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for a file that is not one
        raise ConfigError("DIR", f"{path} is not a readable slider file ({exc})") from exc


def _find_run_file(folder: Path) -> Optional[Path]:
    for name in ("run.toml", "run.json"):
        if (folder / name).is_file():
            return folder / name
    return None


def _evaluation(folder: Path) -> tuple[Optional[dict], tuple[Path, ...]]:
    for sub in EVAL_FOLDERS:
        metrics = folder / sub / "metrics.json"
        if metrics.is_file():
            files = tuple(p for p in (metrics, folder / sub / "report.html", folder / sub / "grid.png") if p.is_file())
            try:
                return json.loads(metrics.read_text()), files
            except json.JSONDecodeError as exc:
                raise ConfigError("DIR", f"{metrics} is not valid JSON ({exc}); rerun `loba eval` or remove it") from exc
    return None, ()


def _file(path: Path) -> Optional[Path]:
    return path if path.is_file() else None
