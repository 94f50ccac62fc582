"""The one conversion between pixel tensors and pictures, for every host (ComfyUI, CLI, toy world).

Pixels are ComfyUI's IMAGE layout: float [N, H, W, C] in 0..1. A VAE decoder's raw output, [N, C, H, W]
in -1..1, comes in through decoder_to_pixels. Rounding matches a saved PNG, so an image read back from
disk has the levels these functions produce.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def decoder_to_pixels(decoded: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] in -1..1 (a diffusers VAE's decode) -> [N, H, W, C] in 0..1."""
    return (decoded.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


def pixels_to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """[N, H, W, C] in 0..1 -> uint8 [N, H, W, C], rounded to the nearest level."""
    return (pixels.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def pixels_to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """[N, H, W, C] (or one [H, W, C]) in 0..1 -> RGB pictures (extra channels such as alpha dropped)."""
    batch = pixels if pixels.ndim == 4 else pixels[None]
    return [Image.fromarray(levels[..., :3]) for levels in pixels_to_uint8(batch)]


def pil_to_pixels(image: Image.Image) -> torch.Tensor:
    """A picture -> ComfyUI IMAGE [1, H, W, 3] in 0..1."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)[None]
