"""The flow toy world as ComfyUI objects: MODEL = ComfyUI's own Flux (schnell-like: no guidance embedding, FLOW
sampling with shift 1, Flux's 2x2 patches) at toy size, CLIP and VAE = the shipped toy world's.

ComfyUI's Flux detection assumes Flux.1's width, heads and rotary axes, so the model is built from the file's
config: the diffusers transformer keys go through ComfyUI's own diffusers -> BFL conversion
(model_detection.convert_diffusers_mmdit) and every tensor must land. The toy text encoder gives both Flux
inputs: its last hidden states as the context (cut to the 16 tokens the model was trained on; the encoder is
causal, so they are those of a 77-token encoding) and its pooled output as Flux's pooled vector.

Imported from node code and tests only (it imports ComfyUI), never when the pack is imported.
"""

from __future__ import annotations

import functools
import os

import torch

from ..loba.errors import LobaError
from ..loba.toyworld.flow_files import PREFIX, read_flow_info
from ..loba.toyworld.flow_model import LATENT_CHANNELS, PATCH, TEXT_TOKENS
from .toyworld_comfy import _classes, _load_exactly, load_toyworld_comfy


def load_flow_world_comfy(path: str | os.PathLike, dtype: torch.dtype | None = None):
    """(model_patcher, clip, vae) of the flow world file at `path` (its base world file lies beside it)."""
    from safetensors.torch import load_file

    info = read_flow_info(path)
    base = os.path.join(os.path.dirname(os.fspath(path)), info["base_world"])
    if not os.path.isfile(base):
        raise LobaError(f"{path} reuses the VAE and text encoder of {info['base_world']}, which is not beside it")
    _, sd1_clip, vae = load_toyworld_comfy(base, dtype)
    state = {k[len(PREFIX):]: t for k, t in load_file(str(path)).items() if k.startswith(PREFIX)}
    model = _build_model(state, info, dtype)
    return model, _flow_clip(sd1_clip), vae


def flux_unet_config(config: dict) -> dict:
    """ComfyUI's Flux params of a diffusers FluxTransformer2DModel config (in_channels there: packed channels)."""
    width = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    if int(config["in_channels"]) != LATENT_CHANNELS * PATCH * PATCH or config.get("patch_size", 1) != 1:
        raise LobaError("the flow toy transformer config is outside the packed-2x2 Flux shape this loader maps to ComfyUI")
    return {"image_model": "flux", "in_channels": LATENT_CHANNELS, "out_channels": LATENT_CHANNELS, "patch_size": PATCH,
            "vec_in_dim": int(config["pooled_projection_dim"]), "context_in_dim": int(config["joint_attention_dim"]),
            "hidden_size": width, "mlp_ratio": 4.0, "num_heads": int(config["num_attention_heads"]),
            "depth": int(config["num_layers"]), "depth_single_blocks": int(config["num_single_layers"]),
            "axes_dim": [int(a) for a in config["axes_dims_rope"]], "theta": 10000, "qkv_bias": True,
            "guidance_embed": bool(config["guidance_embeds"])}


@functools.cache
def _flow_class():
    from comfy import supported_models

    latent_class, _ = _classes()

    class ToyWorldFlux(supported_models.FluxSchnell):
        latent_format = latent_class
        loba_native_resolution = 64
        memory_usage_factor = 1.0

    return ToyWorldFlux


def _build_model(diffusers_state: dict, info: dict, dtype):
    import comfy.model_detection
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.utils

    configs = info["configs"]
    if configs.get("shift", 0.0) != 0.0:
        raise LobaError(f"flow toy world shift {configs['shift']}: ComfyUI's schnell sampling here is unshifted")
    state = comfy.model_detection.convert_diffusers_mmdit(diffusers_state, "")
    if state is None:
        raise LobaError("ComfyUI does not recognise the flow toy world's transformer keys as diffusers Flux")
    model_config = _flow_class()(flux_unet_config(configs["transformer"]))
    model_config.latent_format = _classes()[0](float(info["scaling_factor"]))
    load_device = mm.get_torch_device()
    if dtype is None:
        dtype = mm.unet_dtype(model_params=comfy.utils.calculate_parameters(state),
                              supported_dtypes=model_config.supported_inference_dtypes, weight_dtype=torch.float16)
    model_config.set_inference_dtype(dtype, mm.unet_manual_cast(dtype, load_device, model_config.supported_inference_dtypes))
    model = model_config.get_model({})
    _load_exactly(model.diffusion_model, state, "Flux transformer")
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=mm.unet_offload_device())


def _flow_clip(clip):
    """The SD1 toy CLIP, its context cut to TEXT_TOKENS (what the flow model was trained on); pooled kept."""
    model = clip.cond_stage_model
    encode = model.encode_token_weights

    def encode_token_weights(token_weight_pairs):
        out = encode(token_weight_pairs)
        return (out[0][:, :TEXT_TOKENS], *out[1:])

    model.encode_token_weights = encode_token_weights
    model.loba_flux_context = True  # what the Flux checks accept as this MODEL's text encoder (flux_comfy.is_flux_clip)
    return clip
