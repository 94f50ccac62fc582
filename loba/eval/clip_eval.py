"""CLIP / SigLIP evaluator with weights the user already has: a transformers folder, a hub id already in the local
Hugging Face cache, a ComfyUI clip_vision .safetensors (image tower only: clip_image), or an open_clip checkpoint
file with `open_clip_model` (clip_single.py). Nothing is downloaded.

Per image: clip_score (image-prompt cosine), clip_pole_delta (how much closer to the positive pole, minus the
negative pole when given, than the same-seed w = 0 image) and clip_image (cosine to the w = 0 image).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .registry import Evaluator, check_keys, register, require


def _is_path(text: str) -> bool:
    # A hub id is exactly 'owner/name'; anything else (absolute, ~, ./, more slashes, backslashes) is a path.
    return text.startswith(("/", "~", ".")) or "\\" in text or text.count("/") != 1 or os.path.exists(text)


def resolve_weights(value: Any, field: str, single_file: bool = False) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, "is required: a local CLIP/SigLIP folder (transformers format), a clip_vision .safetensors "
                                 "or a hub id already downloaded")
    if single_file or value.endswith((".safetensors", ".bin", ".pt", ".pth")):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ConfigError(field, f"file {value} does not exist")
        return str(path)
    if _is_path(value):
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise ConfigError(field, f"folder {value} does not exist (a transformers CLIP or SigLIP model folder)")
        if not (folder / "config.json").is_file():
            raise ConfigError(field, f"{value} holds no config.json: not a transformers model folder")
        return str(folder)
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(value, "config.json"), str):
        raise ConfigError(field, f"hub id {value} is not in the local Hugging Face cache; LOBA never downloads: "
                                 "download it once yourself or give a local folder")
    return value


def _validate(settings: Mapping[str, Any], field: str) -> dict:
    check_keys(settings, ("weights", "positive", "negative", "open_clip_model"), field)
    for key in ("positive", "negative", "open_clip_model"):
        if key in settings and (not isinstance(settings[key], str) or not settings[key].strip()):
            raise ConfigError(f"{field}.{key}", f"must be a non-empty string, got {settings[key]!r}")
    architecture = settings.get("open_clip_model")
    weights = resolve_weights(settings.get("weights"), f"{field}.weights", single_file=bool(architecture))
    if not architecture and weights.endswith(".safetensors") and settings.get("positive"):
        raise ConfigError(f"{field}.positive", f"{weights} is a clip_vision file (image tower only): it scores clip_image; "
                                               "a pole needs a text tower (a transformers folder or open_clip_model)")
    if not architecture and Path(weights).is_file() and not weights.endswith(".safetensors"):
        raise ConfigError(f"{field}.open_clip_model", f"is required for the checkpoint file {weights} (e.g. \"ViT-B-32\")")
    return {"weights": weights, "positive": settings.get("positive"), "negative": settings.get("negative"),
            "open_clip_model": architecture}


def _features(output):
    """transformers 5 returns an output object whose pooler_output holds the projected features; 4.x a tensor."""
    return (output if hasattr(output, "float") else output.pooler_output).float()


class ClipEvaluator(Evaluator):
    name, needs = "clip", "a local CLIP or SigLIP model (transformers folder, clip_vision file, or open_clip checkpoint)"
    metrics = ("clip_score", "clip_pole_delta", "clip_image")

    def __init__(self, settings: Mapping[str, Any]):
        from .clip_single import OpenClip, VisionFile

        self.settings = _validate(settings, "evaluators.clip")
        weights, self.tower = self.settings["weights"], None
        if self.settings["open_clip_model"]:
            self.tower = OpenClip(self.settings["open_clip_model"], weights)
            return
        transformers = require("transformers", "transformers", "clip")
        if Path(weights).is_file():
            self.tower = VisionFile(weights, "evaluators.clip.weights")
            return
        self.model = transformers.AutoModel.from_pretrained(weights, local_files_only=True).eval()
        self.processor = transformers.AutoProcessor.from_pretrained(weights, local_files_only=True)

    def _images(self, images: np.ndarray):
        import torch

        with torch.no_grad():
            if self.tower is not None:
                return torch.nn.functional.normalize(_features(self.tower.image_features(images)), dim=-1)
            pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
            return torch.nn.functional.normalize(_features(self.model.get_image_features(pixel_values=pixels)), dim=-1)

    def _texts(self, texts):
        import torch

        if self.tower is not None:
            with torch.no_grad():
                return torch.nn.functional.normalize(_features(self.tower.text_features(texts)), dim=-1)
        padding = "max_length" if "siglip" in type(self.model).__name__.lower() else True  # SigLIP was trained padded
        tokens = self.processor(text=list(texts), return_tensors="pt", padding=padding, truncation=True)
        with torch.no_grad():
            features = self.model.get_text_features(**{k: v for k, v in tokens.items() if k in ("input_ids", "attention_mask")})
        return torch.nn.functional.normalize(_features(features), dim=-1)

    def score(self, images, prompts, reference):
        mine = self._images(images)
        base = mine if reference is None else self._images(reference)
        result = {}
        if self.tower is None or hasattr(self.tower, "text_features"):  # a clip_vision file has no text tower
            result["clip_score"] = (mine * self._texts(prompts)).sum(-1).double().numpy()
        result["clip_image"] = (mine * base).sum(-1).double().numpy()
        if self.settings["positive"]:
            poles = self._texts([self.settings["positive"]] + ([self.settings["negative"]] if self.settings["negative"] else []))
            toward = poles[0] - poles[1] if len(poles) > 1 else poles[0]
            result["clip_pole_delta"] = ((mine - base) @ toward).double().numpy()
        return result


register("clip", _validate)(ClipEvaluator)
