"""Native training resolution per model family: what prompts without their own resolution train at,
for every host (the Train node's resolution 0, `loba train`)."""

from __future__ import annotations

NATIVE_RESOLUTION = {"sd1": 512, "sd2": 512, "sdxl": 1024, "flux": 1024}
# SD2's 768-v models are the v-prediction ones; the 512 SD2 base is epsilon.
SD2_V_RESOLUTION = 768


def family_resolution(family: str, prediction_type: str = "epsilon") -> int:
    if family == "sd2" and prediction_type == "v_prediction":
        return SD2_V_RESOLUTION
    return NATIVE_RESOLUTION.get(family, 512)
