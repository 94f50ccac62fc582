"""What a ComfyUI MODEL predicts and on which schedule, read from its model_sampling object AS PATCHED.

A MODEL is sampled through patcher.get_model_object("model_sampling"): ModelSamplingDiscrete (the node) swaps it
for one of its own, so a checkpoint loaded as eps and patched to v_prediction (NoobAI-style v-pred SDXL) samples,
and must train, in v-space, while model.model_type still says EPS. The object is a class made of a sampling
base (the schedule: ModelSamplingDiscrete, its LCM-distilled subclass, EDM, flow...) and a sampling type (how
the output becomes x0: EPS, V_PREDICTION, X0, LCM, CONST...). LOBA trains the plain discrete schedule with EPS's or
V_PREDICTION's own maths, and flow matching (CONST) on ModelSamplingFlux (Flux.1 dev, the ModelSamplingFlux node with
its resolution-dependent shift) or ModelSamplingDiscreteFlow (Flux schnell, the ModelSamplingSD3 node: the same
x_t = (1 - sigma) x0 + sigma eps and velocity output, another shift formula); anything overriding those methods is
refused, by the name the user picked it under, with what to do instead.

A flow MODEL's schedule is read from its own sigma function at 1000 integer timesteps, t -> sigma((t + 1) / 1000 in
the object's timestep units), exactly what its `sigmas` table (10000 steps for Flux) samples from: what trains is what
samples, whatever shift the patch set.

Imported only inside node execution and tests (it imports ComfyUI).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import comfy.model_sampling as ms
import torch

from ..loba.diffusion.schedule import EPSILON_ZSNR, ZERO_TERMINAL_ALPHA_BAR, NoiseSchedule
from ..loba.errors import UnsupportedModelError

TRAINABLE = ("eps or v_prediction (with or without zsnr) on the discrete 1000-step schedule of SD1.x/SD2.x/SDXL, "
             "or flow (CONST) on ModelSamplingFlux / ModelSamplingSD3's schedule (Flux.1)")
FLOW_TIMESTEPS = 1000
# Sampling-type class names (comfy.model_sampling, comfy_extras' LCM) -> the name a user knows them by.
TYPE_NAMES = {"LCM": "lcm", "IMG_TO_IMG": "img_to_img", "X0": "x0", "EDM": "edm", "CONST": "flow (CONST)",
              "COSMOS_RFLOW": "cosmos rectified flow", "V_PREDICTION": "v_prediction", "EPS": "eps"}
PREDICTION_TYPES = {ms.EPS.calculate_denoised: "epsilon", ms.V_PREDICTION.calculate_denoised: "v_prediction"}


@dataclass(frozen=True)
class ModelSampling:
    prediction_type: str  # "epsilon", "v_prediction" or "flow"
    alphas_cumprod: torch.Tensor  # float64 on the CPU, one per discrete timestep
    zsnr: bool
    sigmas: Optional[torch.Tensor] = None  # flow only: float64 [1000], ascending to 1
    sampling: object = None  # flow only: the model_sampling object, whose timestep(sigma) the model is called with

    def schedule(self) -> NoiseSchedule:
        if self.sigmas is not None:
            return NoiseSchedule.flow(self.sigmas)
        return NoiseSchedule(self.alphas_cumprod, self.prediction_type)


def sampling_type_name(sampling) -> str:
    for cls in type(sampling).__mro__:
        if cls.__name__ in TYPE_NAMES:
            return TYPE_NAMES[cls.__name__]
    return type(sampling).__name__


def _refuse(what: str, flux: bool = False) -> UnsupportedModelError:
    if flux:
        return UnsupportedModelError(f"this Flux MODEL samples as {what}; a Flux model trains as flow (CONST) on "
                                     "ModelSamplingFlux or ModelSamplingSD3: remove the other ModelSampling node before "
                                     "Train Slider")
    return UnsupportedModelError(
        f"this MODEL samples as {what}; LOBA trains {TRAINABLE}. Remove the ModelSampling node before Train Slider "
        "or set ModelSamplingDiscrete's sampling to eps or v_prediction (EDM, LCM and x0 models are not trainable; "
        "Flux trains on its own ModelSamplingFlux or a ModelSamplingSD3 patch)")


def read_model_sampling(patcher, flow: bool = False) -> ModelSampling:
    """The prediction type and schedule the MODEL is sampled with; refuses what LOBA cannot train. `flow`: the MODEL
    is a flow model (Flux), which trains only as flow; an SD UNet patched to flow (ModelSamplingSD3 on SDXL) does
    not (its weights predict eps or v, whatever the sampler is told)."""
    sampling = patcher.get_model_object("model_sampling")
    kind = type(sampling)
    if flow or _is_flow(sampling):
        if not (flow and _is_flow(sampling)):
            raise _refuse(f"{sampling_type_name(sampling)} on {_base_name(kind)}", flow)
        return _read_flow(sampling)
    discrete = isinstance(sampling, ms.ModelSamplingDiscrete) and kind.sigma is ms.ModelSamplingDiscrete.sigma \
        and kind.timestep is ms.ModelSamplingDiscrete.timestep
    if not discrete:  # LCM's distilled 50-step schedule, EDM, flow, Stable Cascade...
        raise _refuse(f"{sampling_type_name(sampling)} on {_base_name(kind)}")
    prediction = PREDICTION_TYPES.get(kind.calculate_denoised)
    plain_input = kind.calculate_input is ms.EPS.calculate_input and kind.noise_scaling is ms.EPS.noise_scaling
    if prediction is None or not plain_input or float(getattr(sampling, "sigma_data", 1.0)) != 1.0:
        raise _refuse(sampling_type_name(sampling))
    alphas_cumprod = 1.0 / (1.0 + sampling.sigmas.detach().to("cpu", torch.float64) ** 2)
    zsnr = bool(getattr(sampling, "zsnr", False)) or float(alphas_cumprod[-1]) < ZERO_TERMINAL_ALPHA_BAR
    if prediction == "epsilon" and zsnr:
        raise UnsupportedModelError(f"this MODEL samples as eps with zsnr (ModelSamplingDiscrete): {EPSILON_ZSNR} "
                                    "(set ModelSamplingDiscrete's zsnr off, or its sampling to v_prediction for a "
                                    "v-prediction checkpoint)")
    return ModelSampling(prediction, alphas_cumprod, zsnr)


def _base_name(kind: type) -> str:
    for cls in kind.__mro__[1:]:
        if cls.__name__.startswith(("ModelSampling", "StableCascadeSampling")):
            return cls.__name__
    return kind.__name__


FLOW_BASES = (ms.ModelSamplingFlux, ms.ModelSamplingDiscreteFlow)


def _is_flow(sampling) -> bool:
    """CONST's own maths on one of the flow schedules whose sigma()/timestep() are ComfyUI's own."""
    kind = type(sampling)
    base = next((b for b in FLOW_BASES if isinstance(sampling, b)), None)
    if base is None or not isinstance(sampling, ms.CONST):
        return False
    return (kind.sigma is base.sigma and kind.timestep is base.timestep
            and kind.calculate_denoised is ms.CONST.calculate_denoised and kind.calculate_input is ms.CONST.calculate_input
            and kind.noise_scaling is ms.CONST.noise_scaling)


def _read_flow(sampling) -> ModelSampling:
    # ModelSamplingFlux takes timesteps in (0, 1]; ModelSamplingDiscreteFlow in (0, multiplier].
    units = float(getattr(sampling, "multiplier", 1.0))
    steps = torch.arange(1, FLOW_TIMESTEPS + 1, dtype=torch.float64) / FLOW_TIMESTEPS * units
    with torch.inference_mode(False):
        sigmas = torch.as_tensor(sampling.sigma(steps), dtype=torch.float64).detach().clone()
    if not bool(torch.isfinite(sigmas).all()) or abs(float(sigmas[-1]) - 1.0) > 1e-6:
        raise _refuse(f"flow with a schedule that does not end in pure noise (sigma {float(sigmas[-1]):.4g} at the last step)")
    sigmas[-1] = 1.0
    schedule = NoiseSchedule.flow(sigmas)
    return ModelSampling("flow", schedule.alphas_cumprod, True, schedule.sigmas, sampling)
