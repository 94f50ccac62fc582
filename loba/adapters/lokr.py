"""LoKr (LyCORIS): dW = kron(w1, w2a @ w2b) * alpha / rank, a Kronecker product of a small full block and a
rank-r block, with LyCORIS's factorization of the layer's sizes.

File keys lokr_w1 [out_l, in_m], lokr_w2_a [out_k, r], lokr_w2_b [r, in_n*kh*kw], alpha: what ComfyUI's
LoKr adapter and A1111's network_lokr read (their scale is alpha / rank when w2 is factored, as here).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import AdapterFileError
from .lora import ADAPTERS
from .weight_delta import WeightDeltaModule


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """LyCORIS's split of `dimension` into m <= n, m * n = dimension, as close to a square as `factor` allows."""
    if factor > 0 and dimension % factor == 0:
        m, n = factor, dimension // factor
        return (n, m) if m > n else (m, n)
    factor = dimension if factor < 0 else factor
    m, n = 1, dimension
    while m < n:
        new_m = m + 1
        while dimension % new_m:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > m + n or new_m > factor:
            break
        m, n = new_m, new_n
    return (n, m) if m > n else (m, n)


class LoKrModule(WeightDeltaModule):
    algo = "lokr"
    STATE_KEYS = ("lokr_w1", "lokr_w2_a", "lokr_w2_b", "alpha")

    def __init__(self, base: nn.Module, rank: int, alpha: float):
        super().__init__(base, rank, alpha)
        out_l, out_k = factorization(self.out_features)
        in_m, in_n = factorization(self.weight_shape[1])
        self._build((out_l, in_m), out_k, in_n)
        self.reset_parameters()

    def _build(self, w1_shape: tuple[int, int], out_k: int, in_n: int) -> None:
        kernel = math.prod(self.weight_shape[2:])
        self.lokr_w1 = nn.Parameter(torch.empty(w1_shape, dtype=torch.float32))
        self.lokr_w2_a = nn.Parameter(torch.empty(out_k, self.rank, dtype=torch.float32))
        self.lokr_w2_b = nn.Parameter(torch.empty(self.rank, in_n * kernel, dtype=torch.float32))

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.lokr_w1, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.lokr_w2_a, a=math.sqrt(5))
        nn.init.zeros_(self.lokr_w2_b)

    def adopt_shapes(self, tensors: dict[str, torch.Tensor], name: str) -> None:
        """Another trainer's factorization (its lokr_w1 shape): rebuild the blocks to hold that file."""
        w1 = tensors.get("lokr_w1")
        if w1 is None or w1.ndim != 2 or tuple(w1.shape) == tuple(self.lokr_w1.shape):
            return
        out_l, in_m = w1.shape
        if self.out_features % out_l or self.weight_shape[1] % in_m:
            raise AdapterFileError(f"module '{name}': lokr_w1 {tuple(w1.shape)} does not divide the layer "
                                   f"{self.weight_shape}")
        device = self.lokr_w1.device
        self._build((out_l, in_m), self.out_features // out_l, self.weight_shape[1] // in_m)
        self.to(device)

    def delta_weight(self, base: nn.Module | None = None) -> torch.Tensor:
        w2 = self.lokr_w2_a @ self.lokr_w2_b
        return (torch.kron(self.lokr_w1, w2) * self.scale).reshape(self.weight_shape)


@ADAPTERS.register("lokr")
def make_lokr(base: nn.Module, rank: int, alpha: float) -> LoKrModule:
    return LoKrModule(base, rank, alpha)
