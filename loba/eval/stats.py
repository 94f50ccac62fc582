"""Means with 95% percentile-bootstrap intervals: deterministic (a fixed generator seed), NaNs dropped."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95


def summarize(values: Sequence[float], resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """{"mean", "low", "high", "n"}; None figures when no value is defined, a zero-width interval for one value."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):
        return {"mean": mean, "low": mean, "high": mean, "n": int(data.size)}
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1.0 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"mean": mean, "low": float(min(low, mean)), "high": float(max(high, mean)), "n": int(data.size)}
