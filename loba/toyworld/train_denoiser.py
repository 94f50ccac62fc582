"""Stage 2 of `loba toyworld build`: text encoder and UNet trained together on encoded renders."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..diffusion.schedule import NoiseSchedule
from .captions import caption
from .render import render_batch
from .train_autoencoder import cosine_lr, images_to_tensor

Log = Callable[[str], None]
UNCONDITIONAL_RATE = 0.1  # captions replaced by "" so classifier-free guidance has an unconditional model


@torch.no_grad()
def encode_dataset(vae, n: int, seed: int, scaling_factor: float) -> tuple[torch.Tensor, list]:
    """Scaled posterior means of n fresh renders, and their attributes."""
    images, attributes = render_batch(n, seed)
    latents = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in images_to_tensor(images).split(512)])
    return latents * scaling_factor, attributes


class CaptionTokens:
    """Token ids of every caption, computed once (the grammar has only 135 sentences and "")."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            ids = self.tokenizer(missing, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
            self.cache.update(zip(missing, ids))
        return torch.stack([self.cache[t] for t in texts])


def _ema_update(ema: torch.nn.Module, live: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), live.parameters()):
            e.lerp_(p, 1 - decay)


def _save_progress(path: Path, step: int, modules: dict, optimizer, generator: torch.Generator, rng) -> None:
    state = {"step": step, "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
             "rng": rng.bit_generator.state, **{name: m.state_dict() for name, m in modules.items()}}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load_progress(path: Optional[Path], modules: dict, optimizer, generator: torch.Generator, rng) -> int:
    if path is None or not path.is_file():
        return 0
    state = torch.load(path, weights_only=False)
    for name, module in modules.items():
        module.load_state_dict(state[name])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    rng.bit_generator.state = state["rng"]
    return int(state["step"])


def train_denoiser(components, latents: torch.Tensor, attributes: list, steps: int, batch: int, seed: int, log: Log,
                   lr: float = 4e-4, ema_decay: float = 0.999, progress: Optional[Path] = None, save_every: int = 500,
                   stop_at: Optional[int] = None, captioner: Callable = caption, text_rows: Optional[list[int]] = None,
                   warmup: int = 500) -> None:
    """Epsilon-prediction DDPM training; the EMA weights end up in `components`.

    With `progress`, the whole state is saved every `save_every` steps and an interrupted run resumes
    exactly where it stopped (same draws, same weights). `stop_at` ends training early on the same
    `steps`-long learning-rate schedule. `captioner(attributes[i], rng)` writes the captions (fine-tunes
    with their own grammar); `text_rows` freezes the text encoder except those token-embedding rows.
    """
    unet, text_encoder = components.unet, components.text_encoder
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()
    unet.train().requires_grad_(True)
    text_encoder.train().requires_grad_(True)
    params, optimizer = _optimizer(unet, text_encoder, lr, text_rows)
    schedule = NoiseSchedule(_alphas_cumprod(), "epsilon")
    tokens = CaptionTokens(components.tokenizer)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    modules = {"unet": unet, "text_encoder": text_encoder, "ema_unet": ema_unet, "ema_text": ema_text}
    start = _load_progress(progress, modules, optimizer, generator, rng)
    if start:
        log(f"denoiser resumes at step {start}")
    started = time.perf_counter()
    for step in range(start, min(steps, stop_at or steps)):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup=warmup)
        index = torch.randint(len(latents), (batch,), generator=generator)
        texts = ["" if rng.random() < UNCONDITIONAL_RATE else captioner(attributes[i], rng) for i in index.tolist()]
        x0 = latents[index]
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, schedule.num_train_timesteps, (batch,), generator=generator)
        a, s = schedule.coefficients(t, x0)
        context = text_encoder(tokens(texts))[0]
        loss = (unet(a * x0 + s * noise, t, context).sample - noise).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        _ema_update(ema_unet, unet, ema_decay if step > 1000 else 0.9)
        _ema_update(ema_text, text_encoder, ema_decay if step > 1000 else 0.9)
        if step % 250 == 0 or step == steps - 1:
            log(f"denoiser step {step + 1}/{steps} loss {loss.item():.4f} ({time.perf_counter() - started:.0f}s)")
        if progress is not None and (step + 1) % save_every == 0:
            _save_progress(progress, step + 1, modules, optimizer, generator, rng)
    components.unet, components.text_encoder = ema_unet.requires_grad_(False), ema_text.requires_grad_(False)


def _optimizer(unet, text_encoder, lr: float, text_rows: Optional[list[int]]):
    """(trained parameters, AdamW); with `text_rows` only those token rows of the text encoder learn."""
    if text_rows is None:
        params = list(unet.parameters()) + list(text_encoder.parameters())
        return params, torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    params = list(unet.parameters()) + _only_rows(text_encoder, text_rows)
    groups = [{"params": params[:-1]}, {"params": params[-1:], "weight_decay": 0.0}]  # decay would move every row
    return params, torch.optim.AdamW(groups, lr=lr, weight_decay=0.01)


def _only_rows(text_encoder, rows: list[int]) -> list[torch.nn.Parameter]:
    """Freeze the text encoder but its token embedding, whose gradient is kept on `rows` only (Adam then
    leaves every other row exactly as it was: zero gradient, zero moments, no weight decay)."""
    text_encoder.requires_grad_(False)
    embedding = text_encoder.get_input_embeddings().weight.requires_grad_(True)
    mask = torch.zeros(embedding.shape[0], 1)
    mask[rows] = 1.0
    embedding.register_hook(lambda grad: grad * mask)
    return [embedding]


def _alphas_cumprod() -> torch.Tensor:
    from .model import build_scheduler

    return build_scheduler().alphas_cumprod.double()
