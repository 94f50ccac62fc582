"""Tiny Flux.1 models in ComfyUI's own objects: comfy.model_base.Flux (dev: guidance_embed, schnell: none) with a
tiny unet_config, and a real Flux CLIP (comfy.text_encoders.flux: T5 + CLIP-L, ComfyUI's shipped tokenizers) shrunk
through ComfyUI's own model_options (<name>_model_config), all built under torch.inference_mode() as loaders build
them, with seeded random weights (ComfyUI's layers are created uninitialized)."""

from __future__ import annotations

import torch

T5_WIDTH, CLIP_WIDTH, HIDDEN = 32, 32, 32
FLUX_CONFIG = dict(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=CLIP_WIDTH, context_in_dim=T5_WIDTH,
                   hidden_size=HIDDEN, mlp_ratio=2.0, num_heads=2, depth=2, depth_single_blocks=2, axes_dim=[4, 6, 6],
                   theta=10000, patch_size=2, qkv_bias=True)
T5_CONFIG = dict(d_model=T5_WIDTH, num_layers=1, num_heads=2, d_kv=16, d_ff=64)
CLIP_CONFIG = dict(num_hidden_layers=2, hidden_size=CLIP_WIDTH, num_attention_heads=2, intermediate_size=64,
                   projection_dim=CLIP_WIDTH)


def randomize(module: torch.nn.Module, seed: int, scale: float = 0.1) -> None:
    """Seeded weights: matrices ~ N(0, scale), norm weights ~ 1, biases small."""
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in sorted(module.state_dict(keep_vars=True).items()):
        if not tensor.is_floating_point():
            continue
        noise = torch.randn(tensor.shape, generator=generator) * scale
        if tensor.ndim == 1 and name.endswith(("weight", "scale")):
            noise = 1 + noise
        tensor.data.copy_(noise.to(tensor.dtype))


def tiny_flux_model(comfy, variant: str = "dev", seed: int = 0):
    """A ModelPatcher over comfy.model_base.Flux, tiny (two double and two single blocks), float32."""
    base = comfy.supported_models.Flux if variant == "dev" else comfy.supported_models.FluxSchnell
    unet_config = {**FLUX_CONFIG, "guidance_embed": variant == "dev"}
    cls = type(f"Tiny{base.__name__}", (base,), {"unet_config": dict(unet_config)})
    mm = comfy.model_management
    with torch.inference_mode():
        config = cls(unet_config)
        config.set_inference_dtype(torch.float32, None)
        model = config.get_model({})
        randomize(model.diffusion_model, seed)
        return comfy.model_patcher.ModelPatcher(model, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())


def tiny_flux_clip(seed: int = 1):
    """ComfyUI's Flux CLIP (DualCLIPLoader type flux) with a tiny T5 and CLIP-L."""
    import comfy.sd
    import comfy.supported_models_base
    import comfy.text_encoders.flux

    options = {"clip_l_model_config": dict(CLIP_CONFIG, hidden_act="quick_gelu"), "t5xxl_model_config": dict(T5_CONFIG),
               "dtype": torch.float32}
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.flux.FluxTokenizer, comfy.text_encoders.flux.flux_clip())
    with torch.inference_mode():
        clip = comfy.sd.CLIP(target, model_options=options)
        randomize(clip.cond_stage_model, seed, scale=0.05)
    return clip
