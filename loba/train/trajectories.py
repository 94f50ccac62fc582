"""The trajectory cache: partially denoised latents reused across steps instead of re-denoised every step.

LECO re-runs k CFG denoise steps from fresh noise at every training step (85-90% of its forward work).
One full trajectory passes through every grid point, so storing it yields an x_t for every k at once.
The cache keeps `size` trajectories per (pair, resolution) bucket; a step draws one of them and reads
x_t at its k, and a new trajectory (from the step's own noise draw) replaces the oldest every
`refresh_every` uses. Amortized denoise cost per step: about T / refresh_every model calls instead of k ~ T / 2.

Memory: trajectories are stored in the model's dtype (the model only ever sees x_t cast to it, so
nothing is lost) and the whole cache stays within `budget_bytes`: a bucket holds only as many
trajectories as fit, and the least recently used buckets are evicted (re-made on their next use).
A 1024px SDXL trajectory of a 40-step grid is about 5 MB in bf16, so the default budget (512 MiB,
sized for a 12 GB card next to SDXL's weights) holds some twenty buckets of four.

With denoise_with_adapter on, a cached trajectory was made by the adapter as it was then (slightly stale);
with it off, x_t does not depend on the adapter and the cache only trades sample diversity for speed.
Its state (trajectories, counters, its generator) is part of the checkpoint, so resume stays exact; the
budget bounds what a checkpoint carries too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Optional

import torch

Key = tuple[int, int, int]  # (pair index, height, width)
MIB = 1 << 20


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class TrajectoryCache:
    def __init__(self, size: int, refresh_every: int, seed: int, dtype: torch.dtype = torch.float32,
                 budget_bytes: int = 0, device: Optional[torch.device] = None):
        self.size, self.refresh_every = int(size), max(1, int(refresh_every))
        self.dtype, self.budget_bytes, self.device = dtype, int(budget_bytes), device  # budget 0: no limit
        self.pools: dict[Key, deque] = {}  # least recently used bucket first
        self.uses_since_refresh: dict[Key, int] = {}
        self.generator = torch.Generator().manual_seed(int(seed) + 0x7A1)  # its own stream: the plan's draws stay as without cache
        self.trajectories_made = 0
        self.evictions = 0

    @property
    def nbytes(self) -> int:
        return sum(_nbytes(t) for pool in self.pools.values() for t in pool)

    def capacity(self, trajectory_bytes: int) -> int:
        """Trajectories one bucket may hold: `size`, fewer when the budget cannot take them (at least 1)."""
        if not self.budget_bytes or trajectory_bytes <= 0:
            return self.size
        return max(1, min(self.size, self.budget_bytes // trajectory_bytes))

    def x_t(self, key: Key, k: int, make: Callable[[int], list[torch.Tensor]], trajectory_bytes: int = 0) -> torch.Tensor:
        """x at grid index k (float32). `make(n)` returns n new trajectories [K, B, C, h, w] (entry i = x at
        grid index i + 1), the first from the step's own noise: the whole bucket at a key's first use, in
        one batched denoise (cheaper per trajectory than one by one), then one per refresh.
        `trajectory_bytes` (in the cache's dtype) sizes the bucket before anything is made."""
        pool = self._touch(key, trajectory_bytes)
        uses = self.uses_since_refresh.get(key, 0)
        if len(pool) < pool.maxlen or uses >= self.refresh_every:
            made = make(pool.maxlen - len(pool) if len(pool) < pool.maxlen else 1)
            pool.extend(t.to(self.dtype).contiguous() for t in reversed(made))  # the step's own trajectory last
            self.trajectories_made += len(made)
            self.uses_since_refresh[key] = 0
            chosen = pool[-1]  # a new trajectory is used at once, so no denoise work is ever wasted
            self._fit_budget(key)
        else:
            chosen = pool[int(torch.randint(len(pool), (1,), generator=self.generator))]
        self.uses_since_refresh[key] = self.uses_since_refresh.get(key, 0) + 1
        return chosen[k - 1].to(torch.float32)

    def _touch(self, key: Key, trajectory_bytes: int) -> deque:
        """The key's bucket, now the most recently used; made (sized to the budget) at first use."""
        pool = self.pools.pop(key, None)
        if pool is None:
            pool = deque(maxlen=self.capacity(trajectory_bytes))
        self.pools[key] = pool
        return pool

    def _fit_budget(self, keep: Key) -> None:
        """Evict least recently used buckets (never `keep`), then `keep`'s oldest, until within budget."""
        if not self.budget_bytes:
            return
        while self.nbytes > self.budget_bytes and len(self.pools) > 1:
            victim = next(key for key in self.pools if key != keep)
            del self.pools[victim]
            self.uses_since_refresh.pop(victim, None)
            self.evictions += 1
        pool = self.pools[keep]
        if self.nbytes > self.budget_bytes and len(pool) > 1:
            while self.nbytes > self.budget_bytes and len(pool) > 1:
                pool.popleft()  # the one just made (used now) is last and stays
            self.pools[keep] = deque(pool, maxlen=len(pool))  # and the bucket is not refilled past the budget

    def state_dict(self) -> dict:
        return {"pools": {",".join(map(str, key)): list(pool) for key, pool in self.pools.items()},
                "capacity": {",".join(map(str, key)): pool.maxlen for key, pool in self.pools.items()},
                "uses": {",".join(map(str, key)): n for key, n in self.uses_since_refresh.items()},
                "generator": self.generator.get_state(), "made": self.trajectories_made, "evictions": self.evictions}

    def load_state_dict(self, state: dict) -> None:
        def key(text: str) -> Key:
            a, b, c = (int(v) for v in text.split(","))
            return a, b, c

        capacity = state.get("capacity", {})  # absent in checkpoints of LOBA before the budget: `size` each
        self.pools = {key(k): deque((t.to(self.device or t.device, self.dtype) for t in v), maxlen=capacity.get(k, self.size))
                      for k, v in state["pools"].items()}
        self.uses_since_refresh = {key(k): int(n) for k, n in state["uses"].items()}
        self.generator.set_state(state["generator"])
        self.trajectories_made = int(state["made"])
        self.evictions = int(state.get("evictions", 0))
