"""Flux.1 (dev and schnell) in ComfyUI objects: what ComfyBackend needs beyond the SD UNets.

- The MODEL: comfy.model_base.Flux itself (Chroma, a subclass with another block layout, and the inpaint/fill/canny
  variants, whose img_in reads concatenated image channels, are refused). dev has a guidance embedder
  (guidance_embed), schnell none.
- The model is called as BaseModel._apply_model calls it, without its last line: CONST's calculate_input is the
  identity, the timestep is model_sampling.timestep(sigma) for the sigma of each integer timestep (Flux: sigma itself;
  a ModelSamplingSD3 patch: sigma * multiplier), and the raw output is the velocity eps - x0 that
  calculate_denoised turns into x0 (x - sigma * v). Flux packs its 16-channel latent into 2x2 patches itself.
- The CLIP: DualCLIPLoader's flux type (comfy.text_encoders.flux.FluxClipModel: T5-XXL context, CLIP-L pooled output).
  An SD CLIP on a Flux MODEL, or a Flux CLIP on an SD one, is refused before any model work.
- Prompts of different T5 lengths: ComfyUI pads every T5 prompt with pad tokens to 256; a longer one gives a longer
  context, and Flux's joint attention is not invariant to repeating tokens (SD's cross-attention is, which is how
  the SD path batches them). So shorter prompts are encoded again padded to the longest (tokenizer option
  t5xxl_min_length): what ComfyUI itself gives with that min length.

Imported only inside node execution and tests (it imports ComfyUI).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import comfy.model_base
import torch

from ..loba.errors import ConfigError, UnsupportedModelError
from ..loba.models.backend import Conditioning

DEFAULT_GUIDANCE = 3.5  # Flux dev's (ComfyUI's extra_conds default, FluxGuidance's default)


def is_flux(model) -> bool:
    return isinstance(model, comfy.model_base.Flux)


def check_flux_model(model) -> str:
    """"dev" or "schnell"; refuses the Flux-based models LOBA does not train."""
    if type(model) is not comfy.model_base.Flux:
        raise UnsupportedModelError(f"this MODEL is {type(model).__name__}, a Flux variant LOBA does not train; "
                                    "use a Flux.1 dev or schnell checkpoint (UNETLoader or CheckpointLoaderSimple)")
    config = model.model_config.unet_config
    if int(config.get("in_channels", 16)) != int(config.get("out_channels", 16)):
        raise UnsupportedModelError("this MODEL is a Flux fill/inpaint/control model (its input holds image channels "
                                    "besides the latent); LOBA trains Flux.1 dev and schnell")
    return "dev" if model.diffusion_model.params.guidance_embed else "schnell"


def is_flux_clip(clip) -> bool:
    import comfy.text_encoders.flux

    model = getattr(clip, "cond_stage_model", None)
    # The flow toy world's CLIP (toyworld_flow_comfy.py) is the toy text encoder giving a Flux-shaped context + pooled.
    return isinstance(model, comfy.text_encoders.flux.FluxClipModel) or bool(getattr(model, "loba_flux_context", False))


def check_clip(family: str, clip) -> None:
    """The CLIP must be the MODEL's kind: Flux's T5 + CLIP-L for Flux, an SD one for SD (field `clip`). None: a
    backend made for its names and model calls only (prompts then cannot be encoded)."""
    if clip is None:
        return
    if not hasattr(clip, "tokenize") or not hasattr(clip, "encode_from_tokens"):
        raise ConfigError("clip", f"expected a CLIP (a CLIP loader's output), got {type(clip).__name__}")
    if getattr(clip, "cond_stage_model", None) is None:
        return  # a CLIP-like object without ComfyUI's model (tests, wrappers): its outputs are checked by shape
    kind = type(clip.cond_stage_model).__name__
    if family == "flux" and not is_flux_clip(clip):
        raise ConfigError("clip", f"this is a {kind} CLIP but the MODEL is Flux: load Flux's text encoders with "
                                  "DualCLIPLoader (clip_name1 t5xxl, clip_name2 clip_l, type flux)")
    if family != "flux" and is_flux_clip(clip):
        raise ConfigError("clip", f"this is a Flux CLIP (T5 + CLIP-L) but the MODEL is {family}: connect the CLIP of "
                                  "the same checkpoint")


def check_guidance(variant: str, guidance: float) -> float:
    if variant == "schnell" and float(guidance) != DEFAULT_GUIDANCE:
        raise ConfigError("guidance", f"Flux schnell has no guidance input (it is guidance-distilled away); got "
                                      f"{guidance:g}: leave guidance at {DEFAULT_GUIDANCE:g}")
    return float(guidance)


def check_conditioning(model, cond: Conditioning) -> None:
    params = model.diffusion_model.params
    if cond.context.shape[-1] != params.context_in_dim or cond.pooled is None \
            or cond.pooled.shape[-1] < params.vec_in_dim:
        pooled = None if cond.pooled is None else tuple(cond.pooled.shape)
        raise ConfigError("clip", f"the CLIP gives context {tuple(cond.context.shape)} and pooled {pooled}, but this "
                                  f"Flux MODEL reads T5 width {params.context_in_dim} and a pooled CLIP-L vector of "
                                  f"{params.vec_in_dim}: use DualCLIPLoader with type flux")


def encode_flux(clip, prompts: Sequence[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{prompt: (T5 context, CLIP-L pooled)}, every context the same length (see the module docstring)."""
    distinct = list(dict.fromkeys(prompts))
    out = {text: _encode(clip, text) for text in distinct}
    longest = max(context.shape[1] for context, _ in out.values())
    for text in distinct:
        if out[text][0].shape[1] != longest:
            out[text] = _encode(clip, text, longest)
    return out


def _encode(clip, text: str, min_length: Optional[int] = None):
    options = {} if min_length is None else {"tokenizer_options": {"t5xxl_min_length": int(min_length)}}
    return clip.encode_from_tokens(clip.tokenize(text, **options), return_pooled=True)


def flux_call(model, sampling, sigmas: torch.Tensor, guidance: Optional[float], x: torch.Tensor,
              timesteps: torch.Tensor, cond: Conditioning, dtype, extra: dict) -> torch.Tensor:
    """The velocity at integer timesteps [B]: the diffusion model called as _apply_model calls it."""
    sigma = sigmas[timesteps.long().cpu()].to(x.device, torch.float32)
    model_t = model.process_timestep(sampling.timestep(sigma).float(), x=x)
    kwargs = dict(extra)
    if guidance is not None:
        kwargs["guidance"] = torch.full((x.shape[0],), guidance, device=x.device, dtype=dtype)
    xc = sampling.calculate_input(sigma, x).to(dtype)
    y = cond.pooled.to(x.device, dtype)
    return model.diffusion_model(xc, model_t, context=cond.context.to(x.device, dtype), y=y, **kwargs)


def check_flux_config(config) -> None:
    """What a Flux run cannot do yet, refused before model work (field named)."""
    if config.network.train_text_encoder != "off":
        raise ConfigError("train_text_encoder", "LOBA does not train Flux's text encoders (T5-XXL + CLIP-L) yet; "
                                                "set train_text_encoder = off")
