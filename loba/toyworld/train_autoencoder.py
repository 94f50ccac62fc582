"""Stage 1 of `loba toyworld build`: the small KL autoencoder, trained on fresh renders every step."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from .render import render_batch

Log = Callable[[str], None]


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1] (the VAE's range)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def cosine_lr(step: int, total: int, peak: float, warmup: int, floor: float = 0.05) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_autoencoder(vae, steps: int, batch: int, seed: int, log: Log, lr: float = 2e-3, kl_weight: float = 1e-6) -> None:
    """L1 + MSE reconstruction with a tiny KL term; images are rendered afresh for every step."""
    vae.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup=min(200, steps // 10 + 1))
        images = images_to_tensor(render_batch(batch, seed=seed * 1_000_003 + step)[0])
        posterior = vae.encode(images).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        reconstruction = vae.decode(latents).sample
        error = reconstruction - images
        loss = error.abs().mean() + error.pow(2).mean() + kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"autoencoder step {step + 1}/{steps} loss {loss.item():.4f} ({time.perf_counter() - started:.0f}s)")
    vae.eval().requires_grad_(False)


@torch.no_grad()
def reconstruction_accuracy(vae, n: int, seed: int) -> dict[str, float]:
    """Fraction of fresh renders whose every attribute the reader still recovers after encode/decode."""
    from .reader import read_batch, read_batch_float

    images, _ = render_batch(n, seed)
    truth = read_batch(images)
    decoded = torch.cat([vae.decode(vae.encode(chunk).latent_dist.mean).sample
                         for chunk in images_to_tensor(images).split(256)])
    reads = read_batch_float(decoded.clamp(-1, 1), value_range=(-1.0, 1.0))
    return {name: float(np.mean([getattr(a, name) == getattr(b, name) for a, b in zip(reads, truth)]))
            for name in ("shape", "color", "size", "background")}


@torch.no_grad()
def latent_scaling_factor(vae, n: int, seed: int) -> float:
    """1 / std of the latents, so the UNet sees unit-variance data (SD's 0.18215 is the same idea)."""
    images, _ = render_batch(n, seed)
    means = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in images_to_tensor(images).split(256)])
    return float(1.0 / means.std())
