"""The one table of dtype names: the saved slider's precision, the frozen model's dtype, the node combos.

torch is imported only when a name is resolved, so the config (which lists the choices) stays light.
"""

from __future__ import annotations

from .errors import ConfigError

# The names a user writes -> torch's own names; "float" is sd-scripts' save_precision spelling of float32.
DTYPES = {"float": "float32", "float32": "float32", "fp32": "float32",
          "fp16": "float16", "float16": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16"}
# What a saved slider's precision widget offers (sd-scripts' save_precision choices).
SAVE_PRECISIONS = ("float", "fp16", "bf16")


def dtype_named(name: str, field: str):
    """torch dtype for a user-facing name; an unknown name is a ConfigError on `field`."""
    import torch

    if str(name) not in DTYPES:
        raise ConfigError(field, f"unknown dtype '{name}'; use one of {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[str(name)])
