"""No-grad model forwards split into micro-batches (SamplingConfig.teacher_batch_size).

The teachers run every prompt a pair and its anchors need in one batch, and the partial denoise runs the
CFG pair (unconditional + target) in one batch; each is a full UNet forward whose activations grow with
the batch. Split, the peak is that of `size` rows at a time and the rows are the same predictions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..models.backend import Conditioning

Forward = Callable[[torch.Tensor, Conditioning], torch.Tensor]


def rows(cond: Conditioning, start: int, stop: int) -> Conditioning:
    """Rows start:stop of a batch's conditioning (context and, for SDXL, pooled)."""
    pooled = None if cond.pooled is None else cond.pooled[start:stop]
    return Conditioning(cond.context[start:stop], pooled)


def in_micro_batches(forward: Forward, x: torch.Tensor, cond: Conditioning, size: int) -> torch.Tensor:
    """forward(x, cond) computed `size` rows at a time and concatenated; size 0 (or >= the batch) = one call,
    exactly as before the option existed."""
    n = x.shape[0]
    if size <= 0 or n <= size:
        return forward(x, cond)
    return torch.cat([forward(x[start:start + size], rows(cond, start, start + size)) for start in range(0, n, size)])
