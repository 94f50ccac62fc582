"""A slider made for another model family is refused before sampling: by its kohya metadata when it has some,
and (by the hosts) by its layer names."""

from __future__ import annotations

from typing import Optional

from ..errors import ConfigError
from ..sliders.kohya import SliderFile
from ..sliders.metadata import BASE_MODEL_VERSIONS

FLUX_STEMS = ("lora_unet_double_blocks_", "lora_unet_single_blocks_")
FAMILY_OF_VERSION = {version: family for family, version in BASE_MODEL_VERSIONS.items()}
FAMILY_OF_CONTEXT = {768: "sd1", 1024: "sd2", 2048: "sdxl"}  # cross-attention width of each family's UNet


def slider_family(slider: SliderFile) -> Optional[str]:
    version = slider.metadata.get("ss_base_model_version", "")
    if version in FAMILY_OF_VERSION:
        return FAMILY_OF_VERSION[version]
    known = next((family for family in ("flux", "sdxl", "sd2", "sd1") if version.startswith(BASE_MODEL_VERSIONS[family][:5])), None)
    if known or slider.metadata.get("loba_family"):
        return known or slider.metadata["loba_family"]
    # No metadata: Flux's layer names are its own (SD1/SD2/SDXL files are told apart by the hosts' key checks).
    return "flux" if any(stem.startswith(FLUX_STEMS) for stem in slider.module_stems()) else None


def check_family(slider: SliderFile, model_family: Optional[str], field: str = "slider") -> None:
    made_for = slider_family(slider)
    if made_for and model_family and made_for != model_family:
        raise ConfigError(field, f"{slider.path or 'the slider'} was made for {made_for} "
                                 f"(ss_base_model_version {slider.metadata.get('ss_base_model_version', '?')}) but the model "
                                 f"is {model_family}: "
                                 "use a slider trained on this model's family")
