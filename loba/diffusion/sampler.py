"""The one CFG-DDIM sampler: the training step's partial denoise, the training previews and the toy
world's evaluation all walk a DDIM grid through it.

The caller supplies the model as `predict(x_pair, t)`: the unconditional and conditional halves stacked
in one batch ([uncond; cond], so an adapter sees both, as in any LoRA host) and the prediction for it in
the model's own parameterization. A stop request is polled before each model call, so a host's cancel
lands within one forward even inside a long denoise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

import torch

from ..errors import StepAborted
from .schedule import NoiseSchedule

Predict = Callable[[torch.Tensor, int], torch.Tensor]


@torch.no_grad()
def cfg_ddim(predict: Predict, x: torch.Tensor, schedule: NoiseSchedule, grid: Sequence[int], cfg: float, *,
             steps: Optional[int] = None, keep_all: bool = False,
             should_stop: Optional[Callable[[], bool]] = None) -> list[torch.Tensor]:
    """Deterministic DDIM (eta 0) with classifier-free guidance from x at grid[0].

    Runs `steps` grid steps (all of them, ending at x0, when None) and returns the latent after each step
    (keep_all) or only the last one, in float32. Raises StepAborted when should_stop() turns true.
    """
    grid = [int(t) for t in grid]
    steps = len(grid) if steps is None else int(steps)
    xs = []
    for i in range(steps):
        if should_stop is not None and should_stop():
            raise StepAborted("stop requested during the denoise")
        t, t_next = grid[i], grid[i + 1] if i + 1 < len(grid) else None
        uncond, cond = predict(torch.cat([x, x]), t).float().chunk(2)
        x = schedule.ddim_step(uncond + cfg * (cond - uncond), x, t, t_next)
        if keep_all:
            xs.append(x)
    return xs if keep_all else [x]
