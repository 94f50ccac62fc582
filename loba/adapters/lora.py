"""One LoRA (or LoCon) adapter for one base Linear/Conv2d, in kohya's layout and initialization."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..registry import Registry


def adapter_kind(module: nn.Module) -> str | None:
    """ "lora" for Linear and 1x1 Conv2d, "locon" for kxk Conv2d, None for anything else.

    isinstance (not type equality) so that subclasses such as comfy.ops' Linear/Conv2d count.
    """
    if isinstance(module, nn.Linear):
        return "lora"
    if isinstance(module, nn.Conv2d):
        return "lora" if tuple(module.kernel_size) == (1, 1) else "locon"
    return None


def no_autocast(device: torch.device):
    # The adapter's math stays float32 even when the model forward runs under autocast.
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


class LoRAModule(nn.Module):
    """delta(x) = up(down(x)) * alpha / rank, with float32 master weights whatever the model dtype."""

    algo = "lora"
    STATE_KEYS = ("lora_down.weight", "lora_up.weight", "alpha")

    def __init__(self, base: nn.Module, rank: int, alpha: float):
        super().__init__()
        kind = adapter_kind(base)
        if kind is None:
            raise TypeError(f"LoRA needs an nn.Linear or nn.Conv2d base module, got {type(base).__name__}")
        rank = int(rank)
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.kind = kind
        self.rank = rank
        if isinstance(base, nn.Conv2d):
            if base.groups != 1:
                raise TypeError("LoCon does not support grouped convolutions")
            self.lora_down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding,
                                       base.dilation, bias=False, dtype=torch.float32)
            self.lora_up = nn.Conv2d(rank, base.out_channels, 1, bias=False, dtype=torch.float32)
        else:
            self.lora_down = nn.Linear(base.in_features, rank, bias=False, dtype=torch.float32)
            self.lora_up = nn.Linear(rank, base.out_features, bias=False, dtype=torch.float32)
        # kohya treats alpha 0 (or None) as alpha = rank; store the effective value so every loader agrees.
        alpha = float(alpha) if alpha else float(rank)
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """kohya's init: random down, zero up, so a fresh adapter changes nothing."""
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)

    @property
    def scale(self) -> torch.Tensor:
        return self.alpha / self.rank

    def delta_float(self, x: torch.Tensor) -> torch.Tensor:
        """The update in float32 (the hook scales it before casting, keeping precision)."""
        with no_autocast(x.device):
            return self.lora_up(self.lora_down(x.float())) * self.scale

    def delta_scaled(self, x: torch.Tensor, factor: float, base: nn.Module | None = None, drop=None) -> torch.Tensor:
        """delta_float(x) * factor with one full-size multiply and, for Linear, no module-call overhead: the
        hook runs on every adapted layer of every forward, so this is the hot path. `drop` (an AdapterDropout,
        training only): kohya's dropout and rank dropout on the rank activations."""
        with no_autocast(x.device):
            x = x.float()
            if drop is not None:
                h = drop.rank_channels(drop.activations(self.lora_down(x)))
                return self.lora_up(h) * (self.scale * factor)
            if isinstance(self.lora_down, nn.Linear):
                h = F.linear(F.linear(x, self.lora_down.weight), self.lora_up.weight)
            else:
                h = self.lora_up(self.lora_down(x))
            return h * (self.scale * factor)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        return self.delta_float(x).to(x.dtype)

    def fits(self, base: nn.Module) -> bool:
        """True when this adapter's shapes match `base` (guards attaching to the wrong model)."""
        if isinstance(base, nn.Conv2d) and isinstance(self.lora_down, nn.Conv2d):
            return (base.in_channels, base.out_channels, tuple(base.kernel_size)) == (
                self.lora_down.in_channels, self.lora_up.out_channels, tuple(self.lora_down.kernel_size))
        if isinstance(base, nn.Linear) and isinstance(self.lora_down, nn.Linear):
            return (base.in_features, base.out_features) == (self.lora_down.in_features, self.lora_up.out_features)
        return False

    def extra_repr(self) -> str:
        return f"kind={self.kind}, rank={self.rank}, alpha={float(self.alpha):g}"


AdapterFactory = Callable[[nn.Module, int, float], LoRAModule]

ADAPTERS: Registry[AdapterFactory] = Registry("adapter", field="adapter")


@ADAPTERS.register("lora")
def make_lora(base: nn.Module, rank: int, alpha: float) -> LoRAModule:
    if adapter_kind(base) != "lora":
        raise TypeError(f"'lora' adapts Linear and 1x1 Conv2d layers, not {type(base).__name__}; use 'locon'")
    return LoRAModule(base, rank, alpha)


@ADAPTERS.register("locon")
def make_locon(base: nn.Module, rank: int, alpha: float) -> LoRAModule:
    if adapter_kind(base) != "locon":
        raise TypeError(f"'locon' adapts kxk Conv2d layers (k > 1), not {type(base).__name__}; use 'lora'")
    return LoRAModule(base, rank, alpha)
