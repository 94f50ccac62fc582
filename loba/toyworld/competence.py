"""How well the toy model draws what it is asked: the reader on samples of the base model.

Fully specified prompts: per-attribute accuracy (the issue's bar: color >= 95%, shape >= 90%,
size >= 90%, background >= 95%). Partial prompts ("a circle"): every value of each attribute the
prompt leaves out must appear among the samples.
"""

from __future__ import annotations

import time

import numpy as np

from .attributes import ATTRIBUTE_VALUES
from .captions import all_full_prompts, parse_caption
from .model import DEFAULT_SAMPLING, ToyComponents
from .reader import read_batch
from .samplers import sampler_name, toy_sampler
from .sampling import ToySampler

THRESHOLDS = {"color": 0.95, "shape": 0.90, "size": 0.90, "background": 0.95}
PARTIAL_PROMPTS = ("a circle", "a square", "a triangle")


def _seeds(prompt_index: int, samples: int, seed: int) -> list[int]:
    return [seed * 1_000_003 + prompt_index * 10_007 + i for i in range(samples)]


def full_prompt_accuracy(sampler: ToySampler, samples: int, seed: int, batch_size: int) -> dict[str, float]:
    prompts = all_full_prompts()
    texts = [p for p in prompts for _ in range(samples)]
    seeds = [s for i in range(len(prompts)) for s in _seeds(i, samples, seed)]
    reads = read_batch(sampler.sample(texts, seeds, None, 0.0, DEFAULT_SAMPLING["steps"], DEFAULT_SAMPLING["cfg"], batch_size))
    hits = {name: [] for name in THRESHOLDS}
    for text, read in zip(texts, reads):
        for name, value in parse_caption(text).items():
            hits[name].append(getattr(read, name) == value)
    return {name: float(np.mean(values)) for name, values in hits.items()}


def partial_prompt_coverage(sampler: ToySampler, samples: int, seed: int, batch_size: int) -> dict[str, dict[str, list[str]]]:
    """For each partial prompt, the values of each unmentioned attribute that never appeared (empty = all seen)."""
    missing: dict[str, dict[str, list[str]]] = {}
    for index, prompt in enumerate(PARTIAL_PROMPTS):
        seeds = _seeds(1000 + index, samples, seed)
        reads = read_batch(sampler.sample([prompt] * samples, seeds, None, 0.0, DEFAULT_SAMPLING["steps"],
                                          DEFAULT_SAMPLING["cfg"], batch_size))
        mentioned = parse_caption(prompt)
        missing[prompt] = {name: sorted(set(values) - {getattr(r, name) for r in reads})
                           for name, values in ATTRIBUTE_VALUES.items() if name not in mentioned}
    return missing


def measure_competence(components: ToyComponents, samples_per_prompt: int = 64, partial_samples: int = 64, seed: int = 0,
                       batch_size: int = 128, device: str = "cpu") -> dict:
    started = time.perf_counter()
    sampler = toy_sampler(components, device)
    accuracy = full_prompt_accuracy(sampler, samples_per_prompt, seed, batch_size)
    coverage = partial_prompt_coverage(sampler, partial_samples, seed, batch_size)
    competent = all(accuracy[name] >= bar for name, bar in THRESHOLDS.items()) and not any(
        values for prompt in coverage.values() for values in prompt.values())
    return {"accuracy": accuracy, "thresholds": THRESHOLDS, "partial_prompts_missing_values": coverage,
            "samples_per_prompt": samples_per_prompt,
            "sampling": {**DEFAULT_SAMPLING, "sampler": sampler_name(components)}, "competent": competent,
            "seconds": time.perf_counter() - started}
