"""The toy worlds LOBA ships: name -> weight file. `toyworld` is the plain world (every unnamed attribute
uniform); `entangled` is its fine-tune whose under-specified captions carry designed biases and whose
scenes have a render style (linework, palette); `flow` is the plain world drawn by a toy Flux transformer
trained by flow matching (flow_build.py). The loader node's `world` combo and `--world` list these."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

WEIGHTS_FOLDER = Path(__file__).resolve().parent / "weights"
WORLDS = {"toyworld": WEIGHTS_FOLDER / "toyworld.safetensors", "entangled": WEIGHTS_FOLDER / "entangled.safetensors",
          "flow": WEIGHTS_FOLDER / "flow.safetensors"}
#: worlds whose model is Flux-architecture (flow matching, FluxBackend) rather than SD1
FLOW_WORLDS = ("flow",)
DEFAULT_WORLD = "toyworld"


def world_names() -> list[str]:
    return list(WORLDS)


def world_weights(name: str, field: str = "world") -> Path:
    """The weight file of world `name`; a ConfigError naming `field` and the choices for an unknown one."""
    key = str(name).lower()
    if key not in WORLDS:
        raise ConfigError(field, f"unknown toy world '{name}'. Shipped worlds: {', '.join(WORLDS)}.")
    return WORLDS[key]
