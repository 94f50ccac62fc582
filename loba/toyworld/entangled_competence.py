"""How the entangled toy model draws: explicit prompts obeyed, designed biases on under-specified ones,
style words obeyed and unbiased. Every figure is the styled reader on the model's samples."""

from __future__ import annotations

import time

import numpy as np
import torch

from .entangled_captions import BIASES, parse_entangled
from .model import DEFAULT_SAMPLING, ToyComponents
from .style_reader import read_styled_batch

READ_ATTRIBUTES = ("shape", "color", "size", "background", "linework", "palette")
# (prompt, attribute, value whose rate is measured, the designed rate or None where the prompt names it)
BIAS_PROMPTS = (
    ("a triangle", "color", "red", BIASES["triangle_red"]),
    ("a square", "background", "dark", BIASES["square_dark"]),
    ("a large shape", "shape", "circle", BIASES["large_circle"]),
    ("a circle", "linework", "outlined", 0.5),
    ("a circle", "palette", "pastel", 0.5),
)
# Explicit prompts: each named attribute must be read back.
EXPLICIT_PROMPTS = ("a blue triangle", "a pastel outlined square on a light background")


@torch.no_grad()
def styled_read_back(vae, n: int, seed: int) -> dict[str, float]:
    """Fraction of fresh styled renders whose attribute the styled reader still reads after encode/decode."""
    from .render import render_styled_batch
    from .train_autoencoder import images_to_tensor

    images, _, _ = render_styled_batch(n, seed)
    truth = read_styled_batch(images)
    decoded = torch.cat([vae.decode(vae.encode(chunk).latent_dist.mean).sample for chunk in images_to_tensor(images).split(256)])
    reads = read_styled_batch(((decoded.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
    return {name: float(np.mean([a.categorical()[name] == b.categorical()[name] for a, b in zip(reads, truth)]))
            for name in READ_ATTRIBUTES}


def _sample_reads(components: ToyComponents, prompts: list[str], samples: int, seed: int, batch_size: int) -> dict:
    from .sampling import ToySampler

    sampler = ToySampler(components)
    texts = [p for p in prompts for _ in range(samples)]
    seeds = [seed * 1_000_003 + 20_011 * i + j for i in range(len(prompts)) for j in range(samples)]
    images = sampler.sample(texts, seeds, None, 0.0, DEFAULT_SAMPLING["steps"], DEFAULT_SAMPLING["cfg"], batch_size)
    reads = read_styled_batch(images)
    return {p: [r.categorical() for r in reads[i * samples:(i + 1) * samples]] for i, p in enumerate(prompts)}


def measure_entangled(components: ToyComponents, samples: int = 64, seed: int = 0, batch_size: int = 128) -> dict:
    """{"bias": per prompt the measured rate beside the designed one, "explicit": per prompt and named
    attribute the fraction read back as named, "samples_per_prompt", "sampling", "seconds"}."""
    started = time.perf_counter()
    prompts = list(dict.fromkeys([p for p, *_ in BIAS_PROMPTS] + list(EXPLICIT_PROMPTS)))
    reads = _sample_reads(components, prompts, samples, seed, batch_size)
    bias = {f"{p} -> {name}={value}": {"measured": float(np.mean([r[name] == value for r in reads[p]])), "designed": rate}
            for p, name, value, rate in BIAS_PROMPTS}
    explicit = {p: {name: float(np.mean([r[name] == value for r in reads[p]])) for name, value in parse_entangled(p).items()}
                for p in EXPLICIT_PROMPTS}
    return {"bias": bias, "explicit": explicit, "samples_per_prompt": samples, "sampling": DEFAULT_SAMPLING,
            "seconds": time.perf_counter() - started}
