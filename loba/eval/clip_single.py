"""The clip evaluator's other weight formats: a ComfyUI `clip_vision` single file (a .safetensors holding a
transformers CLIPVisionModelWithProjection state dict: image tower only, so only clip_image is scored) and open_clip
(`open_clip_model = "ViT-B-32"` with a local checkpoint file; the package is optional)."""

from __future__ import annotations

import math

from ..errors import ConfigError
from .registry import require

PATCH = "vision_model.embeddings.patch_embedding.weight"
POSITIONS = "vision_model.embeddings.position_embedding.weight"
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def vision_config(state: dict, field: str):
    """A CLIPVisionConfig from the tensor shapes (heads: 64 channels each, as every released CLIP)."""
    from transformers import CLIPVisionConfig

    if PATCH not in state or POSITIONS not in state or "visual_projection.weight" not in state:
        raise ConfigError(field, f"holds no {PATCH} / visual_projection.weight: not a clip_vision file "
                                 "(ComfyUI's models/clip_vision, transformers CLIPVisionModelWithProjection keys)")
    hidden, _, patch, _ = state[PATCH].shape
    side = math.isqrt(state[POSITIONS].shape[0] - 1)
    layers = len({key.split(".")[3] for key in state if key.startswith("vision_model.encoder.layers.")})
    # OpenAI's ViT-L/14 uses quick_gelu; the LAION ViT-H/bigG clip_vision files use gelu (ComfyUI's configs say the same).
    act = "quick_gelu" if (hidden, layers) == (1024, 24) else "gelu"
    return CLIPVisionConfig(hidden_size=hidden, intermediate_size=state["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
                            num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64), image_size=side * patch,
                            patch_size=patch, projection_dim=state["visual_projection.weight"].shape[0], hidden_act=act)


class VisionFile:
    """get_image_features for a clip_vision file; the images resized to the tower's size with CLIP's normalization."""

    def __init__(self, path: str, field: str):
        from safetensors.torch import load_file
        from transformers import CLIPVisionModelWithProjection

        state = load_file(path)
        state = {k.removeprefix("clip_vision_model."): v for k, v in state.items()}
        self.config = vision_config(state, field)
        self.model = CLIPVisionModelWithProjection(self.config).eval()
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if [k for k in missing if "position_ids" not in k] or unexpected:
            raise ConfigError(field, f"{path} does not match a CLIP vision tower: missing {missing[:3]}, unexpected {unexpected[:3]}")

    def pixels(self, images):
        import torch

        size = self.config.image_size
        batch = torch.from_numpy(images.copy()).permute(0, 3, 1, 2).float() / 255.0
        batch = torch.nn.functional.interpolate(batch, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        return (batch - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)

    def image_features(self, images):
        return self.model(pixel_values=self.pixels(images)).image_embeds


class OpenClip:
    """open_clip's encode_image / encode_text for an architecture name and a local checkpoint file."""

    def __init__(self, architecture: str, path: str):
        open_clip = require("open_clip", "open_clip_torch", "clip")
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(architecture, pretrained=path)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(architecture)

    def image_features(self, images):
        import torch
        from PIL import Image

        return self.model.encode_image(torch.stack([self.preprocess(Image.fromarray(image)) for image in images]))

    def text_features(self, texts):
        return self.model.encode_text(self.tokenizer(list(texts)))
