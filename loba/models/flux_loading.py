"""Loading a Flux backend from diffusers files: a pipeline folder or hub id (`from_pretrained`), or one transformer
checkpoint plus a folder for the rest (`from_single_file`). The prompts are encoded as FluxPipeline.encode_prompt
does (T5 last hidden state, padded to max_sequence_length; CLIP-L's pooled output at 77 tokens), once per prompt,
and the encoders are moved off the accelerator between encodings (they are not needed while training)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .backend import Conditioning
from .flux_schedule import flux_shift, flux_sigmas, image_seq_len

DEV_GUIDANCE = 3.5  # FluxPipeline's default guidance_scale
CLIP_LENGTH = 77


class FluxTextEncoders:
    """encode_prompts for FluxBackend: T5 context [1, L, 4096] and CLIP pooled [1, 768] per prompt, cached.

    offload_device: where the encoders wait between calls ("cpu": the accelerator holds only the transformer while
    training, issue 16's memory rule); free() drops them altogether, after which only cached prompts are served."""

    def __init__(self, clip: nn.Module, clip_tokenizer, t5: nn.Module, t5_tokenizer, *, max_sequence_length: int = 512,
                 device="cpu", offload_device: Optional[str] = "cpu"):
        self.clip, self.clip_tokenizer, self.t5, self.t5_tokenizer = clip, clip_tokenizer, t5, t5_tokenizer
        self.max_sequence_length = int(max_sequence_length)
        self.device, self.offload_device = torch.device(device), offload_device
        self._cache: dict[str, Conditioning] = {}

    def modules(self) -> list[nn.Module]:
        return [m for m in (self.clip, self.t5) if m is not None]

    def free(self) -> None:
        self.clip = self.t5 = None

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]) -> dict[str, Conditioning]:
        new = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if new:
            if self.clip is None or self.t5 is None:
                raise RuntimeError(f"the Flux text encoders were freed; prompts {new[:3]} were never encoded "
                                   "(encode every prompt before free(), or load the model again)")
            for module in self.modules():
                module.to(self.device)
            try:
                for prompt in new:
                    self._cache[prompt] = self._encode_one(prompt)
            finally:
                if self.offload_device is not None:
                    for module in self.modules():
                        module.to(self.offload_device)
        return {p: self._cache[p] for p in prompts}

    def _encode_one(self, prompt: str) -> Conditioning:
        t5_ids = self.t5_tokenizer([prompt], padding="max_length", max_length=self.max_sequence_length, truncation=True,
                                   return_tensors="pt").input_ids.to(self.device)
        context = self.t5(t5_ids, output_hidden_states=False)[0]
        clip_ids = self.clip_tokenizer([prompt], padding="max_length", max_length=CLIP_LENGTH, truncation=True,
                                       return_tensors="pt").input_ids.to(self.device)
        pooled = self.clip(clip_ids, output_hidden_states=False).pooler_output
        return Conditioning(context, pooled)


def scheduler_sigmas(config, resolution, vae_scale_factor: int = 8, num: Optional[int] = None) -> torch.Tensor:
    """The training sigma table of a FlowMatchEulerDiscreteScheduler config at a resolution (a side, or (height,
    width) px): dev's dynamic (resolution-dependent) exponential shift, or a static shift s:
    sigma' = s*sigma / (1 + (s - 1)*sigma)."""
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    get = config.get if hasattr(config, "get") else lambda key, default=None: getattr(config, key, default)
    num = int(num or get("num_train_timesteps", 1000))
    if get("use_dynamic_shifting", False):
        if get("time_shift_type", "exponential") != "exponential":
            raise ValueError("only Flux's exponential time shift is supported")
        mu = flux_shift(image_seq_len(height, width, vae_scale_factor), get("base_image_seq_len", 256),
                        get("max_image_seq_len", 4096), get("base_shift", 0.5), get("max_shift", 1.15))
        return flux_sigmas(mu, num)
    shift = float(get("shift", 1.0))
    base = flux_sigmas(0.0, num)
    return shift * base / (1 + (shift - 1) * base)


