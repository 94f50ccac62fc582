"""Closed-form start (UCE-style): the cross-attention key/value edit that a slider's prompts ask for,
solved as one regularized least-squares problem and factored to the adapters' rank.

UCE (Gandikota et al. 2023, trainscripts/uce_sd_erase.py) edits every attn2.to_k / to_v weight W in closed
form: W_new = (sum_i v*_i c_i^T + sum_j W c_j c_j^T + lam W)(sum_i c_i c_i^T + sum_j c_j c_j^T + lam I)^-1,
sending edited token embeddings c_i to values v*_i while the preserved c_j keep W c_j. LOBA's version:
- the values come from the pair's own objective, linearized in the text embedding (k and v are linear in
  it): erase asks W' c(target) = W (c(neutral) - g (c(positive) - c(unconditional))), enhance the same
  with +g, token by token over the whole context (equal k and v rows give the neutral's exact attention);
- a pair trained at multiplier m applies m * dW, so a slider's +m / -m pairs are one problem in dW;
- preservation prompts (anchors) weigh as in the loss: preservation_weight * weight / number of anchors;
- every to_k / to_v reads the same text embeddings, so the D x D map K with dW = W K is solved ONCE:
  dW = W G M^-1, G = sum_p w_p m_p (c*_p - c_p) c_p^T, M = sum_p w_p m_p^2 c_p c_p^T
  + sum_a s_a m2 c_a c_a^T + lam' I (lam' = closed_form_lambda * trace(M_data) / D, scale-free);
- dW is factored to the adapter's rank by SVD (the best rank-r approximation) into LoRA up/down with the
  alpha/rank scale folded in; the relative Frobenius error of that truncation is reported per layer.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import torch

from ..errors import ConfigError

# Cross-attention key/value projections: diffusers and ComfyUI both name them attn2.to_k / attn2.to_v.
KV_PATTERN = re.compile(r"(^|\.)attn2\.to_[kv]$")
SIGNS = {"erase": -1.0, "enhance": 1.0}
EXACT_SVD_MAX = 1024


@dataclass
class ClosedFormReport:
    """What the closed-form start did: the layers it set, its seconds, each layer's truncation error."""

    modules: list[str] = field(default_factory=list)
    truncation_error: dict[str, float] = field(default_factory=dict)  # ||dW - dW_r||_F / ||dW||_F
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # targeted layers that do not read the text embedding

    @property
    def max_truncation_error(self) -> float:
        return max(self.truncation_error.values(), default=0.0)

    def summary(self) -> str:
        """One line for a host to print or show: what an instant slider is made of."""
        return (f"closed form: {len(self.modules)} key/value layers in {self.seconds:.3f} s, rank truncation error "
                f"max {self.max_truncation_error:.3f} (relative Frobenius)")


def edit_map(edits: list[tuple[torch.Tensor, torch.Tensor, float]], kept: list[tuple[torch.Tensor, float]],
             lam: float) -> torch.Tensor:
    """K [D, D] such that dW = W K minimizes, for every W at once,
        sum_edits w ||dW c - W d||^2 + sum_kept s ||dW c_a||^2 + lam' ||dW||^2
    edits: (c [L, D] rows, d [L, D] the wanted shift of those rows, w); kept: (c_a [L, D], s)."""
    dim = edits[0][0].shape[-1]
    gram = torch.zeros(dim, dim, dtype=torch.float64)
    cross = torch.zeros(dim, dim, dtype=torch.float64)
    for rows, shift, weight in edits:
        rows, shift = rows.double(), shift.double()
        gram += weight * rows.T @ rows
        cross += weight * shift.T @ rows
    for rows, weight in kept:
        rows = rows.double()
        gram += weight * rows.T @ rows
    ridge = lam * float(torch.trace(gram)) / dim
    gram += ridge * torch.eye(dim, dtype=torch.float64)
    # K = cross @ gram^-1; gram is symmetric positive definite, so solve instead of inverting.
    return torch.linalg.solve(gram, cross.T).T


