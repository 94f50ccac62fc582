"""Lion optimizer (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").

Per step, with gradient g and momentum m:
    c = beta1 * m + (1 - beta1) * g
    p = p * (1 - lr * weight_decay) - lr * sign(c)
    m = beta2 * m + (1 - beta2) * g
Every coordinate moves by exactly lr, so Lion wants a learning rate 3-10x smaller than AdamW.
"""

from __future__ import annotations

import torch


class Lion(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0):
        if lr <= 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not all(0.0 <= b < 1.0 for b in betas) or len(betas) != 2:
            raise ValueError(f"Invalid betas: {betas}; need two values in [0, 1)")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                self._update(p, group["lr"], beta1, beta2, group["weight_decay"])
        return loss

    def _update(self, p: torch.Tensor, lr: float, beta1: float, beta2: float, weight_decay: float) -> None:
        grad = p.grad
        state = self.state[p]
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(p)
        m = state["exp_avg"]
        # Decoupled decay (as AdamW): it shrinks the weight, it is not part of the sign.
        p.mul_(1 - lr * weight_decay)
        p.add_(torch.sign(m.mul(beta1).add_(grad, alpha=1 - beta1)), alpha=-lr)
        m.mul_(beta2).add_(grad, alpha=1 - beta2)
