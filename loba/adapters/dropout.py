"""Adapter dropout as kohya's sd-scripts defines it (network dropout, rank dropout, module dropout), drawn
from the network's own seeded generator so a checkpoint holds the state and resuming stays exact.

Only the student forward sees it: the hooks ask `active()` (the network in training mode with autograd on),
and teachers (multiplier 0), the partial denoise and previews run without autograd, so they never drop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class AdapterDropout:
    dropout: float = 0.0  # on the rank activations (LoRA/LoCon) or the update's output (LoHa/LoKr/DoRA)
    rank_dropout: float = 0.0  # whole rank channels (LoRA) or output rows of the weight update, rescaled
    module_dropout: float = 0.0  # the whole adapter skipped for one forward
    seed: int = 0
    _generators: dict = field(default_factory=dict, repr=False)
    _pending_state: dict = field(default_factory=dict, repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.dropout or self.rank_dropout or self.module_dropout)

    def generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            gen = torch.Generator(device=device).manual_seed(self.seed)
            if key in self._pending_state:
                gen.set_state(self._pending_state.pop(key))
            self._generators[key] = gen
        return self._generators[key]

    def _rand(self, shape, device: torch.device) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator(device), device=device)

    def skip_module(self, device: torch.device) -> bool:
        return bool(self.module_dropout) and float(self._rand((1,), device)) < self.module_dropout

    def activations(self, h: torch.Tensor) -> torch.Tensor:
        """Inverted dropout on every element (what F.dropout does, from this generator)."""
        if not self.dropout:
            return h
        keep = self._rand(h.shape, h.device) >= self.dropout
        return h * keep / (1.0 - self.dropout)

    def rank_channels(self, h: torch.Tensor) -> torch.Tensor:
        """kohya's rank dropout: per sample, drop whole rank channels (dim -1 of Linear, dim 1 of Conv2d)."""
        if not self.rank_dropout:
            return h
        channel_dim = 1 if h.ndim == 4 else h.ndim - 1
        shape = [h.shape[0] if h.ndim > 1 else 1] + [1] * (h.ndim - 1)
        shape[channel_dim] = h.shape[channel_dim]
        keep = self._rand(shape, h.device) >= self.rank_dropout
        return h * keep / (1.0 - self.rank_dropout)

    def weight_rows(self, w: torch.Tensor) -> torch.Tensor:
        """LyCORIS's rank dropout for weight-update adapters: whole output rows of the update."""
        if not self.rank_dropout:
            return w
        keep = self._rand((w.shape[0],) + (1,) * (w.ndim - 1), w.device) >= self.rank_dropout
        return w * keep / (1.0 - self.rank_dropout)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {key: gen.get_state() for key, gen in self._generators.items()} | dict(self._pending_state)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Generators are made on first use on their device: a state waits there until then."""
        self._generators.clear()
        self._pending_state = dict(state)
