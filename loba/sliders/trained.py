"""A trained slider: what a run returns, and the one way it becomes a file (validated, atomic, with LOBA's
metadata), whichever host asked for it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..adapters import AdapterNetwork
from ..adapters.targeting import TargetingReport
from ..adapters.text_encoder import kohya_namer
from ..config import TrainConfig
from ..dtypes import dtype_named
from ..models.backend import ModelBackend
from ..prompts import PromptSet
from .kohya import SliderFile, network_metadata, slider_tensors, write_slider_file
from .metadata import slider_metadata


@dataclass
class TrainedSlider:
    network: AdapterNetwork
    backend: ModelBackend
    config: TrainConfig
    prompts: PromptSet
    steps_done: int
    stopped: bool
    report: Optional[TargetingReport] = None
    loss_rows: list[dict] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    step_files: list[Path] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    stop_reason: str = ""  # set when the run stopped itself (the canary drift budget), not on a host's request
    calibration: Optional[dict] = None  # calibrate_strength's record (raw effect, applied scale), in the metadata
    init_report: Optional[object] = None  # an instant slider's: the initializer's (ClosedFormReport: layers, seconds, error)

    @property
    def losses(self) -> list[float]:
        return [float(row["loss"]) for row in self.loss_rows]

    def metadata(self, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
        """kohya's ss_* fields and LOBA's (config, prompts, version), plus the host's own (workflow ...)."""
        extra = {"loba_stopped_early": str(self.stopped).lower(), **(extra or {})}
        if self.calibration is not None:  # absent when off: an uncalibrated file is byte for byte what it was
            extra = {"loba_calibration": json.dumps(self.calibration, sort_keys=True), **extra}
        return {**network_metadata(self.network),
                **slider_metadata(self.config, self.prompts, self.backend, self.steps_done, extra)}

    def slider_file(self, path: str = "", extra: Optional[dict[str, str]] = None) -> SliderFile:
        tensors = self.backend.file_tensors(slider_tensors(self.network, kohya_namer(self.backend)))
        return SliderFile(tensors, self.metadata(extra), str(path))

    def save(self, path: Path, extra: Optional[dict[str, str]] = None) -> Path:
        """Write the slider at the config's save_precision, atomically (and its EMA beside it when the run kept
        one, see save_ema); returns the slider's path."""
        path = save_slider_file(self.slider_file(str(path), extra), Path(path), self.config.save_precision)
        self.save_ema(path, extra)
        return path

    def save_ema(self, path: Path, extra: Optional[dict[str, str]] = None) -> Optional[Path]:
        """NAME-ema.safetensors beside NAME.safetensors: the EMA of the adapter weights (None without an EMA)."""
        ema = self.network.ema
        if ema is None:
            return None
        path = ema_path(path)
        tensors = self.backend.file_tensors(slider_tensors(self.network, self.backend.kohya_name, state=ema.module_state()))
        metadata = self.metadata({**(extra or {}), "loba_ema_decay": str(ema.decay)})
        return save_slider_file(SliderFile(tensors, metadata, str(path)), path, self.config.save_precision)


def ema_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}-ema{path.suffix}")


def save_slider_file(slider: SliderFile, path: Path, precision: str = "float") -> Path:
    """The one write path of slider files: checked like a loaded file, written atomically (folders made)."""
    return write_slider_file(Path(path), slider.tensors, slider.metadata, dtype_named(precision, "save_precision"))


def save_trained_slider(path: Path, network: AdapterNetwork, backend: ModelBackend, config: TrainConfig, prompts: PromptSet,
                        steps: int, extra_metadata: Optional[dict[str, str]] = None) -> Path:
    """A network trained outside a run (tests, notebooks) saved the same way as a run's slider."""
    return TrainedSlider(network, backend, config, prompts, steps, False).save(path, extra_metadata)
