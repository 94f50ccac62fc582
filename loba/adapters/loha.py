"""LoHa (LyCORIS): dW = (w1a @ w1b) * (w2a @ w2b) * alpha / rank, the Hadamard product of two rank-r products.

File keys hada_w1_a [out, r], hada_w1_b [r, in*kh*kw], hada_w2_a, hada_w2_b, alpha: what ComfyUI's LoHa
adapter and A1111's network_hada read. LyCORIS's init: w2a zero, so a fresh adapter changes nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from .lora import ADAPTERS
from .weight_delta import WeightDeltaModule


class LoHaModule(WeightDeltaModule):
    algo = "loha"
    STATE_KEYS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha")

    def __init__(self, base: nn.Module, rank: int, alpha: float):
        super().__init__(base, rank, alpha)
        for name, shape in (("hada_w1_a", (self.out_features, self.rank)), ("hada_w1_b", (self.rank, self.in_flat)),
                            ("hada_w2_a", (self.out_features, self.rank)), ("hada_w2_b", (self.rank, self.in_flat))):
            setattr(self, name, nn.Parameter(torch.empty(shape, dtype=torch.float32)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.hada_w1_b, std=1.0)
        nn.init.normal_(self.hada_w1_a, std=0.1)
        nn.init.normal_(self.hada_w2_b, std=1.0)
        nn.init.zeros_(self.hada_w2_a)

    def delta_weight(self, base: nn.Module | None = None) -> torch.Tensor:
        product = (self.hada_w1_a @ self.hada_w1_b) * (self.hada_w2_a @ self.hada_w2_b)
        return (product * self.scale).reshape(self.weight_shape)


@ADAPTERS.register("loha")
def make_loha(base: nn.Module, rank: int, alpha: float) -> LoHaModule:
    return LoHaModule(base, rank, alpha)
