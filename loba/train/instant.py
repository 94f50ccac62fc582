"""The instant slider: the closed-form start saved alone, without a training step (UCE-style: under a second).

Hosts ask for it through the run facade (RunRequest(instant=True): `loba train --instant`, the Train Slider node's
instant input); the result saves like a trained slider (steps_done 0, the config's init recorded in its metadata)."""

from __future__ import annotations

from ..adapters.initializers import initialize
from ..adapters.targeting import describe
from ..config import TrainConfig
from ..errors import ConfigError
from ..models.backend import ModelBackend
from ..prompts import PromptSet
from ..sliders.trained import TrainedSlider
from .calibration import maybe_calibrate
from .loop import build_network
from .validate import validate_before_model_work


def instant_slider(backend: ModelBackend, prompts: PromptSet, config: TrainConfig) -> tuple[TrainedSlider, object]:
    """(the slider, the initializer's report) of the config's initializer alone; kohya's init would be a no-op."""
    validate_before_model_work(prompts, config, backend.family)
    if config.network.init == "default":
        raise ConfigError("init", "an instant slider is a start without training: set init = closed_form")
    network = build_network(backend, config)
    report = initialize(network, backend, prompts, config)
    calibration = maybe_calibrate(network, backend, prompts, config)
    return TrainedSlider(network, backend, config, prompts, 0, False, describe(network.targets, backend.denoiser()),
                         calibration=calibration, init_report=report), report
