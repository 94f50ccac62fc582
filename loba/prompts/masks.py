"""Loss masks: where on the image a pair trains (white = train, black = ignore).

torch and PIL are imported inside the functions so that importing loba.prompts stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import torch


def load_mask_image(path: Union[str, Path]) -> torch.Tensor:
    """A grayscale image as a [H, W] float32 mask in 0..1. Raises OSError when it cannot be read."""
    import torch
    from PIL import Image

    with Image.open(path) as image:
        gray = image.convert("L")
        width, height = gray.size
        pixels = bytearray(gray.tobytes())
    return torch.frombuffer(pixels, dtype=torch.uint8).reshape(height, width).to(torch.float32) / 255.0


def box_mask(height: int, width: int, box: Sequence[float]) -> torch.Tensor:
    """A [H, W] mask that is 1 inside box = [top, left, bottom, right] (fractions 0..1 of the image).

    Raises ValueError naming the problem when the box is malformed.
    """
    import torch

    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(_is_number(v) for v in box)):
        raise ValueError(f"must be [top, left, bottom, right] as fractions 0..1, e.g. [0.0, 0.25, 1.0, 0.75]; got {box!r}")
    top, left, bottom, right = (float(v) for v in box)
    if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
        raise ValueError(f"{list(box)}: need 0 <= top < bottom <= 1 and 0 <= left < right <= 1")
    mask = torch.zeros(height, width, dtype=torch.float32)
    rows = _span(top, bottom, height)
    cols = _span(left, right, width)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = 1.0
    return mask


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _span(start: float, end: float, size: int) -> tuple[int, int]:
    # At least one pixel, so a thin box on a small test image never becomes an all-black mask.
    first = min(int(round(start * size)), size - 1)
    return first, max(int(round(end * size)), first + 1)


def mask_to_latent(mask: torch.Tensor, latent_hw: Sequence[int]) -> torch.Tensor:
    """Resize a [H, W] or [B, H, W] mask to [B or 1, 1, h, w] in 0..1 for a latent-space loss.

    Area averaging where a side shrinks (a latent pixel covers several image pixels: it should be
    partly masked, not sampled), bilinear where a side grows.
    """
    import torch.nn.functional as F

    if mask.dim() not in (2, 3):
        raise ValueError(f"mask must be [H, W] or [B, H, W], got shape {list(mask.shape)}")
    x = (mask[None] if mask.dim() == 2 else mask)[:, None].float()
    height, width = int(latent_hw[0]), int(latent_hw[1])
    src_h, src_w = x.shape[-2:]
    if height < src_h or width < src_w:
        x = F.interpolate(x, size=(min(height, src_h), min(width, src_w)), mode="area")
    if height > src_h or width > src_w:
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x.clamp(0.0, 1.0)
