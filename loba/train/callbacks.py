"""How a host follows and steers training: progress, checkpoints, stop requests.

The CLI prints a progress bar from these; the ComfyUI seam turns them into progress, previews and
websocket events and polls cancel through should_stop().
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class TrainStart:
    total_steps: int
    start_step: int
    num_modules: int
    num_parameters: int
    num_pairs: int


@dataclass(frozen=True)
class StepReport:
    step: int  # 1-based count of optimizer steps done
    total_steps: int
    loss: float
    main_loss: float
    preservation_loss: float
    learning_rate: float
    timestep: int
    pair_index: int
    seconds: float  # wall time of this step
    phases: Mapping[str, float] = field(default_factory=dict)  # seconds per phase (loba.train.phases.PHASES)
    canary_drift: Optional[float] = None  # loba.train.canaries: measured after this step, or None


class TrainCallbacks:
    """No-op base: override what you need."""

    #: Benchmarks on a GPU set this: each phase of StepReport.phases then waits for the device.
    sync_phases: bool = False
    #: Exceptions a host's own calls raise to cancel (ComfyUI's InterruptProcessingException, raised from inside a
    #: progress update or a VAE decode): wherever one lands in a step, preview or checkpoint, the run ends as
    #: stopped with its finished steps kept, like a should_stop() request.
    stop_exceptions: tuple[type[BaseException], ...] = ()

    def on_start(self, start: TrainStart) -> None:
        pass

    def on_step(self, report: StepReport, network) -> None:
        pass

    def on_checkpoint(self, path: Path, step: int) -> None:
        pass

    def on_preview(self, image, step: int) -> None:
        """A sample grid of the slider at the preview weights (a PIL image), when the run asked for previews."""

    def should_stop(self) -> bool:
        return False

    def on_end(self, steps_done: int, stopped: bool, error: Optional[BaseException]) -> None:
        pass
