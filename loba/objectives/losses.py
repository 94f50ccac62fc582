"""Loss registry, masked per-sample reduction and Min-SNR-gamma weighting.

A loss is elementwise: `(pred, target, delta) -> Tensor` of the same shape, no reduction.
Extend it with `LOSSES.register("myloss", fn)`; the name then works in `loss_type = "myloss"`.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F

from ..config.train_config import LossConfig
from ..diffusion.parameterizations import PARAMETERIZATIONS
from ..diffusion.schedule import NoiseSchedule
from ..registry import Registry

LOSSES: Registry = Registry("loss", field="loss_type")


def mse(pred: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    return (pred - target) ** 2


def l1(pred: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    return (pred - target).abs()


def huber(pred: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    """0.5*x^2 for |x| <= delta, delta*(|x| - 0.5*delta) beyond (torch's huber_loss)."""
    return F.huber_loss(pred, target, reduction="none", delta=delta)


def smooth_l1(pred: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    """0.5*x^2/delta for |x| < delta, |x| - 0.5*delta beyond: huber divided by delta."""
    return F.smooth_l1_loss(pred, target, reduction="none", beta=delta)


def pseudo_huber(pred: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    """2*delta*(sqrt(x^2 + delta^2) - delta), as in kohya's sd-scripts.

    Smooth everywhere; about x^2 for |x| << delta (same scale as mse) and 2*delta*|x| for |x| >> delta.
    Computed as 2*delta*x^2 / (sqrt(x^2 + delta^2) + delta), the same value without the float32
    cancellation of sqrt(...) - delta that loses most digits on the small residuals typical of training.
    """
    squared = (pred - target) ** 2
    return 2 * delta * squared / (torch.sqrt(squared + delta**2) + delta)


for _name, _fn in (("mse", mse), ("l1", l1), ("huber", huber), ("smooth_l1", smooth_l1), ("pseudo_huber", pseudo_huber)):
    LOSSES.register(_name, _fn)


def reduce_per_sample(elementwise: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[B, C, H, W] -> [B]: the mean, or with a [B or 1, 1, H, W] mask the mean over the masked area.

    Dividing by the mask area (not H*W) keeps a partial mask on the same scale as no mask; an
    all-zero mask gives 0 for that sample instead of 0/0.
    """
    dims = tuple(range(1, elementwise.ndim))
    if mask is None:
        return elementwise.mean(dim=dims)
    if mask.ndim != elementwise.ndim or mask.shape[1] != 1 or mask.shape[2:] != elementwise.shape[2:]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not fit loss shape {tuple(elementwise.shape)}; "
                         "expected [B or 1, 1, H, W]")
    mask = mask.to(elementwise.device, elementwise.dtype).expand(elementwise.shape[0], *mask.shape[1:])
    weighted = (mask * elementwise).sum(dim=dims)
    area = mask.sum(dim=dims) * elementwise.shape[1]
    return torch.where(area > 0, weighted / area.clamp_min(torch.finfo(area.dtype).tiny), torch.zeros_like(weighted))


def min_snr_weight(snr: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Min-SNR-gamma weights (Hang et al. 2023) for SNRs at the real timesteps, [B] -> [B].

    epsilon: min(snr, gamma) / snr; v_prediction: min(snr, gamma) / (snr + 1); the derivation is in
    parameterizations.py. gamma <= 0 disables the weighting.
    """
    snr = snr.float()
    if gamma <= 0:
        return torch.ones_like(snr)
    return PARAMETERIZATIONS.get(prediction_type).min_snr_weight(snr, float(gamma))


def per_sample_loss(pred: torch.Tensor, target: torch.Tensor, *, cfg: LossConfig, timesteps: torch.Tensor,
                    schedule: NoiseSchedule, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[B] losses in float32: elementwise loss, (masked) mean per sample, times Min-SNR weights."""
    loss_fn = LOSSES.get(cfg.loss_type)
    elementwise = loss_fn(pred.float(), target.float(), float(cfg.huber_delta))
    per_sample = reduce_per_sample(elementwise, mask)
    if float(cfg.min_snr_gamma) > 0:
        # Real timesteps, not DDIM grid indices: sd-scripts' LECO indexes the SNR by grid position.
        weights = min_snr_weight(schedule.snr(timesteps), float(cfg.min_snr_gamma), schedule.prediction_type)
        per_sample = per_sample * weights.to(per_sample.device)
    return per_sample


def compute_loss(pred: torch.Tensor, target: torch.Tensor, *, cfg: LossConfig, timesteps: torch.Tensor,
                 schedule: NoiseSchedule, mask: Optional[torch.Tensor] = None,
                 weight: Union[float, torch.Tensor] = 1.0) -> torch.Tensor:
    """Scalar loss: mean over the batch of per_sample_loss times `weight` (a scalar, or [B] per sample)."""
    per_sample = per_sample_loss(pred, target, cfg=cfg, timesteps=timesteps, schedule=schedule, mask=mask)
    if isinstance(weight, torch.Tensor):
        weight = weight.to(per_sample.device, per_sample.dtype)
    return (per_sample * weight).mean()
