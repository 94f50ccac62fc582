"""The common part of the LyCORIS adapters (LoHa, LoKr, DoRA): each builds a full-size weight update dW of its
base layer, and the hook adds op(x, dW) * multiplier, op being the base's own linear or convolution.

Their math is ComfyUI's and A1111's patcher formulas (comfy/weight_adapter/{loha,lokr,base}.py), so a saved
file merged by those hosts gives the same layer as the hooked adapter did in training.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .dropout import AdapterDropout
from .lora import adapter_kind, no_autocast


class WeightDeltaModule(nn.Module):
    """Base: the base layer's geometry, alpha, and the hook's delta from `delta_weight`."""

    algo = ""
    STATE_KEYS: tuple[str, ...] = ()

    def __init__(self, base: nn.Module, rank: int, alpha: float):
        super().__init__()
        kind = adapter_kind(base)
        if kind is None:
            raise TypeError(f"{self.algo} needs an nn.Linear or nn.Conv2d base module, got {type(base).__name__}")
        rank = int(rank)
        if rank < 1:
            raise ValueError(f"{self.algo} rank must be >= 1, got {rank}")
        if isinstance(base, nn.Conv2d) and base.groups != 1:
            raise TypeError(f"{self.algo} does not support grouped convolutions")
        self.kind, self.rank = kind, rank
        self.weight_shape = tuple(base.weight.shape)
        self.conv = None
        if isinstance(base, nn.Conv2d):
            self.conv = (tuple(base.stride), tuple(base.padding), tuple(base.dilation))
        self.register_buffer("alpha", torch.tensor(float(alpha) if alpha else float(rank), dtype=torch.float32))

    @property
    def scale(self) -> torch.Tensor:
        return self.alpha / self.rank

    @property
    def out_features(self) -> int:
        return self.weight_shape[0]

    @property
    def in_flat(self) -> int:
        """in_features, or in_channels * kh * kw: the columns of the flattened weight."""
        size = 1
        for dim in self.weight_shape[1:]:
            size *= dim
        return size

    def delta_weight(self, base: nn.Module | None) -> torch.Tensor:
        raise NotImplementedError

    def _op(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return F.linear(x, weight)
        stride, padding, dilation = self.conv
        return F.conv2d(x, weight, None, stride, padding, dilation)

    def delta_scaled(self, x: torch.Tensor, factor: float, base: nn.Module | None = None,
                     drop: AdapterDropout | None = None) -> torch.Tensor:
        with no_autocast(x.device):
            weight = self.delta_weight(base).to(x.device)
            if drop is not None:
                weight = drop.weight_rows(weight)
            out = self._op(x.float(), weight)
            if drop is not None:
                out = drop.activations(out)
            return out * factor

    def fits(self, base: nn.Module) -> bool:
        return adapter_kind(base) == self.kind and tuple(base.weight.shape) == self.weight_shape

    def extra_repr(self) -> str:
        return f"algo={self.algo}, kind={self.kind}, rank={self.rank}, alpha={float(self.alpha):g}"
