"""CLIP / SigLIP evaluator through transformers, with weights the user already has (a local folder, or a hub id
already in the local Hugging Face cache: nothing is downloaded).

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


def resolve_weights(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, "is required: a local CLIP/SigLIP folder (transformers format) or a hub id already downloaded")
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
    check_keys(settings, ("weights", "positive", "negative"), field)
    for key in ("positive", "negative"):
        if key in settings and (not isinstance(settings[key], str) or not settings[key].strip()):
            raise ConfigError(f"{field}.{key}", f"must be a non-empty prompt, got {settings[key]!r}")
    return {"weights": resolve_weights(settings.get("weights"), f"{field}.weights"),
            "positive": settings.get("positive"), "negative": settings.get("negative")}


def _features(output):
    """transformers 5 returns an output object whose pooler_output holds the projected features; 4.x a tensor."""
    return (output if hasattr(output, "float") else output.pooler_output).float()


class ClipEvaluator(Evaluator):
    name, needs = "clip", "a local CLIP or SigLIP model (transformers)"
    metrics = ("clip_score", "clip_pole_delta", "clip_image")

    def __init__(self, settings: Mapping[str, Any]):
        self.settings = _validate(settings, "evaluators.clip")
        transformers = require("transformers", "transformers", "clip")
        weights = self.settings["weights"]
        self.model = transformers.AutoModel.from_pretrained(weights, local_files_only=True).eval()
        self.processor = transformers.AutoProcessor.from_pretrained(weights, local_files_only=True)

    def _images(self, images: np.ndarray):
        import torch

        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            return torch.nn.functional.normalize(_features(self.model.get_image_features(pixel_values=pixels)), dim=-1)

    def _texts(self, texts):
        import torch

        padding = "max_length" if "siglip" in type(self.model).__name__.lower() else True  # SigLIP was trained padded
        tokens = self.processor(text=list(texts), return_tensors="pt", padding=padding, truncation=True)
        with torch.no_grad():
            features = self.model.get_text_features(**{k: v for k, v in tokens.items() if k in ("input_ids", "attention_mask")})
        return torch.nn.functional.normalize(_features(features), dim=-1)

    def score(self, images, prompts, reference):
        mine = self._images(images)
        base = mine if reference is None else self._images(reference)
        result = {"clip_score": (mine * self._texts(prompts)).sum(-1).double().numpy(),
                  "clip_image": (mine * base).sum(-1).double().numpy()}
        if self.settings["positive"]:
            poles = self._texts([self.settings["positive"]] + ([self.settings["negative"]] if self.settings["negative"] else []))
            toward = poles[0] - poles[1] if len(poles) > 1 else poles[0]
            result["clip_pole_delta"] = ((mine - base) @ toward).double().numpy()
        return result


register("clip", _validate)(ClipEvaluator)