def factor(delta: torch.Tensor, rank: int, scale: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(up [out, r], down [r, in], relative error) with up @ down * scale the best rank-r approximation of delta.

    Exact SVD up to EXACT_SVD_MAX on the smaller side; above it (SDXL's 1280 x 2048 layers) a randomized one
    (torch.svd_lowrank, 4 power iterations) that is near exact for the leading r directions and costs far less;
    the error is then measured, not assumed."""
    work = delta.double() if delta.device.type == "cpu" else delta.float()
    if min(work.shape) <= EXACT_SVD_MAX:
        u, s, vh = torch.linalg.svd(work, full_matrices=False)
        u, s, vh = u[:, :rank], s[:rank], vh[:rank]
    else:
        u, s, v = torch.svd_lowrank(work, q=min(rank + 16, min(work.shape)), niter=4)
        u, s, vh = u[:, :rank], s[:rank], v[:, :rank].T
    r = s.numel()
    root = (s / scale).sqrt()
    up = torch.zeros(work.shape[0], rank, dtype=work.dtype, device=work.device)
    down = torch.zeros(rank, work.shape[1], dtype=work.dtype, device=work.device)
    up[:, :r], down[:r] = u * root, root[:, None] * vh
    total = float(work.square().sum())
    error = float((work - (u * s) @ vh).square().sum()) / total if total > 0 else 0.0
    return up.float(), down.float(), error ** 0.5


def objective_rows(pairs, anchors, contexts: dict[str, torch.Tensor], preservation_weight: float):
    """(edits, kept) for edit_map from the prompt pairs and anchors: each prompt's whole context [L, D]."""
    edits, mult_sq = [], []
    for pair in pairs:
        sign = SIGNS.get(pair.action)
        if sign is None:
            raise ConfigError("init", f"the closed-form start knows the erase and enhance objectives, not "
                              f"'{pair.action}'; use init = default")
        c = contexts[pair.target]
        goal = contexts[pair.neutral] + sign * pair.guidance_scale * (contexts[pair.positive] - contexts[pair.unconditional])
        m, w = float(pair.multiplier), float(pair.weight) / len(pairs)
        # ||(W + m dW) c - W c*||^2 = m^2 ||dW c - W (c* - c) / m||^2: the shift is scaled by 1 / m.
        edits.append((c, (goal - c) / m, w * m * m))
        mult_sq.append(m * m)
    mean_sq = sum(mult_sq) / len(mult_sq)
    kept = [(contexts[a.prompt], preservation_weight * float(a.weight) / len(anchors) * mean_sq) for a in anchors]
    return edits, kept


def set_from_map(network, root: torch.nn.Module, kmap: torch.Tensor, report: ClosedFormReport) -> None:
    """dW = W K for every targeted to_k / to_v, factored into its adapter; the other adapters are left as they are."""
    with torch.no_grad():
        for name, lora in network.items():
            base = root.get_submodule(name)
            if not KV_PATTERN.search(name) or lora.kind != "lora" or base.weight.shape[1] != kmap.shape[0]:
                report.skipped.append(name)
                continue
            weight = base.weight.detach()
            # On the model's device: a GPU does SDXL's ~140 layer products and factorizations in well under a second.
            delta = weight.double() @ kmap if weight.device.type == "cpu" else weight.float() @ kmap.to(weight.device, torch.float32)
            up, down, error = factor(delta, lora.rank, float(lora.scale))
            lora.lora_up.weight.copy_(up.reshape(lora.lora_up.weight.shape))
            lora.lora_down.weight.copy_(down.reshape(lora.lora_down.weight.shape))
            report.modules.append(name)
            report.truncation_error[name] = error


def closed_form_init(network, backend, prompts, config) -> ClosedFormReport:
    """The initializer: sets the network's cross-attention key/value adapters to the closed-form edit."""
    started = time.perf_counter()
    report = ClosedFormReport()
    pairs, anchors = prompts.pairs(), prompts.training_anchors()
    encoded = backend.encode_prompts(prompts.all_prompts())
    contexts = {prompt: cond.context[0].detach().float().cpu() for prompt, cond in encoded.items()}
    edits, kept = objective_rows(pairs, anchors, contexts, config.loss.preservation_weight)
    kmap = edit_map(edits, kept, config.network.closed_form_lambda)
    set_from_map(network, backend.denoiser(), kmap, report)
    report.seconds = time.perf_counter() - started
    return report
