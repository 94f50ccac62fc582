"""What a run keeps on disk while it trains, as a callback in front of the host's own: the loss log,
step slider files next to the checkpoints, and the previews."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..config import TrainConfig
from ..models.backend import ModelBackend
from ..prompts import PromptSet
from ..sliders.atomic import atomic_write
from ..sliders.trained import TrainedSlider
from .callbacks import StepReport, TrainCallbacks, TrainStart
from .loss_log import read_rows, report_row, write_rows
from .preview import PreviewPolicy, PreviewSampler
from .step_log import StepLog


def step_slider_path(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / f"slider-{step:06d}.safetensors"


def sample_path(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "samples" / f"step-{step:06d}.png"


class RunRecorder(TrainCallbacks):
    def __init__(self, backend: ModelBackend, prompts: PromptSet, config: TrainConfig, host: TrainCallbacks,
                 out_dir: Optional[Path], sampler: Optional[PreviewSampler], policy: PreviewPolicy, save_samples: bool,
                 step_log: Optional[StepLog] = None):
        self.backend, self.prompts, self.config, self.host = backend, prompts, config, host
        self.step_log = step_log if out_dir is not None else None  # loss.jsonl and the trackers
        self.out_dir, self.sampler, self.policy, self.save_samples = out_dir, sampler, policy, save_samples
        self.sync_phases, self.stop_exceptions = host.sync_phases, host.stop_exceptions
        self.rows: list[dict] = []
        self.step_files: list[Path] = []
        self.samples: list[Path] = []
        self.network = None

    def on_start(self, start: TrainStart) -> None:
        # A resumed run keeps the rows of the steps it does not redo.
        if start.start_step and self.out_dir is not None:
            self.rows = read_rows(self.out_dir / "loss.csv", start.start_step)
        if self.step_log is not None:
            self.step_log.start(self.rows, _flat_values(self.config.to_dict()))
        self.host.on_start(start)

    def on_step(self, report: StepReport, network) -> None:
        self.network = network
        self.rows.append(report_row(report))
        if self.step_log is not None:
            self.step_log.log(self.rows[-1])
        # The preview first, so a host that shows the step (the progress bar) shows it with its picture.
        if self.sampler is not None and self.policy.due(report.step, report.total_steps) and not self.host.should_stop():
            image = self.sampler(network, report.step, self.host.should_stop)
            if self.save_samples and self.out_dir is not None:
                self.samples.append(_save_png(image, sample_path(self.out_dir, report.step)))
            self.host.on_preview(image, report.step)
        self.host.on_step(report, network)

    def on_checkpoint(self, path: Path, step: int) -> None:
        every = self.config.save_every_n_steps
        if self.network is not None and every and step % every == 0:
            slider = TrainedSlider(self.network, self.backend, self.config, self.prompts, step, False)
            self.step_files.append(slider.save(step_slider_path(self.out_dir, step)))
        self.write_losses()
        self.host.on_checkpoint(path, step)

    def on_preview(self, image, step: int) -> None:
        self.host.on_preview(image, step)

    def should_stop(self) -> bool:
        return self.host.should_stop()

    def on_end(self, steps_done: int, stopped: bool, error) -> None:
        try:
            self.write_losses()
        finally:
            try:
                if self.step_log is not None:
                    self.step_log.close()
            finally:
                self.host.on_end(steps_done, stopped, error)

    def write_losses(self) -> None:
        if self.out_dir is not None:
            write_rows(self.out_dir / "loss.csv", self.rows)


def _save_png(image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda handle: image.save(handle, format="PNG"))


def _flat_values(config: dict, prefix: str = "") -> dict:
    """The config as the flat scalar table trackers store as hyperparameters (nested tables joined by dots)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and key in ("network", "optimizer", "loss", "noise", "sampling"):
            flat.update(_flat_values(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value, default=list)
    return flat
