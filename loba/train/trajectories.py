"""The trajectory cache: partially denoised latents reused across steps instead of re-denoised every step.

LECO re-runs k CFG denoise steps from fresh noise at every training step (85-90% of its forward work).
One full trajectory passes through every grid point, so storing it yields an x_t for every k at once.
The cache keeps `size` trajectories per (pair, resolution); a step draws one of them and reads x_t at its
k, and a new trajectory (from the step's own noise draw) replaces the oldest every `refresh_every` uses.
Amortized denoise cost per step: about T / refresh_every model calls instead of k ~ T / 2.

With denoise_with_adapter on, a cached trajectory was made by the adapter as it was then (slightly stale);
with it off, x_t does not depend on the adapter and the cache only trades sample diversity for speed.
Its state (trajectories, counters, its generator) is part of the checkpoint, so resume stays exact.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import torch

Key = tuple[int, int, int]  # (pair index, height, width)


class TrajectoryCache:
    def __init__(self, size: int, refresh_every: int, seed: int):
        self.size, self.refresh_every = int(size), max(1, int(refresh_every))
        self.pools: dict[Key, deque] = {}
        self.uses_since_refresh: dict[Key, int] = {}
        self.generator = torch.Generator().manual_seed(int(seed) + 0x7A1)  # its own stream: the plan's draws stay as without cache
        self.trajectories_made = 0

    def x_t(self, key: Key, k: int, make: Callable[[int], list[torch.Tensor]]) -> torch.Tensor:
        """x at grid index k. `make(n)` returns n new trajectories [K, B, C, h, w] (entry i = x at grid index
        i + 1), the first from the step's own noise: the whole pool at a key's first use, in one batched
        denoise (cheaper per trajectory than one by one), then one per refresh."""
        pool = self.pools.setdefault(key, deque(maxlen=self.size))
        uses = self.uses_since_refresh.get(key, 0)
        if len(pool) < self.size or uses >= self.refresh_every:
            made = make(self.size - len(pool) if len(pool) < self.size else 1)
            pool.extend(reversed(made))  # the step's own trajectory last, so it is the one used now
            self.trajectories_made += len(made)
            self.uses_since_refresh[key] = 0
            chosen = pool[-1]  # a new trajectory is used at once, so no denoise work is ever wasted
        else:
            chosen = pool[int(torch.randint(len(pool), (1,), generator=self.generator))]
        self.uses_since_refresh[key] = self.uses_since_refresh.get(key, 0) + 1
        return chosen[k - 1]

    def state_dict(self) -> dict:
        return {"pools": {",".join(map(str, key)): list(pool) for key, pool in self.pools.items()},
                "uses": {",".join(map(str, key)): n for key, n in self.uses_since_refresh.items()},
                "generator": self.generator.get_state(), "made": self.trajectories_made}

    def load_state_dict(self, state: dict) -> None:
        def key(text: str) -> Key:
            a, b, c = (int(v) for v in text.split(","))
            return a, b, c

        self.pools = {key(k): deque(v, maxlen=self.size) for k, v in state["pools"].items()}
        self.uses_since_refresh = {key(k): int(n) for k, n in state["uses"].items()}
        self.generator.set_state(state["generator"])
        self.trajectories_made = int(state["made"])
