"""The engine's ModelBackend over ComfyUI's own MODEL (ModelPatcher) and CLIP.

Adapts, never trains: the trainer in loba/ drives it exactly as it drives the diffusers backend.
The traps handled here (see shared docs, comfyui-host.md):
- the executor runs nodes under torch.inference_mode() and loader nodes build weights as inference
  tensors, which autograd cannot save for backward: for the training's lifetime they are swapped for
  zero-copy aliases (frozen_weights.py: no second UNet), and the originals are put back afterwards;
- gradient checkpointing wraps the UNet blocks' layers (checkpointing.py), removed afterwards;
- every ModelPatcher clone shares one nn.Module: the adapter's hooks come off in the trainer's
  finally, and the patcher is loaded (its patches in the weights) before training starts;
- ComfyUI's model input is VP-scaled x_t and its timestep is the discrete index, which is what the
  engine's x_t and t already are, so the UNet is called directly (no calculate_input);
- the prediction type and the schedule come from the patcher's model_sampling object, so ModelSamplingDiscrete
  overrides apply (v_prediction, zsnr); sampling types LOBA cannot train are refused (nodes/model_sampling.py);
- Flux.1 dev / schnell (family "flux", flow matching): the model call, its CLIP and its guidance are in flux_comfy.py.

Imported only inside node execution and tests (it imports ComfyUI).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Optional

import comfy.model_management
import comfy.supported_models
import torch
from torch import nn

from ..loba.errors import UnsupportedModelError
from ..loba.models.backend import Conditioning, ModelBackend, SizeConditioning
from ..loba.models.clip_text import equal_lengths
from ..loba.models.naming import KohyaNames
from . import checkpointing
from .flux_comfy import DEFAULT_GUIDANCE, check_clip, check_conditioning, check_flux_model, check_guidance, encode_flux, flux_call, is_flux
from .frozen_weights import usable_for_backward
from .model_patches import refuse_sampler_patches, unet_transformer_options
from .model_sampling import read_model_sampling

# First match wins: SDXL-like configs (SSD-1B, Vega, ...) subclass SDXL; SD2.1-unclip subclasses SD20.
FAMILIES = (("sdxl", "SDXL"), ("sd2", "SD20"), ("sd1", "SD15"))
SUPPORTED = "SD1.x, SD2.x (epsilon or v-prediction) and SDXL models, and Flux.1 (dev, schnell)"


def model_family(model) -> str:
    if is_flux(model):
        return "flux"
    config = getattr(model, "model_config", None)
    for family, class_name in FAMILIES:
        cls = getattr(comfy.supported_models, class_name, None)
        if cls is not None and isinstance(config, cls):
            return family
    raise UnsupportedModelError(f"LOBA trains {SUPPORTED}; this MODEL is {type(config).__name__}")


class ComfyBackend(ModelBackend):
    # ComfyUI moves and offloads its models itself (model_management, --lowvram): LOBA's offload option would
    # fight it, so loba/train/offload.py refuses any mode but none here.
    host_manages_memory = True

    def __init__(self, model_patcher, clip, vae=None, guidance: float = DEFAULT_GUIDANCE):
        self.patcher = model_patcher
        self.clip = clip
        self.vae = vae  # optional: decodes previews
        self.model = model_patcher.model
        self.family = model_family(self.model)
        check_clip(self.family, clip)
        # Flux dev's distilled guidance on every call; schnell has none (a non-default value is refused).
        self.guidance = None
        if self.family == "flux":
            variant = check_flux_model(self.model)
            value = check_guidance(variant, guidance)
            self.guidance = value if variant == "dev" else None
        # As sampled (ModelSamplingDiscrete / ModelSamplingFlux patches included), not model.model_type: see model_sampling.py.
        self._sampling = read_model_sampling(model_patcher, flow=self.family == "flux")
        self.prediction_type, self._alphas_cumprod = self._sampling.prediction_type, self._sampling.alphas_cumprod
        self.latent_channels = int(self.model.latent_format.latent_channels)
        self._names = KohyaNames(self.model.diffusion_model, self.family)
        refuse_sampler_patches(model_patcher, clip)  # what only the sampler applies cannot be trained on

    @property
    def native_resolution(self) -> int:
        own = getattr(self.model.model_config, "loba_native_resolution", None)  # the toy world's config sets it
        return int(own) if own else super().native_resolution

    def decode(self, latents: torch.Tensor) -> Optional[torch.Tensor]:
        if self.vae is None:
            return None
        pixels = self.vae.decode(self.model.latent_format.process_out(latents.float()).to("cpu"))
        return pixels.reshape(-1, *pixels.shape[-3:])

    @property
    def device(self) -> torch.device:
        return torch.device(self.patcher.load_device)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.manual_cast_dtype or self.model.get_dtype()

    def denoiser(self) -> nn.Module:
        return self.model.diffusion_model

    def alphas_cumprod(self) -> torch.Tensor:
        return self._alphas_cumprod

    def noise_schedule(self):
        return self._sampling.schedule()

    def encode_prompts(self, prompts: Sequence[str]) -> dict[str, Conditioning]:
        # The CLIPTextEncode path: ComfyUI's tokenizer parses (word:1.2) weights and cuts long prompts into
        # 75-token chunks, encode_from_tokens applies the weights and CLIPSetLastLayer's layer.
        distinct = list(dict.fromkeys(prompts))
        if self.family == "flux":
            encoded = encode_flux(self.clip, distinct)
            contexts, pooled = [encoded[t][0] for t in distinct], [encoded[t][1] for t in distinct]
        else:
            contexts, pooled = [], []
            for text in distinct:
                cond, pool = self.clip.encode_from_tokens(self.clip.tokenize(text), return_pooled=True)
                contexts.append(cond)
                pooled.append(pool)
            contexts = equal_lengths(contexts)
        keep_pooled = self.family in ("sdxl", "flux")
        with torch.inference_mode(False):  # CLIP outputs are inference tensors under the executor: copy them out
            contexts = [c.clone().to(self.device, self.dtype) for c in contexts]
            pooled = [None if p is None or not keep_pooled else p.clone().to(self.device, self.dtype) for p in pooled]
        out = {text: Conditioning(c, p) for text, c, p in zip(distinct, contexts, pooled)}
        if self.family == "flux":
            for cond in out.values():
                check_conditioning(self.model, cond)
        return out

    def token_positions(self, prompt: str, word: str) -> list[int]:
        from .comfy_tokens import comfy_token_positions

        try:
            return comfy_token_positions(self.clip, prompt, word)
        except ValueError as exc:
            raise UnsupportedModelError(f"attention regions: {exc}; use a mask instead") from None

    def predict(self, x: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning,
                size: Optional[SizeConditioning] = None) -> torch.Tensor:
        if self.family == "flux":
            return self._predict_flux(x, timesteps, cond)
        y = None
        if self.family == "sdxl":
            size = size or SizeConditioning.plain(x.shape[-2] * self.vae_scale_factor, x.shape[-1] * self.vae_scale_factor)
            (height, width), (top, left), (target_h, target_w) = size.original, size.crop_top_left, size.target
            y = self.model.encode_adm(pooled_output=cond.pooled, width=width, height=height, crop_w=left, crop_h=top,
                                      target_width=target_w, target_height=target_h).to(x.device, self.dtype)
        timesteps = timesteps.to(x.device).float()
        # The patches the sampler hands the UNet (FreeU, attention patches...) act in training too.
        options = unet_transformer_options(self.patcher, timesteps)
        extra = {} if options is None else {"transformer_options": options}
        return self.model.diffusion_model(x.to(self.dtype), timesteps, context=cond.context, y=y, **extra)

    def _predict_flux(self, x: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        sigmas = self._sampling.sigmas
        options = unet_transformer_options(self.patcher, timesteps, sigmas[timesteps.long().cpu()].to(x.device, torch.float32))
        extra = {} if options is None else {"transformer_options": options}
        return flux_call(self.model, self._sampling.sampling, sigmas, self.guidance, x, timesteps, cond, self.dtype, extra)

    def kohya_name(self, module_name: str) -> str:
        return self._names.kohya_name(module_name)

    def module_name_from_kohya(self, kohya_key: str) -> Optional[str]:
        return self._names.module_name_from_kohya(kohya_key)

    def gradient_checkpointing(self) -> bool:
        return checkpointing.is_enabled(self.denoiser())

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        if enabled:
            checkpointing.enable(self.denoiser())
        else:
            checkpointing.disable(self.denoiser())

    def text_encoder_modules(self) -> list[nn.Module]:
        # Flux's T5 + CLIP-L: no text-encoder LoRA yet (train_text_encoder is refused by the engine for an empty list).
        return [] if self.family == "flux" else _TextEncoders.modules(self)

    def encode_prompts_trainable(self, prompts: Sequence[str]) -> dict[str, Conditioning]:
        return _TextEncoders.encode(self, prompts)

    def text_encoder_session(self):
        return _TextEncoders.session(self, super().text_encoder_session)

    @contextlib.contextmanager
    def training_session(self) -> Iterator[None]:
        with torch.inference_mode(False), torch.enable_grad():
            # Loaded with its patches (other LoRAs) in the weights, fully, so nothing is offloaded mid-step; under
            # --lowvram / --novram ComfyUI's own partial load decides (weights cast to the device per layer).
            comfy.model_management.load_models_gpu([self.patcher], force_full_load=full_load_allowed())
            with usable_for_backward(self.denoiser()), checkpointing.copied_flux_inputs(self.denoiser()), \
                    super().training_session():
                yield


def full_load_allowed() -> bool:
    """False when the user started ComfyUI with --lowvram or --novram: its load_models_gpu then loads the model
    partially (what does not fit stays on the CPU and is cast to the device layer by layer), as for sampling."""
    mm = comfy.model_management
    return mm.vram_state not in (mm.VRAMState.LOW_VRAM, mm.VRAMState.NO_VRAM)


def _encode_one(backend, model, text: str) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    model.reset_clip_options()
    if backend.clip.layer_idx is not None:
        model.set_clip_options({"layer": backend.clip.layer_idx})
    cond, pool = model.encode_token_weights(backend.clip.tokenize(text))[:2]
    pool = None if pool is None or backend.family != "sdxl" else pool.to(backend.device, backend.dtype)
    return cond.to(backend.device, backend.dtype), pool


def _copy_if_grad(tensor: torch.Tensor) -> torch.Tensor:
    # Frozen weights (no grad) are never changed in place: only activations on the gradient's path are copied.
    return tensor.detach().clone() if tensor.requires_grad else tensor


def _same(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


class _TextEncoders:
    """The text-encoder side of ComfyBackend (its text_encoder_* methods delegate here): the CLIP's transformers,
    their grad-enabled encoding for the student, and the session that makes them trainable through hooks. The
    CLIP object is read, never changed: its weights are aliased (no copy) only for the session and put back."""

    @staticmethod
    def modules(backend) -> list[nn.Module]:
        model = backend.clip.cond_stage_model
        names = ("clip_l", "clip_g") if backend.family == "sdxl" else (model.clip,)  # kohya's te1, te2 order
        return [getattr(model, name).transformer for name in names]

    @staticmethod
    def encode(backend, prompts: Sequence[str]) -> dict[str, Conditioning]:
        # encode_from_tokens without its load_model (the session loaded the CLIP once): same options, same weights.
        model, distinct = backend.clip.cond_stage_model, list(dict.fromkeys(prompts))
        contexts, pooled = [], []
        # ComfyUI's CLIPLayer adds its residuals in place (x += attn(ln(x))), which autograd refuses once an
        # adapter makes x need grad: tensors saved for backward are saved as copies (the same gradient).
        with torch.autograd.graph.saved_tensors_hooks(_copy_if_grad, _same):
            for text in distinct:
                cond, pool = _encode_one(backend, model, text)
                contexts.append(cond)
                pooled.append(pool)
        return {text: Conditioning(c, p) for text, c, p in zip(distinct, equal_lengths(contexts), pooled)}

    @staticmethod
    @contextlib.contextmanager
    def session(backend, frozen) -> Iterator[None]:
        with torch.inference_mode(False), torch.enable_grad():
            # Both loaded together (and fully), so that neither offloads the other during the run.
            comfy.model_management.load_models_gpu([backend.patcher, backend.clip.patcher],
                                                   force_full_load=full_load_allowed())
            with contextlib.ExitStack() as stack:
                for module in _TextEncoders.modules(backend):  # zero-copy, as for the UNet (frozen_weights.py)
                    stack.enter_context(usable_for_backward(module))
                with frozen():
                    yield
