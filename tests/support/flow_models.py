"""A fake tiny flow-matching backend: a velocity predictor simple enough that every step can be checked by hand,
with one Linear named as in diffusers' Flux (transformer_blocks.0.attn.to_q) so adapters train on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn

from loba.diffusion.schedule import NoiseSchedule
from loba.models.backend import Conditioning, ModelBackend, SizeConditioning
from loba.models.flux_naming import FluxNames
from loba.models.flux_schedule import flux_sigmas

CHANNELS = 4


class _Attention(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.to_q = nn.Linear(channels, channels)


class _Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.attn = _Attention(channels)


class TinyFlowDenoiser(nn.Module):
    """u(x, sigma, c) = to_q(x) over channels + mean(c) + sigma: depends on the latent, the prompt and the time."""

    def __init__(self, channels: int = CHANNELS, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.transformer_blocks = nn.ModuleList([_Block(channels)])
            with torch.no_grad():
                self.transformer_blocks[0].attn.to_q.weight.mul_(0.5)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = self.transformer_blocks[0].attn.to_q(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return h + context.mean(dim=(1, 2)).view(-1, 1, 1, 1) + sigma.view(-1, 1, 1, 1)


def prompt_conditioning(prompt: str) -> Conditioning:
    """A deterministic batch-1 conditioning per prompt (no tokenizer needed)."""
    gen = torch.Generator().manual_seed(sum(map(ord, prompt)) + len(prompt))
    return Conditioning(torch.randn(1, 3, 8, generator=gen), torch.randn(1, 8, generator=gen))


class TinyFlowBackend(ModelBackend):
    prediction_type = "flow"
    family = "flux"
    latent_channels = CHANNELS
    vae_scale_factor = 8

    def __init__(self, shift: float = 1.15, seed: int = 0):
        self.model = TinyFlowDenoiser(seed=seed)
        self.schedule = NoiseSchedule.flow(flux_sigmas(shift))
        self._names = FluxNames(self.model)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def denoiser(self) -> nn.Module:
        return self.model

    def alphas_cumprod(self) -> torch.Tensor:
        return self.schedule.alphas_cumprod

    def noise_schedule(self) -> NoiseSchedule:
        return self.schedule

    def encode_prompts(self, prompts: Sequence[str]) -> dict[str, Conditioning]:
        return {p: prompt_conditioning(p) for p in dict.fromkeys(prompts)}

    def predict(self, x: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning,
                size: Optional[SizeConditioning] = None) -> torch.Tensor:
        sigma = self.schedule.sigmas[timesteps.long().cpu()].float().to(x.device)
        return self.model(x, sigma, cond.context)

    @property
    def native_resolution(self) -> int:
        return 64

    def kohya_name(self, module_name: str) -> str:
        return self._names.kohya_name(module_name)

    def module_name_from_kohya(self, kohya_key: str) -> Optional[str]:
        return self._names.module_name_from_kohya(kohya_key)

    def file_tensors(self, tensors):
        return self._names.to_file(tensors)

    def model_tensors(self, tensors):
        return self._names.from_file(tensors)
