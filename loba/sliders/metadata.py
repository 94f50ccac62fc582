"""The metadata a LOBA slider file carries: kohya's ss_* fields and LOBA's own (config, prompts, version)."""

from __future__ import annotations

import json
from typing import Optional

from .. import __version__
from ..config.migrations import SLIDER_CONFIG_KEY
from ..config.train_config import TrainConfig
from ..models.backend import ModelBackend
from ..prompts import PromptSet

# kohya's ss_base_model_version per family (sd-scripts writes "flux1" for Flux.1 dev and schnell alike).
BASE_MODEL_VERSIONS = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0", "flux": "flux1"}


def slider_metadata(config: TrainConfig, prompts: PromptSet, backend: ModelBackend, steps: int,
                    extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    metadata = {
        "loba_version": __version__,
        SLIDER_CONFIG_KEY: config.to_json(),  # read back by config_from_slider_metadata
        "loba_prompts": json.dumps(prompts.to_dict(), sort_keys=True),
        "ss_base_model_version": BASE_MODEL_VERSIONS.get(backend.family, backend.family),
        "loba_family": backend.family,
        "ss_v2": str(backend.family == "sd2").lower(),
        "ss_v_parameterization": str(backend.prediction_type == "v_prediction").lower(),
        "ss_steps": str(steps),
        "ss_learning_rate": str(config.optimizer.learning_rate),
        "ss_seed": str(config.seed),
        "ss_training_comment": "LOBA prompt-only slider",
    }
    metadata.update(extra or {})
    return metadata
