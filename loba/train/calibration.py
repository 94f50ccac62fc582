"""Strength calibration (calibrate_strength): at the end of training, scale the slider so that w = 1 moves the
model's own prediction by the same relative amount for every concept, so that one user's sliders are comparable.

Effect = ||eps(slider at 1) - eps(slider off)|| / ||eps(slider off)|| (relative L2, the canaries' drift) over the
run's target prompts x CALIBRATION_TIMESTEPS, at fixed noise (its own seed, never the run's generator). The scale
is found on the saved weights themselves: each try multiplies one linear factor of every adapter (LoRA's up,
LoHa's w1a, LoKr's w1, DoRA's up) and measures again, so what is measured is exactly what a host loads, for
every algorithm (the effect is not linear in the factor: the UNet is not, and DoRA normalizes; a secant on
log effect vs log scale converges in a few tries). Alpha is left alone: ss_network_alpha stays the trained one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..adapters import AdapterNetwork
from ..adapters.text_encoder import adapter_root
from ..models.backend import Conditioning, SizeConditioning
from ..prompts import PromptSet

CALIBRATION_TIMESTEPS = (250, 500, 750)  # detail, mid, layout: one figure over the whole schedule
CALIBRATION_SEED = 20261  # fixed, so effects compare across runs and concepts
CALIBRATION_MAX_RESOLUTION = 512
MAX_TRIES = 8  # tries of the power-law secant; 2-4 in practice (the effect is sub-linear in the factor at large scales)
TOLERANCE = 1e-3  # relative error of the effect at which the search stops
SCALE_RANGE = (1e-3, 1e3)  # a scale outside this would hide a broken slider: refused, the weights left as trained

# Adapter algo -> the parameter whose scaling scales the whole update dW (linear in it for all but DoRA).
LINEAR_FACTOR = {"lora": "lora_up.weight", "dora": "lora_up.weight", "loha": "hada_w1_a", "lokr": "lokr_w1"}


@dataclass(frozen=True)
class Calibration:
    raw_effect: float  # the trained slider's effect at w = 1
    scale: float  # applied to the saved weights (1.0 when nothing was applied)
    effect: float  # the effect at w = 1 after scaling
    reference: float  # what the effect was scaled to
    note: str = ""  # why no scale was applied, when none was

    def as_metadata(self) -> dict:
        return {"raw_effect": self.raw_effect, "scale": self.scale, "effect": self.effect, "reference": self.reference,
                "timesteps": list(CALIBRATION_TIMESTEPS), "seed": CALIBRATION_SEED, **({"note": self.note} if self.note else {})}


def target_prompts(prompts: PromptSet) -> list[str]:
    """The prompts the slider is meant to act on: every pair's target, once each, in order."""
    return list(dict.fromkeys(pair.target for pair in prompts.pairs()))


def scale_network(network: AdapterNetwork, factor: float) -> None:
    """Multiply every adapter's update by `factor` (exactly, for all algos but DoRA) in place."""
    with torch.no_grad():
        for _, lora in network.items():
            lora.get_parameter(LINEAR_FACTOR[lora.algo]).mul_(factor)


class EffectMeter:
    """The relative prediction change of the attached slider at w = 1 on fixed noise; slider-off kept once."""

    def __init__(self, backend, network: AdapterNetwork, prompts: list[str]):
        self.backend, self.network = backend, network
        embeddings = backend.encode_prompts(prompts)
        steps = len(CALIBRATION_TIMESTEPS)
        self.cond = Conditioning.cat([embeddings[p].repeat(steps) for p in prompts])
        side = min(backend.native_resolution, CALIBRATION_MAX_RESOLUTION) // backend.vae_scale_factor
        noise = torch.randn((1, backend.latent_channels, side, side), generator=torch.Generator().manual_seed(CALIBRATION_SEED))
        rows = len(prompts) * steps
        self.x = noise.to(backend.device).repeat(rows, 1, 1, 1)
        self.t = torch.tensor(CALIBRATION_TIMESTEPS * len(prompts), dtype=torch.long, device=backend.device)
        self.size = SizeConditioning.plain(side * backend.vae_scale_factor, side * backend.vae_scale_factor) \
            if backend.family == "sdxl" else None
        self.base = self._predict(0.0)

    @torch.no_grad()
    def _predict(self, multiplier: float) -> torch.Tensor:
        previous = self.network.multiplier
        self.network.multiplier = multiplier
        try:
            return self.backend.predict(self.x.to(self.backend.dtype), self.t, self.cond, self.size).float()
        finally:
            self.network.multiplier = previous

    def effect(self) -> float:
        return float((self._predict(1.0) - self.base).norm() / self.base.norm().clamp_min(1e-12))


def calibrate(network: AdapterNetwork, backend, prompts: PromptSet, reference: float) -> Calibration:
    """Scale `network` in place so its effect at w = 1 is `reference`; returns what was measured and applied."""
    root = adapter_root(backend, network.names)
    with torch.inference_mode(False), torch.no_grad(), backend.training_session(), network.attached(root):
        meter = EffectMeter(backend, network, target_prompts(prompts))
        raw = effect = meter.effect()
        if raw <= 0:
            return Calibration(raw, 1.0, raw, reference, "the slider does not change the prediction at w = 1: nothing to scale")
        scale, power = 1.0, 1.0  # effect ~ scale ** power locally; power from the last two tries (1 = linear)
        for _ in range(MAX_TRIES):
            if abs(effect / reference - 1) <= TOLERANCE:
                break
            step = (reference / effect) ** (1.0 / power)
            if not SCALE_RANGE[0] <= scale * step <= SCALE_RANGE[1] or effect <= 0:
                scale_network(network, 1.0 / scale)  # back to the trained weights
                return Calibration(raw, 1.0, raw, reference, f"the scale needed ({scale * step:.3g}) is outside "
                                   f"{SCALE_RANGE[0]:g}..{SCALE_RANGE[1]:g}: weights left as trained")
            scale_network(network, step)
            scale, previous = scale * step, effect
            effect = meter.effect()
            if effect > 0 and abs(math.log(step)) > 1e-6:
                power = min(max(math.log(effect / previous) / math.log(step), 0.25), 4.0)
    return Calibration(raw, scale, effect, reference)


def maybe_calibrate(network: AdapterNetwork, backend, prompts: PromptSet, config) -> dict | None:
    """The run facade's one call (and the instant slider's): the metadata record, or None and nothing touched
    unless calibrate_strength is on."""
    if not config.calibrate_strength:
        return None
    return calibrate(network, backend, prompts, config.calibration_effect).as_metadata()
