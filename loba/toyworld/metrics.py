"""Slider metrics over attribute reads: pure functions, no model, no torch.

Inputs are per-weight lists of ReadResults (or images for drift) in the same sample order at every
weight, so index i is always the same prompt and seed: the comparisons against w=0 are paired.
A figure that cannot be defined (a division by zero) is None, with a `Figure.reason` saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..registry import Registry
from .attributes import ATTRIBUTE_VALUES
from .reader import ReadResult

Reads = Sequence[ReadResult]
ByWeight = Mapping[float, Reads]  # weight -> reads, the same samples in the same order at every weight
CATEGORICAL = tuple(ATTRIBUTE_VALUES)  # shape, color, size, background

# Attribute -> the continuous measure a slider on it moves. Extend with MEASURES.register(name, fn).
MEASURES: Registry[Callable[[ReadResult], float]] = Registry("continuous measure", field="attribute")
MEASURES.register("size", lambda read: read.area)  # object pixel fraction: 0 when the object vanished


@dataclass(frozen=True)
class Figure:
    """A headline number, or None with the reason it is undefined."""

    value: float | None
    reason: str | None = None


def rate(reads: Reads, attribute: str, value: str) -> float:
    """Fraction of samples read as showing `value` (a vanished object shows nothing)."""
    if not reads:
        raise ValueError("no samples to rate")
    return sum(getattr(read, attribute) == value for read in reads) / len(reads)


def rate_by_weight(by_weight: ByWeight, attribute: str, value: str) -> dict[float, float]:
    return {weight: rate(reads, attribute, value) for weight, reads in sorted(by_weight.items())}


def object_rate_by_weight(by_weight: ByWeight) -> dict[float, float]:
    """Fraction of samples where the reader found an object: tells 'erased' from 'gone'."""
    return {weight: sum(read.shape is not None for read in reads) / len(reads) for weight, reads in sorted(by_weight.items())}


def _erase_efficacy(base: float, full: float) -> Figure:
    if base == 0:
        return Figure(None, "the base model never shows the value on the affected prompts (rate 0 at w=0): nothing to erase")
    return Figure(1 - full / base)


def _enhance_efficacy(base: float, full: float) -> Figure:
    if base == 1:
        return Figure(None, "the base model already always shows the value (rate 1 at w=0): nothing to enhance")
    return Figure((full - base) / (1 - base))


EFFICACY: dict[str, Callable[[float, float], Figure]] = {"erase": _erase_efficacy, "enhance": _enhance_efficacy}


def efficacy(kind: str, rates: Mapping[float, float]) -> Figure:
    """erase: 1 - rate(1)/rate(0); enhance: (rate(1) - rate(0)) / (1 - rate(0))."""
    if kind not in EFFICACY:
        raise ValueError(f"efficacy is defined for {', '.join(EFFICACY)}, not {kind!r}")
    return EFFICACY[kind](rates[0.0], rates[1.0])


def measures(reads: Reads, attribute: str) -> np.ndarray:
    measure = MEASURES.get(attribute)
    return np.array([measure(read) for read in reads], dtype=np.float64)


def measure_by_weight(by_weight: ByWeight, attribute: str) -> dict[float, float]:
    """Mean continuous measure per weight."""
    return {weight: float(measures(reads, attribute).mean()) for weight, reads in sorted(by_weight.items())}


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Runs of equal values: each gets the mean of its first and last 1-based position.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + 1 + end) / 2
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> Figure:
    """Spearman rank correlation (Pearson on average ranks, so ties are handled)."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs paired values, got {len(x)} and {len(y)}")
    rx, ry = average_ranks(np.asarray(x)) - (len(x) + 1) / 2, average_ranks(np.asarray(y)) - (len(y) + 1) / 2
    denominator = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    if denominator == 0:
        return Figure(None, "the weights or the measures are all equal: no rank correlation")
    return Figure(float((rx * ry).sum() / denominator))


def weight_measure_spearman(by_weight: ByWeight, attribute: str) -> Figure:
    """Rank correlation between the slider weight and every sample's measure, over all weights."""
    weights = [weight for weight, reads in sorted(by_weight.items()) for _ in reads]
    values = np.concatenate([measures(reads, attribute) for _, reads in sorted(by_weight.items())])
    return spearman(weights, values)


def weight_rate_spearman(by_weight: ByWeight, attribute: str, value: str) -> Figure:
    """Rank correlation between the weight and every sample's 0/1 'shows value': a binary attribute's slider figure
    (ties are averaged, so it is the rank-biserial form; 1 when every sample flips at one weight, in order)."""
    weights = [weight for weight, reads in sorted(by_weight.items()) for _ in reads]
    shown = [float(getattr(read, attribute) == value) for _, reads in sorted(by_weight.items()) for read in reads]
    return spearman(weights, shown)


def monotonic_rate(rates: Mapping[float, float]) -> bool:
    """A rate never falls as the weight grows and rises overall: a rate saturates at 0 and 1, so equal neighbours
    (all dark from w = 1 on) are allowed where a mean measure must strictly grow."""
    ordered = [rates[weight] for weight in sorted(rates)]
    return all(a <= b for a, b in zip(ordered, ordered[1:])) and ordered[-1] > ordered[0]


def monotonic(means: Mapping[float, float]) -> bool:
    """Means strictly increasing in the weight."""
    ordered = [means[weight] for weight in sorted(means)]
    return all(a < b for a, b in zip(ordered, ordered[1:]))


def preserved(read: ReadResult, reference: ReadResult, attributes: Sequence[str] = CATEGORICAL) -> bool:
    return all(getattr(read, name) == getattr(reference, name) for name in attributes)


def preservation_by_weight(by_weight: ByWeight, attributes: Sequence[str] = CATEGORICAL) -> dict[float, float]:
    """Per weight, the fraction of samples whose `attributes` all equal the same-seed sample's at w=0."""
    base = by_weight[0.0]
    result = {}
    for weight, reads in sorted(by_weight.items()):
        if len(reads) != len(base):
            raise ValueError(f"{len(reads)} samples at w={weight:g} but {len(base)} at w=0: samples must be paired")
        result[weight] = sum(preserved(read, ref, attributes) for read, ref in zip(reads, base)) / len(base) if base else 1.0
    return result


def headline_weights(kind: str) -> tuple[float, ...]:
    """Where the headline figures are read: full strength, both directions for a bidirectional slider."""
    return (1.0, -1.0) if kind == "slider" else (1.0,)


def headline(by_weight: Mapping[float, float], kind: str) -> float:
    """The worst of the headline weights' values (a slider must preserve in both directions)."""
    return min(by_weight[weight] for weight in headline_weights(kind))


def drift_by_weight(images_by_weight: Mapping[float, np.ndarray]) -> dict[float, float]:
    """Mean absolute pixel change (0..1) of each weight's images against the same-seed images at w=0."""
    base = np.asarray(images_by_weight[0.0], dtype=np.float64)
    return {weight: float(np.abs(np.asarray(images, dtype=np.float64) - base).mean() / 255.0) if base.size else 0.0
            for weight, images in sorted(images_by_weight.items())}
