"""One layer the slider adapts (its own module: both the network and the targeting rules use it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetSpec:
    """One layer to adapt: dotted module name, adapter kind ("lora" | "locon"), rank, alpha, lr multiplier."""

    name: str
    kind: str
    rank: int
    alpha: float
    lr_multiplier: float = 1.0
