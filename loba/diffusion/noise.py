"""Initial noise of the partial denoise: standard normal plus optional offset and pyramid noise.

Every draw comes from one CPU generator in a fixed order, so a seed gives the same noise on any
device; the result is moved to the target device/dtype at the end.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config.train_config import NoiseConfig


def initial_noise(shape, generator: torch.Generator, cfg: NoiseConfig, device, dtype) -> torch.Tensor:
    """Noise of `shape` [B, C, H, W]: randn, + offset noise, + pyramid noise (renormalized)."""
    if generator.device.type != "cpu":
        raise ValueError("initial_noise needs a CPU generator so that a seed gives the same noise on every device")
    batch, channels, height, width = shape
    noise = torch.randn(tuple(shape), generator=generator, dtype=torch.float32)
    if float(cfg.noise_offset) > 0:
        # A per-image, per-channel constant shifts mean brightness/color, which plain noise almost never does.
        noise = noise + float(cfg.noise_offset) * torch.randn(batch, channels, 1, 1, generator=generator)
    if int(cfg.multires_noise_iterations) > 0:
        noise = _add_pyramid(noise, generator, int(cfg.multires_noise_iterations), float(cfg.multires_noise_discount))
    return noise.to(device=device, dtype=dtype)


def _add_pyramid(noise: torch.Tensor, generator: torch.Generator, iterations: int, discount: float) -> torch.Tensor:
    """Add upsampled coarse noise at 1/2, 1/4, ... resolution (weight discount**i), then unit std per sample."""
    batch, channels, height, width = noise.shape
    for i in range(1, iterations + 1):
        coarse_h, coarse_w = height // 2**i, width // 2**i
        if coarse_h < 1 or coarse_w < 1:
            break
        coarse = torch.randn(batch, channels, coarse_h, coarse_w, generator=generator)
        noise = noise + discount**i * F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    # The sum has more than unit variance; the sampler expects N(0, 1)-scaled noise.
    return noise / noise.std(dim=(1, 2, 3), keepdim=True)
