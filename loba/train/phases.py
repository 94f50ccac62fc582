"""Wall time of a training step's phases, measured by the step itself (hosts and benchmarks read it
from StepReport.phases instead of patching the step)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch

PHASES = ("denoise", "teachers", "student_forward", "backward", "all_reduce", "optimizer", "canaries")


class PhaseClock:
    """Seconds per phase of the current step. With `sync` (benchmarks on a GPU) each phase waits for
    the device, so queued kernels are charged to the phase that launched them."""

    def __init__(self, device: torch.device, sync: bool = False):
        self.sync = sync and device.type == "cuda"
        self.seconds: dict[str, float] = {}

    def _wait(self) -> None:
        if self.sync:
            torch.cuda.synchronize()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self._wait()
        started = time.perf_counter()
        try:
            yield
        finally:
            self._wait()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def take(self) -> dict[str, float]:
        """This step's phases (every phase present, 0 for one that did not run); starts the next step."""
        seconds, self.seconds = {name: self.seconds.get(name, 0.0) for name in PHASES}, {}
        return seconds
