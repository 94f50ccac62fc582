"""The flow toy world's denoiser training: rectified-flow matching of a toy Flux transformer.

x_t = (1 - sigma) x0 + sigma eps and the loss is the mean squared error of the predicted velocity against
eps - x0. The timestep is drawn uniformly from the 1000 integer timesteps of the sigma table the model is
sampled and trained on as a slider base (not logit-normal as SD3 / Flux): the toy world decides shape,
color and background in the first, noisiest steps (sigma near 1, where a logit-normal density is nearly
zero), so those steps must be trained as often as the middle ones. The text encoder is frozen (the shipped
world's), so every caption's context and pooled vector are computed once.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .captions import caption
from .flow_model import FlowComponents, encode_text, flow_velocity
from .train_autoencoder import cosine_lr
from .train_denoiser import UNCONDITIONAL_RATE, _ema_update, _load_progress, _save_progress

Log = Callable[[str], None]


class CaptionEmbeddings:
    """(context, pooled) of every caption, encoded once by the frozen text encoder."""

    def __init__(self, components: FlowComponents):
        self.components = components
        self.cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            context, pooled = encode_text(self.components.tokenizer, self.components.text_encoder, missing)
            self.cache.update({t: (c, p) for t, c, p in zip(missing, context, pooled)})
        return torch.stack([self.cache[t][0] for t in texts]), torch.stack([self.cache[t][1] for t in texts])


def flow_loss(transformer, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, context, pooled) -> torch.Tensor:
    """Velocity MSE at sigma [B]: the rectified-flow objective."""
    s = sigma.float().view(-1, 1, 1, 1)
    x_t = (1 - s) * x0 + s * noise
    return (flow_velocity(transformer, x_t, sigma.float(), context, pooled) - (noise - x0)).pow(2).mean()


def train_flow_denoiser(components: FlowComponents, latents: torch.Tensor, attributes: list, steps: int, batch: int, seed: int,
                        log: Log, lr: float = 5e-4, ema_decay: float = 0.998, progress: Optional[Path] = None,
                        save_every: int = 100, warmup: int = 100, captioner: Callable = caption,
                        stop_at: Optional[int] = None) -> None:
    """Train components.transformer for `steps` steps (cosine learning rate); its EMA ends up in `components`.
    `stop_at` ends training early on the same `steps`-long schedule (a later, longer run resumes from there).

    With `progress`, the whole state (weights, EMA, optimizer, both random streams) is saved every `save_every`
    steps, and an interrupted run resumes exactly where it stopped: the same draws and the same weights."""
    transformer = components.transformer
    ema = copy.deepcopy(transformer).eval().requires_grad_(False)
    transformer.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=lr, weight_decay=0.01)
    sigmas = components.sigmas().float()
    embed = CaptionEmbeddings(components)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    modules = {"transformer": transformer, "ema_transformer": ema}
    start = _load_progress(progress, modules, optimizer, generator, rng)
    if start:
        log(f"flow denoiser resumes at step {start}")
    started = time.perf_counter()
    end = min(steps, stop_at or steps)
    for step in range(start, end):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup=min(warmup, steps))
        index = torch.randint(len(latents), (batch,), generator=generator)
        texts = ["" if rng.random() < UNCONDITIONAL_RATE else captioner(attributes[i], rng) for i in index.tolist()]
        x0 = latents[index]
        noise = torch.randn(x0.shape, generator=generator)
        sigma = sigmas[torch.randint(0, len(sigmas), (batch,), generator=generator)]
        loss = flow_loss(transformer, x0, noise, sigma, *embed(texts))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
        optimizer.step()
        # A short warm EMA first: the early weights are noise and a 0.998 average would keep them for long.
        _ema_update(ema, transformer, ema_decay if step >= steps // 5 else 0.9)
        if step % 100 == 0 or step == steps - 1:
            log(f"flow denoiser step {step + 1}/{steps} loss {loss.item():.4f} ({time.perf_counter() - started:.0f}s)")
        if progress is not None and ((step + 1) % save_every == 0 or step + 1 == end):
            _save_progress(progress, step + 1, modules, optimizer, generator, rng)
    components.transformer = ema
