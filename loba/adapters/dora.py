"""DoRA (weight-decomposed LoRA): W' = m * (W + s*up@down) / ||W + s*up@down||, the norm over each input
column; the layer's update is W' - W, and a strength k gives W + k * (W' - W).

That is ComfyUI's weight_decompose (comfy/weight_adapter/base.py) for a dora_scale of shape [1, in(, 1, 1)],
the one orientation ComfyUI, A1111 (network.py) and LyCORIS (wd_on_out=False) compute alike: ComfyUI's other
branch divides by the norm of the original weight, which no trainer does, so that layout would not round-trip.
File keys: lora_down.weight, lora_up.weight, alpha, dora_scale. m starts at ||W|| + eps, ComfyUI's denominator,
so a fresh adapter gives back W exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .lora import ADAPTERS
from .weight_delta import WeightDeltaModule

EPS = torch.finfo(torch.float32).eps  # ComfyUI's, for the float32 weight it patches


def column_norm(weight: torch.Tensor) -> torch.Tensor:
    """||W||_c over every input column, shaped [1, in(, 1, 1)] (ComfyUI's computation, op for op)."""
    return (weight.transpose(0, 1).reshape(weight.shape[1], -1).norm(dim=1, keepdim=True)
            .reshape(weight.shape[1], *[1] * (weight.dim() - 1)).transpose(0, 1))


class DoRAModule(WeightDeltaModule):
    algo = "dora"
    STATE_KEYS = ("lora_down.weight", "lora_up.weight", "alpha", "dora_scale")

    def __init__(self, base: nn.Module, rank: int, alpha: float):
        super().__init__(base, rank, alpha)
        kernel = tuple(self.weight_shape[2:])
        if self.conv is not None:
            stride, padding, dilation = self.conv
            self.lora_down = nn.Conv2d(self.weight_shape[1], self.rank, kernel, stride, padding, dilation,
                                       bias=False, dtype=torch.float32)
            self.lora_up = nn.Conv2d(self.rank, self.out_features, 1, bias=False, dtype=torch.float32)
        else:
            self.lora_down = nn.Linear(self.weight_shape[1], self.rank, bias=False, dtype=torch.float32)
            self.lora_up = nn.Linear(self.rank, self.out_features, bias=False, dtype=torch.float32)
        with torch.no_grad():
            magnitude = column_norm(base.weight.detach().to("cpu", torch.float32)) + EPS
        self.dora_scale = nn.Parameter(magnitude)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)

    def lora_diff(self) -> torch.Tensor:
        up, down = self.lora_up.weight, self.lora_down.weight
        return (up.flatten(1) @ down.flatten(1)).reshape(self.weight_shape) * self.scale

    def delta_weight(self, base: nn.Module | None) -> torch.Tensor:
        if base is None:
            raise ValueError("DoRA's update depends on the base layer's weight: pass the base module")
        weight = base.weight.detach().to(self.dora_scale.device, torch.float32)
        merged = weight + self.lora_diff()
        return merged * (self.dora_scale / (column_norm(merged) + EPS)) - weight


@ADAPTERS.register("dora")
def make_dora(base: nn.Module, rank: int, alpha: float) -> DoRAModule:
    return DoRAModule(base, rank, alpha)
