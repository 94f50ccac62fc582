"""Slider files in ComfyUI's loras folder, and applying a slider through the stock LoRA path.

Applying goes through comfy.sd.load_lora_for_models, exactly what LoraLoaderModelOnly does, so a preview
shows what users get with the stock loader.
"""

from __future__ import annotations

from pathlib import Path

import comfy.lora
import comfy.sd
import folder_paths
import torch

from ..loba.errors import AdapterFileError, ConfigError, UnsupportedModelError
from ..loba.eval.slider_check import check_family, slider_family
from ..loba.sliders.kohya import SliderFile, load_slider
from .comfy_backend import model_family
from .flux_comfy import check_clip
from .node_errors import fail
from .output_paths import checked_prefix
from .slider_fit import check_fits_model

TEXT_ENCODER_PREFIXES = ("lora_te_", "lora_te1_", "lora_te2_")


def loras_folder() -> Path:
    return Path(folder_paths.get_folder_paths("loras")[0])


def new_slider_path(prefix: str, node: str, field: str = "filename_prefix") -> Path:
    """<loras>/<prefix>_<counter>_.safetensors; a prefix that leaves the loras folder, or that a file system would
    refuse (checked piece by piece before any work), is refused."""
    prefix = checked_prefix(prefix, node, field)
    folder = str(loras_folder())
    try:
        full_folder, name, counter, _, _ = folder_paths.get_save_image_path(prefix, folder)
    except Exception as exc:  # ComfyUI refuses names outside the folder
        raise fail(node, field, f"'{prefix}' would leave the loras folder ({exc})") from None
    return Path(full_folder) / f"{name}_{counter:05}_.safetensors"


def load_lora_by_name(name: str, node: str, field: str = "lora_name") -> SliderFile:
    path = folder_paths.get_full_path("loras", name)
    if path is None:
        raise fail(node, field, f"'{name}' is not in the loras folder ({loras_folder()}); refresh the list or save a slider first")
    try:
        return load_slider(path)
    except AdapterFileError as exc:
        raise fail(node, field, str(exc)) from None


def unet_tensors(slider: SliderFile, model, node: str, field: str = "slider") -> dict[str, torch.Tensor]:
    """The slider's UNet tensors, after checking that every module exists in this MODEL."""
    known = comfy.lora.model_lora_keys_unet(model.model, {})
    tensors = {k: v for k, v in slider.tensors.items() if not k.startswith(TEXT_ENCODER_PREFIXES)}
    stems = SliderFile(tensors).module_stems()
    _check_family(slider, model, node, field)
    foreign = sorted(stem for stem in stems if stem not in known)
    if not stems:
        raise fail(node, field, "the slider holds no UNet layers (text-encoder-only LoRAs are not sliders)")
    if foreign:
        raise fail(node, field, f"{len(foreign)} of {len(stems)} layers do not exist in this MODEL, e.g. {', '.join(foreign[:3])}: "
                                "the slider was made for another model family")
    check_fits_model(tensors, stems, known, model, node, field)
    return tensors


def _check_family(slider: SliderFile, model, node: str, field: str) -> None:
    """An SDXL slider on Flux (or the reverse) is named as such, before its keys are compared (between SD families the
    key check below decides, as before: it names the missing layers)."""
    try:
        family = model_family(model.model)
    except UnsupportedModelError:
        return  # a model LOBA does not train: the key check below still decides
    if "flux" not in (family, slider_family(slider)):
        return
    try:
        check_family(slider, family, field)
    except ConfigError as exc:
        raise fail(node, field, str(exc).split(": ", 1)[-1]) from None


def apply_slider(model, slider: SliderFile, strength: float, node: str):
    """A clone of MODEL with the slider at `strength` (any sign), through the stock LoraLoaderModelOnly path."""
    if strength == 0:
        return model
    patched, _ = comfy.sd.load_lora_for_models(model, None, unet_tensors(slider, model, node), float(strength), 0)
    return patched


def check_model_clip(model, clip, node: str) -> None:
    """A Flux MODEL with an SD CLIP (or the reverse) is refused, naming the clip input, before any sampling."""
    try:
        family = model_family(model.model)
    except UnsupportedModelError:
        return
    try:
        check_clip(family, clip)
    except ConfigError as exc:
        raise fail(node, "clip", str(exc).split(": ", 1)[-1]) from None
