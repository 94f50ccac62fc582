"""The model interface the trainer needs, whatever hosts the model (diffusers, ComfyUI).

A backend owns the denoiser and text encoders. The trainer only asks it to encode prompts once,
to predict at a timestep in the model's own parameterization, and for its noise schedule and
module names. Backends never hold training logic.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import nn

from ..diffusion.schedule import NoiseSchedule
from .resolution import family_resolution


@dataclass(frozen=True)
class Conditioning:
    """Text conditioning of a batch: token context and, for SDXL, the pooled embedding."""

    context: torch.Tensor
    pooled: Optional[torch.Tensor] = None

    @property
    def batch_size(self) -> int:
        return self.context.shape[0]

    def repeat(self, n: int) -> Conditioning:
        """Each row repeated n times in place (a a b b), matching repeat_interleave of latents."""
        pooled = None if self.pooled is None else self.pooled.repeat_interleave(n, dim=0)
        return Conditioning(self.context.repeat_interleave(n, dim=0), pooled)

    def to(self, device=None, dtype=None) -> Conditioning:
        pooled = None if self.pooled is None else self.pooled.to(device=device, dtype=dtype)
        return replace(self, context=self.context.to(device=device, dtype=dtype), pooled=pooled)

    @staticmethod
    def cat(items: Sequence[Conditioning]) -> Conditioning:
        context = torch.cat([c.context for c in items], dim=0)
        if any(c.pooled is None for c in items):
            return Conditioning(context, None)
        return Conditioning(context, torch.cat([c.pooled for c in items], dim=0))


@dataclass(frozen=True)
class SizeConditioning:
    """SDXL micro-conditioning in pixels: original size, crop top-left, target size (h, w)."""

    original: tuple[int, int]
    crop_top_left: tuple[int, int]
    target: tuple[int, int]

    @staticmethod
    def plain(height: int, width: int) -> SizeConditioning:
        return SizeConditioning((height, width), (0, 0), (height, width))


class ModelBackend(abc.ABC):
    """What the trainer needs from a text-to-image diffusion model."""

    #: "epsilon", "v_prediction" or "flow": the parameterization of predict(), of targets and of the loss.
    prediction_type: str = "epsilon"
    #: "sd1", "sd2" or "sdxl": decides the kohya module naming of saved files.
    family: str = "sd1"
    latent_channels: int = 4
    vae_scale_factor: int = 8

    @property
    @abc.abstractmethod
    def device(self) -> torch.device: ...

    @property
    @abc.abstractmethod
    def dtype(self) -> torch.dtype: ...

    @abc.abstractmethod
    def denoiser(self) -> nn.Module:
        """The module whose sub-modules the adapter targets (the UNet)."""

    @abc.abstractmethod
    def alphas_cumprod(self) -> torch.Tensor:
        """The discrete training schedule's cumulative alphas, float64 on CPU, one per timestep."""

    def noise_schedule(self) -> NoiseSchedule:
        """The schedule predict() runs on, in its parameterization. Flow-matching backends override this with
        NoiseSchedule.flow(their sigmas at each integer timestep); predict() takes the same integer timesteps."""
        return NoiseSchedule(self.alphas_cumprod(), self.prediction_type)

    @abc.abstractmethod
    def encode_prompts(self, prompts: Sequence[str]) -> dict[str, Conditioning]:
        """Encode each distinct prompt once; returns batch-1 conditionings on the model device."""

    @abc.abstractmethod
    def predict(self, x: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning,
                size: Optional[SizeConditioning] = None) -> torch.Tensor:
        """The model output (epsilon or v) for latents x at integer timesteps [B]."""

    @abc.abstractmethod
    def kohya_name(self, module_name: str) -> str:
        """The kohya file key stem (lora_unet_...) of a denoiser sub-module name."""

    @abc.abstractmethod
    def module_name_from_kohya(self, kohya_key: str) -> Optional[str]:
        """The denoiser sub-module name of a kohya key stem, or None when it is foreign."""

    def file_tensors(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The slider file's tensors of the adapter network's (kohya_name stems): the same for models whose file
        layout is their module layout; Flux in diffusers fuses q/k/v into kohya's qkv layers here."""
        return dict(tensors)

    def model_tensors(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The inverse of file_tensors: a LoRA file's tensors under stems module_name_from_kohya knows."""
        return dict(tensors)

    def text_encoder_modules(self) -> list[nn.Module]:
        """The text encoders a text-encoder LoRA adapts (CLIP-L; SDXL: CLIP-L, CLIP-G), in kohya's te1, te2 order.
        Empty where the host gives none: train_text_encoder is then refused."""
        return []

    def encode_prompts_trainable(self, prompts: Sequence[str]) -> dict[str, Conditioning]:
        """encode_prompts WITH autograd, through whatever adapters are hooked on the text encoders now: the
        student's conditioning when the text encoder trains (the teachers keep encode_prompts' frozen one)."""
        raise NotImplementedError(f"{type(self).__name__} cannot encode prompts for text-encoder training")

    @contextlib.contextmanager
    def text_encoder_session(self) -> Iterator[None]:
        """Around a run that trains text-encoder adapters: the encoders frozen (no gradient reaches their own
        weights) and in eval mode, both restored afterwards."""
        with _frozen(self.text_encoder_modules()):
            yield

    @property
    def native_resolution(self) -> int:
        """The side length the model was trained at: prompts that set no resolution train there."""
        return family_resolution(self.family, self.prediction_type)

    def decode(self, latents: torch.Tensor) -> Optional[torch.Tensor]:
        """Pixels [N, H, W, C] in 0..1 of latents, or None when the backend holds no decoder (previews then
        show the latent itself)."""
        return None

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Turn gradient checkpointing on or off where the model supports it."""

    def gradient_checkpointing(self) -> bool:
        """Whether gradient checkpointing is on now (so training can restore it)."""
        return False

    @contextlib.contextmanager
    def training_session(self) -> Iterator[None]:
        """Prepare the model for adapter training and restore it exactly afterwards.

        Backends whose weights are inference tensors or shared with other users swap them here.
        The default freezes the denoiser's parameters and puts it in eval mode (dropout in train
        mode would make the teachers random and resume inexact), restoring both afterwards.
        """
        with _frozen([self.denoiser()]):
            yield


@contextlib.contextmanager
def _frozen(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Parameters without grad and modules in eval mode for the block; flags and modes restored afterwards."""
    params = [p for module in modules for p in module.parameters()]
    flags = [p.requires_grad for p in params]
    modes = [(m, m.training) for module in modules for m in module.modules()]
    try:
        for p in params:
            p.requires_grad_(False)
        for module in modules:
            module.eval()
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        for module, mode in modes:
            module.training = mode
