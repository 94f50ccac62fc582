"""ModelBackend for diffusers models: UNet2DConditionModel plus CLIP text encoders.

Loads SD1.x, SD2.x (epsilon or v-prediction) and SDXL from a pipeline folder or hub id
(`from_pretrained`) or from one checkpoint file (`from_single_file`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..diffusion.schedule import EPSILON_ZSNR, NoiseSchedule
from ..errors import ConfigError, UnsupportedModelError
from .backend import Conditioning, ModelBackend, SizeConditioning
from .clip_text import encode_text, equal_lengths, hidden_layer, token_chunks, word_positions
from .hub_location import HubLocation


def detect_family(unet: nn.Module) -> str:
    config = unet.config
    if getattr(config, "addition_embed_type", None) == "text_time":
        return "sdxl"
    if getattr(config, "use_linear_projection", False) or getattr(config, "cross_attention_dim", 768) == 1024:
        return "sd2"
    return "sd1"


UNET_PREDICTION_TYPES = ("epsilon", "v_prediction")  # the DDPM parameterizations; "flow" needs a sigma schedule


class DiffusersBackend(ModelBackend):
    def __init__(self, unet: nn.Module, text_encoders: Sequence[nn.Module], tokenizers: Sequence, alphas_cumprod: torch.Tensor,
                 prediction_type: str = "epsilon", family: Optional[str] = None, vae: Optional[nn.Module] = None,
                 native_resolution: Optional[int] = None, vae_scaling: Optional[float] = None,
                 clip_skip: Optional[int] = None):
        if prediction_type not in UNET_PREDICTION_TYPES:
            supported = ", ".join(UNET_PREDICTION_TYPES)
            raise UnsupportedModelError(f"prediction_type '{prediction_type}' is not supported; LOBA trains {supported} "
                                        "UNet models (flow matching is the Flux backend's)")
        self.unet = unet
        self.text_encoders = list(text_encoders)
        self.tokenizers = list(tokenizers)
        self._alphas_cumprod = alphas_cumprod.detach().to("cpu", torch.float64)
        NoiseSchedule(self._alphas_cumprod, prediction_type)  # refuses epsilon on a zero-terminal-SNR schedule
        self.prediction_type = prediction_type
        self.family = family or detect_family(unet)
        self.latent_channels = int(unet.config.in_channels)
        if self.family == "sdxl" and len(self.text_encoders) != 2:
            raise UnsupportedModelError("an SDXL UNet needs two text encoders (text_encoder and text_encoder_2)")
        self._kohya_names = None
        self.vae = vae  # only previews decode; training never needs it
        self._native_resolution = native_resolution
        self._vae_scaling = vae_scaling  # the latent scale; the VAE config's when None
        self.clip_skip = clip_skip  # None: the family's default (clip_text.DEFAULT_CLIP_SKIP)
        for encoder in self.text_encoders:  # a clip_skip the encoders cannot honor fails before any model work
            hidden_layer(self.family, clip_skip, encoder.config.num_hidden_layers)

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_id: str, *, torch_dtype: torch.dtype = torch.float32, device: str = "cpu",
                        prediction_type: Optional[str] = None, with_vae: bool = False, clip_skip: Optional[int] = None,
                        zero_terminal_snr: bool = False, hub: Optional[HubLocation] = None, **kwargs) -> DiffusersBackend:
        """Load from a diffusers pipeline folder (or hub id when online; `hub`: revision, variant, subfolder and
        local_files_only); with_vae also loads the VAE (previews); zero_terminal_snr rescales the schedule (refused for
        epsilon models before the weights are read)."""
        from diffusers import DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

        hub = hub or HubLocation()
        files, weights = {**hub.file_kwargs(), **kwargs}, {**hub.weight_kwargs(), **kwargs}
        at = hub.component
        scheduler = training_scheduler(DDPMScheduler.load_config(path_or_id, subfolder=at("scheduler"), **files),
                                       prediction_type, zero_terminal_snr)
        is_sdxl = _has_component(path_or_id, "text_encoder_2", files, hub.subfolder)
        unet = UNet2DConditionModel.from_pretrained(path_or_id, subfolder=at("unet"), torch_dtype=torch_dtype, **weights)
        encoders = [CLIPTextModel.from_pretrained(path_or_id, subfolder=at("text_encoder"), torch_dtype=torch_dtype, **weights)]
        tokenizers = [CLIPTokenizer.from_pretrained(path_or_id, subfolder=at("tokenizer"), **files)]
        if is_sdxl:
            encoders.append(CLIPTextModelWithProjection.from_pretrained(path_or_id, subfolder=at("text_encoder_2"),
                                                                        torch_dtype=torch_dtype, **weights))
            tokenizers.append(CLIPTokenizer.from_pretrained(path_or_id, subfolder=at("tokenizer_2"), **files))
        vae = _load_vae(path_or_id, torch_dtype, files, weights, hub) if with_vae else None
        return cls._assemble(unet, encoders, tokenizers, scheduler, prediction_type, device, vae, clip_skip)

    @classmethod
    def from_single_file(cls, path: str, *, torch_dtype: torch.dtype = torch.float32, device: str = "cpu",
                         prediction_type: Optional[str] = None, sdxl: Optional[bool] = None, with_vae: bool = False,
                         clip_skip: Optional[int] = None, zero_terminal_snr: bool = False, **kwargs) -> DiffusersBackend:
        """Load one .safetensors/.ckpt checkpoint (pass config=<folder> to stay offline); SDXL is detected from the keys."""
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        if sdxl is None:
            sdxl = _single_file_is_sdxl(path)
        pipeline_cls = StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline
        pipe = pipeline_cls.from_single_file(path, torch_dtype=torch_dtype, **kwargs)
        encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if sdxl else [])
        tokenizers = [pipe.tokenizer] + ([pipe.tokenizer_2] if sdxl else [])
        scheduler = training_scheduler(pipe.scheduler.config, prediction_type, zero_terminal_snr)
        return cls._assemble(pipe.unet, encoders, tokenizers, scheduler, prediction_type, device,
                             pipe.vae if with_vae else None, clip_skip)

    @classmethod
    def _assemble(cls, unet, encoders, tokenizers, scheduler, prediction_type, device, vae=None,
                  clip_skip=None) -> DiffusersBackend:
        for module in (unet, *encoders, *([vae] if vae is not None else [])):
            module.to(device).eval()
        chosen = prediction_type or scheduler.config.prediction_type
        return cls(unet, encoders, tokenizers, scheduler.alphas_cumprod, chosen, vae=vae, clip_skip=clip_skip)

    # -- the interface ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        # While the UNet is offloaded (loba/train/offload.py) its weights sit on the CPU or meta device between
        # forwards; the device the forwards run on is set here for that time.
        pinned = getattr(self, "execution_device", None)
        return pinned if pinned is not None else next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return getattr(self, "_compute_dtype", None) or next(self.unet.parameters()).dtype

    def pin_compute_dtype(self, dtype: torch.dtype) -> None:
        """The dtype the UNet computes in, whatever its parameters are stored in (fp8_base: loba/models/fp8_base.py)."""
        self._compute_dtype = dtype

    def denoiser(self) -> nn.Module:
        return self.unet

    def alphas_cumprod(self) -> torch.Tensor:
        return self._alphas_cumprod

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> dict[str, Conditioning]:
        """ComfyUI's encoding (loba/models/clip_text.py): 75-token chunks, clip skip, SDXL's two encoders."""
        return self.encode_prompts_trainable(prompts)

    def text_encoder_modules(self) -> list[nn.Module]:
        return list(self.text_encoders)

    def encode_prompts_trainable(self, prompts: Sequence[str]) -> dict[str, Conditioning]:
        """encode_prompts with autograd (the same numbers: encode_prompts is this under no_grad)."""
        distinct = list(dict.fromkeys(prompts))
        contexts, pooled = [], []
        for text in distinct:
            context, pool = self._encode_one(text)
            contexts.append(context.to(self.device, self.dtype))
            pooled.append(None if pool is None else pool.to(self.device, self.dtype))
        return {text: Conditioning(c, p) for text, c, p in zip(distinct, equal_lengths(contexts), pooled)}

    def _encode_one(self, text: str) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        contexts, pooled = [], None
        for encoder, tokenizer in zip(self.text_encoders, self.tokenizers):
            # Tokenizers saved without model_max_length report a huge sentinel; the encoder knows its length.
            window = min(tokenizer.model_max_length, encoder.config.max_position_embeddings)
            layer = hidden_layer(self.family, self.clip_skip, encoder.config.num_hidden_layers)
            context, pooled = encode_text(encoder, token_chunks(tokenizer, text, window), layer, self.family != "sdxl")
            contexts.append(context)
        cut = min(c.shape[1] for c in contexts)  # ComfyUI cuts SDXL's two encoders to the shorter one
        return torch.cat([c[:, :cut] for c in contexts], dim=-1), pooled if self.family == "sdxl" else None

    def token_positions(self, prompt: str, word: str) -> list[int]:
        tokenizer, encoder = self.tokenizers[0], self.text_encoders[0]
        window = min(tokenizer.model_max_length, encoder.config.max_position_embeddings)
        return word_positions(tokenizer, prompt, word, window)

    def predict(self, x: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning,
                size: Optional[SizeConditioning] = None) -> torch.Tensor:
        added = None
        if self.family == "sdxl":
            if cond.pooled is None:
                raise UnsupportedModelError("SDXL conditioning needs a pooled text embedding")
            size = size or SizeConditioning.plain(x.shape[-2] * self.vae_scale_factor, x.shape[-1] * self.vae_scale_factor)
            ids = torch.tensor([[*size.original, *size.crop_top_left, *size.target]], device=x.device, dtype=x.dtype)
            added = {"text_embeds": cond.pooled, "time_ids": ids.expand(x.shape[0], -1)}
        return self.unet(x, timesteps.to(x.device), encoder_hidden_states=cond.context, added_cond_kwargs=added).sample

    @property
    def native_resolution(self) -> int:
        if self._native_resolution:
            return int(self._native_resolution)
        sample_size = getattr(self.unet.config, "sample_size", None)
        return int(sample_size) * self.vae_scale_factor if isinstance(sample_size, int) else super().native_resolution

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> Optional[torch.Tensor]:
        if self.vae is None:
            return None
        from ..pixels import decoder_to_pixels

        vae_dtype = next(self.vae.parameters()).dtype
        scaled = latents.to(self.device, vae_dtype) / float(self._vae_scaling or self.vae.config.scaling_factor)
        return decoder_to_pixels(self.vae.decode(scaled).sample)

    def _names(self):
        if self._kohya_names is None:
            from .naming import KohyaNames

            self._kohya_names = KohyaNames(self.unet, self.family)
        return self._kohya_names

    def kohya_name(self, module_name: str) -> str:
        return self._names().kohya_name(module_name)

    def module_name_from_kohya(self, kohya_key: str) -> Optional[str]:
        return self._names().module_name_from_kohya(kohya_key)

    def gradient_checkpointing(self) -> bool:
        return bool(self.unet.is_gradient_checkpointing)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        if enabled:
            self.unet.enable_gradient_checkpointing()
        else:
            self.unet.disable_gradient_checkpointing()


def training_scheduler(config, prediction_type: Optional[str], zero_terminal_snr: bool):
    """The DDPM training scheduler of a pipeline's scheduler config; zero_terminal_snr (sd-scripts' name) rescales its
    betas the diffusers way (rescale_betas_zero_snr: alpha_bar ends at exactly 0), which only v-prediction survives."""
    from diffusers import DDPMScheduler

    extra = {"rescale_betas_zero_snr": True} if zero_terminal_snr else {}
    scheduler = DDPMScheduler.from_config(config, **extra)
    chosen = prediction_type or scheduler.config.prediction_type
    if scheduler.config.rescale_betas_zero_snr and chosen == "epsilon":
        raise ConfigError("zero_terminal_snr", f"{EPSILON_ZSNR} (this model predicts epsilon; v_parameterization = "
                                               "true if it is a v-prediction model)")
    return scheduler


def _single_file_is_sdxl(path: str) -> bool:
    """SDXL checkpoints carry a second (OpenCLIP) text encoder under conditioner.embedders.1."""
    if not str(path).endswith(".safetensors"):
        return False
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return any(key.startswith("conditioner.embedders.1.") for key in handle.keys())


def _has_component(path_or_id: str, name: str, kwargs: dict, subfolder: Optional[str] = None) -> bool:
    index = Path(path_or_id) / (subfolder or "") / "model_index.json"
    if index.is_file():
        return name in json.loads(index.read_text())
    from huggingface_hub import hf_hub_download

    hub_keys = ("revision", "token", "local_files_only", "cache_dir")
    local = hf_hub_download(path_or_id, "model_index.json", subfolder=subfolder,
                            **{k: v for k, v in kwargs.items() if k in hub_keys})
    return name in json.loads(Path(local).read_text())


def _load_vae(path_or_id: str, torch_dtype: torch.dtype, files: dict, weights: dict, hub: HubLocation):
    from diffusers import AutoencoderKL

    if not _has_component(path_or_id, "vae", files, hub.subfolder):
        return None  # a pipeline without its VAE still trains; previews show latents
    return AutoencoderKL.from_pretrained(path_or_id, subfolder=hub.component("vae"), torch_dtype=torch_dtype, **weights)
