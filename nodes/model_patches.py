"""What a MODEL carries beyond its weights, and how Train Slider honors it: the model trained is the model sampled.

ComfyUI keeps three kinds of changes on a ModelPatcher:
- weight patches (LoraLoader, LoraLoaderModelOnly, model merges): load_models_gpu(force_full_load=True)
  writes them into the weights before training (comfy_backend.training_session), so an upstream LoRA is
  part of the model the slider is trained on;
- object patches (ModelSamplingDiscrete's model_sampling, compute dtype): set on the model when it is
  loaded, or read through get_model_object, so they reach training too;
- model_options, which only ComfyUI's sampler applies. Their transformer_options patches (FreeU's
  output_block_patch, attention patches and replacements, Deep Shrink's block patches) are applied by
  the UNet's own forward: `unet_transformer_options` hands them to it the way the sampler does. The rest
  (model_function_wrapper, CFG functions, denoise-mask functions, wrappers) act around the UNet at sampling
  time, where training cannot follow: `refuse_sampler_patches` names them before any model work.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..loba.errors import UnsupportedModelError

# model_options keys that change nothing the trainer computes.
HARMLESS = {"transformer_options", "disable_cfg1_optimization"}
# Sampler-only model_options keys -> what they are (the message names the function and its module too).
SAMPLER_ONLY = {
    "model_function_wrapper": "a model function wrapper (wraps every model call at sampling time)",
    "sampler_cfg_function": "a CFG function (RescaleCFG and similar)",
    "sampler_post_cfg_function": "a post-CFG function (PAG, SAG, CFGZero* and similar)",
    "sampler_pre_cfg_function": "a pre-CFG function",
    "sampler_calc_cond_batch_function": "a cond-batch function",
    "denoise_mask_function": "a denoise-mask function (Differential Diffusion and similar)",
}
# transformer_options entries the sampler builds around the UNet call; the forward cannot apply them.
SAMPLER_ONLY_OPTIONS = ("wrappers", "callbacks")
ADVICE = ("Train Slider trains the UNet the sampler calls, and training cannot apply this: connect Train Slider's "
          "model input to the MODEL before that node, then add the node after the trained slider (Apply Slider -> "
          "that node -> KSampler) so sampling still uses it")


def _origin(value: Any) -> str:
    functions = value if isinstance(value, (list, tuple)) else [value]
    names = []
    for fn in functions:
        target = getattr(fn, "func", fn)  # functools.partial
        module = getattr(target, "__module__", None) or type(target).__module__
        names.append(f"{getattr(target, '__qualname__', type(target).__qualname__)} from {module}")
    return ", ".join(names)


def _non_empty(tree: Any) -> bool:
    if isinstance(tree, dict):
        return any(_non_empty(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return len(tree) > 0
    return tree is not None


def refuse_sampler_patches(patcher, clip=None) -> None:
    """Raise, naming the patch and the fix, when the MODEL (or CLIP) holds what only the sampler applies."""
    options = getattr(patcher, "model_options", {}) or {}
    for key, value in options.items():
        if key in HARMLESS or value is None or (isinstance(value, (list, tuple, dict)) and not value):
            continue
        what = SAMPLER_ONLY.get(key, f"a sampler option '{key}' Train Slider does not know")
        raise UnsupportedModelError(f"this MODEL carries {what}: model_options['{key}'] = {_origin(value)}, probably "
                                    f"added by an upstream patch node. {ADVICE}")
    transformer = options.get("transformer_options", {}) or {}
    for key in SAMPLER_ONLY_OPTIONS:
        if _non_empty(transformer.get(key)):
            raise UnsupportedModelError(f"this MODEL carries sampler {key} in transformer_options "
                                        f"({sorted(transformer[key])}), added by an upstream node. {ADVICE}")
    for key in ("wrappers", "callbacks"):
        if _non_empty(getattr(patcher, key, None)):
            raise UnsupportedModelError(f"this MODEL carries patcher {key} ({sorted(getattr(patcher, key))}), "
                                        f"added by an upstream node. {ADVICE}")
    if getattr(patcher, "hook_patches", None):
        raise UnsupportedModelError("this MODEL carries hook weight patches (Create Hook LoRA / Set Model Hooks), "
                                    "which the sampler applies per conditioning. Load the LoRA with LoraLoader "
                                    "instead so it is trained on, or add the hooks after the trained slider")
    if clip is not None and getattr(clip, "use_clip_schedule", False) and getattr(clip.patcher, "forced_hooks", None):
        raise UnsupportedModelError("this CLIP carries scheduled CLIP hooks (Set CLIP Hooks with a schedule), which "
                                    "CLIPTextEncode applies per step and Train Slider cannot: connect the CLIP from "
                                    "before Set CLIP Hooks")


def unet_transformer_options(patcher, timesteps: torch.Tensor, sigmas: Optional[torch.Tensor] = None) -> Optional[dict]:
    """The transformer_options the sampler would pass to the UNet (its patches), or None when there are none.

    As comfy/samplers.py does: a copy with fresh patch lists, plus the step's sigmas. Every row of the
    trainer's batch is passed as one conditional chunk (cond_or_uncond [0]). A flow backend hands its `sigmas`
    (its integer timesteps index a sigma table, not model_sampling's timestep units)."""
    options = (getattr(patcher, "model_options", {}) or {}).get("transformer_options", {}) or {}
    if not options:
        return None
    copied = dict(options)
    if "patches" in copied:
        copied["patches"] = {name: list(fns) for name, fns in copied["patches"].items()}
    copied["cond_or_uncond"] = [0]
    copied["sigmas"] = sigmas if sigmas is not None else patcher.get_model_object("model_sampling").sigma(timesteps.float())
    return copied
