"""Data-parallel training through accelerate: which process this is, its share of a step's rows, and the one
all-reduce per optimizer step.

Every process holds the same trainer generator and draws the same full step plan; process r trains rows
[r * B / N, (r + 1) * B / N) of the plan's batch B. The loss is a mean over rows, so the mean over processes of
the per-process gradients is the one-process gradient of the whole batch: N processes train what one process
with the same batch trains (same seed), and a checkpoint resumes with any process count.

Why not Accelerator.prepare (DDP) on the adapters: DDP's reducer is driven by calls to the wrapped module's
forward, but LOBA's adapter network is never called; its LoRA deltas are forward hooks inside the frozen base.
So the adapter gradients (and the step's loss and stop flag, in the same buffer) are averaged by one coalesced
all_reduce through accelerate's PartialState (its process group: gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..errors import ConfigError, SpecError

WORLD_ENV = "WORLD_SIZE"  # set by accelerate launch / torchrun in every process they start


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    state: Any = None  # accelerate's PartialState when size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes: the slider, loss.csv, loss.jsonl, checkpoints, previews."""
        return self.rank == 0

    @property
    def device(self) -> Optional[torch.device]:
        """This process's device when launched on GPUs (cuda:LOCAL_RANK); None on the CPU or alone."""
        if self.state is None or self.state.device.type == "cpu":
            return None
        return self.state.device

    def rows(self, batch: int) -> slice:
        """This process's rows of a batch of `batch` (checked to divide by check_world)."""
        share = batch // self.size
        return slice(self.rank * share, (self.rank + 1) * share)

    def mean_(self, tensors: list[torch.Tensor]) -> None:
        """Every tensor replaced in place by its mean over the processes: one all_reduce of one flat buffer."""
        if self.size == 1 or not tensors:
            return
        flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
        torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
        flat /= self.size
        offset = 0
        for tensor in tensors:
            n = tensor.numel()
            tensor.copy_(flat[offset:offset + n].view_as(tensor))
            offset += n

    def barrier(self) -> None:
        if self.size > 1:
            self.state.wait_for_everyone()


SINGLE = World()


def current_world() -> World:
    """The world this process was launched into: alone, or one of WORLD_SIZE processes started by accelerate launch
    (or torchrun). accelerate is imported only then, so one-process runs never need it."""
    if int(os.environ.get(WORLD_ENV, "1")) <= 1:
        return SINGLE
    try:
        from accelerate import PartialState
    except ImportError:
        raise ConfigError("num_processes", "this process was launched as one of several (WORLD_SIZE is set) but "
                                           "accelerate is not installed; install it (pip install accelerate)") from None
    # cpu=True where no GPU exists: accelerate's launcher leaves the group uninitialized otherwise (MULTI_CPU, gloo).
    state = PartialState(cpu=not torch.cuda.is_available())
    return World(state.process_index, state.num_processes, state) if state.num_processes > 1 else SINGLE


def check_world(prompts, config, world: World) -> None:
    """Before any model work: every pair's batch splits evenly over the processes (no row is dropped or repeated,
    which is what keeps N processes equal to one)."""
    if world.size == 1:
        return
    for pair in prompts.pairs():
        if pair.batch_size % world.size:
            raise SpecError(pair.name or f"pair {pair.target!r}", "batch_size",
                            f"batch_size {pair.batch_size} does not split over {world.size} processes: each process "
                            f"trains batch_size / {world.size} rows of every step; set batch_size to a multiple of "
                            f"{world.size} (the effective batch stays batch_size), or launch fewer processes")
