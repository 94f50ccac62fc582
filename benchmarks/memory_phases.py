"""Which phase of a training step holds the memory peak: benchmarks.memory_run's build and training, with
the current RSS (CPU) or allocated bytes (CUDA) sampled per phase of the step's PhaseClock.

python -m benchmarks.memory_phases --backend diffusers --size full --resolution 512 --steps 1 [memory_run flags]

Prints, per phase (denoise, teachers, student_forward, backward, optimizer), the highest current RSS seen
while it ran minus the RSS after the build. Unlike the peak RSS of memory_run (getrusage, which never goes
down) this sees memory freed between phases, so it tells where a peak comes from. CPU sampling every 2 ms
can miss a transient shorter than that; glibc keeps some freed blocks mapped, so later phases can read high.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import torch

from benchmarks import memory_run

PAGE = os.sysconf("SC_PAGE_SIZE")


def current_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class PhaseSampler:
    """A thread that keeps, per phase label, the highest current memory seen while the label was set."""

    def __init__(self, device: torch.device):
        self.device, self.label, self.peaks, self._stop = device, "build", {}, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.note()
            time.sleep(0.002)

    def note(self) -> None:
        label, now = self.label, current_bytes(self.device)
        self.peaks[label] = max(self.peaks.get(label, 0), now)

    @contextlib.contextmanager
    def running(self):
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def patch_phase_clock(engine, sampler: PhaseSampler) -> None:
    """Every PhaseClock phase also labels the sampler (and, on CUDA, reads the allocator's peak in it)."""
    phases = importlib.import_module(f"{engine.__name__}.train.phases")
    original = phases.PhaseClock.__call__

    @contextlib.contextmanager
    def labelled(clock, name):
        previous, sampler.label = sampler.label, name
        if sampler.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(sampler.device)
        try:
            with original(clock, name):
                yield
        finally:
            if sampler.device.type == "cuda":
                sampler.peaks[name] = max(sampler.peaks.get(name, 0), torch.cuda.max_memory_allocated(sampler.device))
            sampler.note()
            sampler.label = previous
    phases.PhaseClock.__call__ = labelled


def main(argv=None) -> None:
    args = memory_run.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    sampler = PhaseSampler(device)
    with sampler.running():
        build = memory_run.comfy_backend if args.backend == "comfy" else memory_run.diffusers_backend
        backend, engine, unet = build(args, device, memory_run.DTYPES[args.precision])
        backend.encode_prompts = memory_run.fake_embeddings(engine, device, memory_run.DTYPES[args.precision])
        loaded = current_bytes(device)
        sampler.label = "setup"
        patch_phase_clock(engine, sampler)
        trained = memory_run.train_once(args, backend, engine)
    over = {name: peak - loaded for name, peak in sampler.peaks.items()}
    report = {"backend": args.backend, "resolution": args.resolution, "loaded_bytes": loaded,
              "peak_rss_bytes": memory_run.rss_bytes(), "phase_peak_over_loaded_bytes": over, **trained}
    Path(args.out).write_text(json.dumps(report, indent=1))
    for name, value in over.items():
        print(f"{name:<16}{value / 1e9:>8.2f} GB over loaded")
    print(f"peak RSS over loaded {(report['peak_rss_bytes'] - loaded) / 1e9:.2f} GB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