def _vae_scale_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 8


def assemble(transformer, encoders: FluxTextEncoders, scheduler_config, vae, *, guidance: Optional[float],
             resolution: int, device, torch_dtype) -> dict:
    """FluxBackend's constructor arguments after the transformer (the class builds itself from them: no import cycle)."""
    transformer.to(device, torch_dtype).eval()
    if vae is not None:
        vae.to(device).eval()
    if not transformer.config.guidance_embeds:
        guidance = None  # schnell: no guidance input, so a run file's (default) guidance does not apply
    elif guidance is None:
        guidance = DEV_GUIDANCE
    factor = _vae_scale_factor(vae)
    sigmas = scheduler_sigmas(scheduler_config, resolution, factor)
    def size_sigmas(height: int, width: int) -> torch.Tensor:
        return scheduler_sigmas(scheduler_config, (height, width), factor)

    return dict(encode_prompts=encoders, sigmas=sigmas, vae=vae, guidance=guidance, native_resolution=resolution,
                latent_channels=int(transformer.config.in_channels) // 4, vae_scale_factor=factor, size_sigmas=size_sigmas)


def load_encoders(path_or_id: str, torch_dtype, device, kwargs: dict, max_sequence_length: int) -> FluxTextEncoders:
    from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

    clip = CLIPTextModel.from_pretrained(path_or_id, subfolder="text_encoder", torch_dtype=torch_dtype, **kwargs).eval()
    t5 = T5EncoderModel.from_pretrained(path_or_id, subfolder="text_encoder_2", torch_dtype=torch_dtype, **kwargs).eval()
    clip_tok = AutoTokenizer.from_pretrained(path_or_id, subfolder="tokenizer", **kwargs)
    t5_tok = AutoTokenizer.from_pretrained(path_or_id, subfolder="tokenizer_2", **kwargs)
    return FluxTextEncoders(clip, clip_tok, t5, t5_tok, max_sequence_length=max_sequence_length, device=device)


def load_rest(path_or_id: str, transformer, *, torch_dtype, device, with_vae: bool, guidance: Optional[float],
              resolution: int, max_sequence_length: Optional[int], kwargs: dict) -> dict:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler

    scheduler_config = FlowMatchEulerDiscreteScheduler.load_config(path_or_id, subfolder="scheduler", **kwargs)
    # FluxPipeline's max_sequence_length: 512 (dev); schnell, without a guidance embedding, was trained at 256.
    length = max_sequence_length or (512 if transformer.config.guidance_embeds else 256)
    encoders = load_encoders(path_or_id, torch_dtype, device, kwargs, length)
    vae = AutoencoderKL.from_pretrained(path_or_id, subfolder="vae", torch_dtype=torch_dtype, **kwargs) if with_vae else None
    return assemble(transformer, encoders, scheduler_config, vae, guidance=guidance, resolution=resolution,
                    device=device, torch_dtype=torch_dtype)


def is_flux_folder(path_or_id: str) -> bool:
    """A local diffusers folder whose model_index.json names a Flux pipeline (hub ids: not looked up here)."""
    index = Path(path_or_id) / "model_index.json"
    if not index.is_file():
        return False
    data = json.loads(index.read_text())
    transformer = data.get("transformer") or [None, None]
    return str(data.get("_class_name", "")).startswith("Flux") or transformer[-1] == "FluxTransformer2DModel"


def is_flux_file(path: str) -> bool:
    """A .safetensors Flux transformer checkpoint (BFL / ComfyUI keys, bare or under model.diffusion_model.)."""
    if not str(path).endswith(".safetensors"):
        return False
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return any(key.removeprefix("model.diffusion_model.").startswith("double_blocks.0.img_attn.qkv")
                   for key in handle.keys())
