"""ModelBackend for diffusers' FluxTransformer2DModel (Flux.1 dev / schnell, and Flux-architecture toy models).

The trainer speaks [B, C, H, W] latents at integer timesteps 0..N-1 of an ascending sigma table (NoiseSchedule.flow);
this backend packs them into Flux's 2x2 patches (FluxPipeline._pack_latents), gives the transformer
timestep = sigma (FluxPipeline passes timesteps/1000 with timesteps = sigmas*1000; the model multiplies by 1000
again), the distilled guidance where the model embeds it, and unpacks the velocity it predicts.

Prompts are encoded by a callable (the T5 + CLIP encoders of `from_pretrained` / `from_single_file`, a stub in tests,
the toy world's own): batch-1 Conditioning(context [1, L, joint_attention_dim], pooled [1, pooled_projection_dim]).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Optional

import torch
from torch import nn

from ..diffusion.schedule import NoiseSchedule
from ..errors import ConfigError, UnsupportedModelError
from .backend import Conditioning, ModelBackend, SizeConditioning
from .flux_naming import FluxNames

EncodePrompts = Callable[[Sequence[str]], Mapping[str, Conditioning]]


def pack_latents(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, H/2 * W/2, C*4]: FluxPipeline._pack_latents."""
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, h/2 * w/2, C*4] -> [B, C, h, w] for a latent of height x width: the inverse of pack_latents."""
    b, _, channels = tokens.shape
    x = tokens.view(b, height // 2, width // 2, channels // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, channels // 4, height, width)


def image_ids(height: int, width: int, device, dtype) -> torch.Tensor:
    """[h/2 * w/2, 3] rotary position ids of the packed latent (FluxPipeline._prepare_latent_image_ids)."""
    ids = torch.zeros(height // 2, width // 2, 3)
    ids[..., 1] = torch.arange(height // 2)[:, None]
    ids[..., 2] = torch.arange(width // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


class FluxBackend(ModelBackend):
    prediction_type = "flow"

    def __init__(self, transformer: nn.Module, encode_prompts: EncodePrompts, sigmas: torch.Tensor, *,
                 vae: Optional[nn.Module] = None, guidance: Optional[float] = 3.5, device=None, dtype=None,
                 family: str = "flux", native_resolution: int = 1024, latent_channels: int = 16,
                 vae_scale_factor: int = 8, size_sigmas: Optional[Callable[[int, int], torch.Tensor]] = None):
        """size_sigmas: (height, width) px -> the sigma table of that image size (Flux-dev's resolution-dependent
        shift); with it a run at one size trains on that size's table (schedule_for_sizes), else on `sigmas`."""
        config = transformer.config
        if int(config.in_channels) != latent_channels * 4:
            raise UnsupportedModelError(f"the Flux transformer reads {config.in_channels} channels per token; packed "
                                        f"2x2 latents of {latent_channels} channels give {latent_channels * 4}")
        if bool(getattr(config, "guidance_embeds", False)) and guidance is None:
            raise ConfigError("guidance", "this Flux model (dev) embeds a distilled guidance; give one (3.5 is Flux-dev's)")
        if not getattr(config, "guidance_embeds", False) and guidance is not None:
            raise ConfigError("guidance", "this Flux model (schnell) has no guidance embedding; set guidance to None")
        self.transformer = transformer
        self._encode = encode_prompts
        self._schedule = NoiseSchedule.flow(sigmas)  # refuses a table that is not ascending in (0, 1]
        self.vae = vae
        self.guidance = guidance
        self._device = torch.device(device) if device is not None else None
        self._dtype = dtype
        self.family = family
        self._native_resolution = int(native_resolution)
        self.latent_channels = int(latent_channels)
        self.vae_scale_factor = int(vae_scale_factor)
        self._names: Optional[FluxNames] = None
        self.size_sigmas = size_sigmas

    # -- loading (flux_loading.py) ---------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_id: str, *, torch_dtype: torch.dtype = torch.bfloat16, device: str = "cpu",
                        with_vae: bool = False, guidance: Optional[float] = None, resolution: int = 1024,
                        max_sequence_length: Optional[int] = None, **kwargs) -> FluxBackend:
        """A diffusers Flux folder or hub id: FluxTransformer2DModel, CLIP-L + T5 (and their tokenizers), the
        scheduler config (its shift at `resolution`), the VAE with with_vae. guidance None: 3.5 on dev; schnell
        has no guidance input and ignores it (the constructor itself refuses a guidance there)."""
        from diffusers import FluxTransformer2DModel

        from .flux_loading import load_rest

        transformer = FluxTransformer2DModel.from_pretrained(path_or_id, subfolder="transformer", torch_dtype=torch_dtype,
                                                             **kwargs)
        return cls(transformer, **load_rest(path_or_id, transformer, torch_dtype=torch_dtype, device=device, with_vae=with_vae,
                                            guidance=guidance, resolution=resolution,
                                            max_sequence_length=max_sequence_length, kwargs=kwargs))

    @classmethod
    def from_single_file(cls, path: str, *, config: str, torch_dtype: torch.dtype = torch.bfloat16, device: str = "cpu",
                         with_vae: bool = False, guidance: Optional[float] = None, resolution: int = 1024,
                         max_sequence_length: Optional[int] = None, **kwargs) -> FluxBackend:
        """One Flux transformer checkpoint (BFL / ComfyUI keys, e.g. flux1-dev.safetensors); the text encoders, VAE
        and scheduler come from `config`, a diffusers Flux folder or hub id (its transformer config too)."""
        from diffusers import FluxTransformer2DModel

        from .flux_loading import load_rest

        transformer = FluxTransformer2DModel.from_single_file(path, config=config, subfolder="transformer",
                                                              torch_dtype=torch_dtype, **kwargs)
        return cls(transformer, **load_rest(config, transformer, torch_dtype=torch_dtype, device=device, with_vae=with_vae,
                                            guidance=guidance, resolution=resolution,
                                            max_sequence_length=max_sequence_length, kwargs=kwargs))

    def text_encoder_modules(self) -> list[nn.Module]:
        return []  # Flux's T5 + CLIP are not trained by LOBA (train_text_encoder is refused)

    # -- the interface ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._device or next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype or next(self.transformer.parameters()).dtype

    def pin_compute_dtype(self, dtype: torch.dtype) -> None:
        """The dtype the transformer computes in, whatever its parameters are stored in (fp8_base)."""
        self._dtype = dtype

    def denoiser(self) -> nn.Module:
        return self.transformer

    def alphas_cumprod(self) -> torch.Tensor:
        return self._schedule.alphas_cumprod

    def noise_schedule(self) -> NoiseSchedule:
        return self._schedule

    @property
    def sigmas(self) -> torch.Tensor:
        return self._schedule.sigmas

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> dict[str, Conditioning]:
        distinct = list(dict.fromkeys(prompts))
        encoded = self._encode(distinct)
        missing = [p for p in distinct if p not in encoded]
        if missing:
            raise UnsupportedModelError(f"encode_prompts gave no conditioning for {missing[:3]}")
        return {p: encoded[p].to(self.device, self.dtype) for p in distinct}

    def predict(self, x: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning,
                size: Optional[SizeConditioning] = None) -> torch.Tensor:
        """The velocity eps - x0 at latents x [B, C, H, W] (H, W even) and integer timesteps [B]."""
        b, _, h, w = x.shape
        if h % 2 or w % 2:
            raise ConfigError("resolution", f"Flux packs 2x2 latent patches: a {h}x{w} latent (from "
                              f"{h * self.vae_scale_factor}x{w * self.vae_scale_factor} px) needs even sides; use "
                              f"sizes divisible by {2 * self.vae_scale_factor}")
        if cond.pooled is None:
            raise UnsupportedModelError("Flux conditioning needs the pooled CLIP embedding")
        dtype = self.dtype
        sigma = self._schedule.sigmas[timesteps.long().cpu()].to(x.device, torch.float32)
        context = cond.context.to(x.device, dtype)
        guidance = None
        if self.guidance is not None:
            guidance = torch.full((b,), float(self.guidance), device=x.device, dtype=torch.float32)
        out = self.transformer(
            hidden_states=pack_latents(x.to(dtype)), encoder_hidden_states=context,
            pooled_projections=cond.pooled.to(x.device, dtype), timestep=sigma.to(dtype),
            img_ids=image_ids(h, w, x.device, dtype), txt_ids=torch.zeros(context.shape[1], 3, device=x.device, dtype=dtype),
            guidance=None if guidance is None else guidance.to(dtype), return_dict=False)[0]
        return unpack_latents(out, h, w).to(x.dtype)

    @property
    def native_resolution(self) -> int:
        return self._native_resolution

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> Optional[torch.Tensor]:
        """Pixels through the VAE: latents / scaling_factor + shift_factor, as FluxPipeline does."""
        if self.vae is None:
            return None
        from ..pixels import decoder_to_pixels

        config = self.vae.config
        vae_dtype = next(self.vae.parameters()).dtype
        shift = float(getattr(config, "shift_factor", None) or 0.0)
        scaled = latents.to(self.device, vae_dtype) / float(config.scaling_factor) + shift
        return decoder_to_pixels(self.vae.decode(scaled).sample)

    @contextlib.contextmanager
    def schedule_for_sizes(self, sizes: Sequence[tuple[int, int]]) -> Iterator[None]:
        """One training size: its own shifted table inside the block (as FluxPipeline shifts by the image's token
        count). Several sizes share one table, so they keep `sigmas` (the native resolution's)."""
        if self.size_sigmas is None or len(set(sizes)) != 1:
            yield
            return
        own = self._schedule
        self._schedule = NoiseSchedule.flow(self.size_sigmas(*sizes[0]))
        try:
            yield
        finally:
            self._schedule = own

    # -- naming and files --------------------------------------------------------------------------
    def _flux_names(self) -> FluxNames:
        if self._names is None:
            self._names = FluxNames(self.transformer)
        return self._names

    def kohya_name(self, module_name: str) -> str:
        return self._flux_names().kohya_name(module_name)

    def module_name_from_kohya(self, kohya_key: str) -> Optional[str]:
        return self._flux_names().module_name_from_kohya(kohya_key)

    def check_config(self, config) -> None:
        """Flux files fuse q/k/v (and linear1's four parts) into one kohya layer: only a plain LoRA fuses exactly."""
        if config.network.algo != "lora":
            raise ConfigError("algo", f"Flux in diffusers writes kohya's fused qkv layers, which a {config.network.algo} "
                                      "adapter cannot be fused into; use algo = lora")

    def file_tensors(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._flux_names().to_file(tensors)

    def model_tensors(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._flux_names().from_file(tensors)

    # -- memory --------------------------------------------------------------------------------------
    def gradient_checkpointing(self) -> bool:
        return bool(getattr(self.transformer, "is_gradient_checkpointing", False))

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        if enabled:
            self.transformer.enable_gradient_checkpointing()
        else:
            self.transformer.disable_gradient_checkpointing()
