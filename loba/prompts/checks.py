"""Field checks shared by the prompt dataclasses and the loaders.

Each check converts a raw value (from TOML, JSON or a node widget) to the field's type or raises
SpecError naming the entry, the field and the fix, so a bad file never reaches the trainer.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import SpecError
from ..models.buckets import BUCKET_SETS

Resolution = tuple[int, int]


def set_field(obj: Any, name: str, value: Any) -> None:
    """Normalize a field of a frozen dataclass in its __post_init__."""
    object.__setattr__(obj, name, value)


def require(cond: Any, entry: str, field: str, message: str) -> None:
    if not cond:
        raise SpecError(entry, field, message)


def as_text(value: Any, entry: str, field: str) -> str:
    require(isinstance(value, str), entry, field, f"must be a string (a prompt), got {value!r}")
    return value


def as_number(value: Any, entry: str, field: str) -> float:
    # bool is an int in Python, but `weight = true` is a typo, not 1.0.
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    require(ok, entry, field, f"must be a finite number, e.g. 1.0; got {value!r}")
    return float(value)


def as_count(value: Any, entry: str, field: str) -> int:
    whole = isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
    require(whole and value >= 1, entry, field, f"must be a whole number >= 1, e.g. 1; got {value!r}")
    return int(value)


def as_flag(value: Any, entry: str, field: str) -> bool:
    require(isinstance(value, bool), entry, field, f"must be true or false, got {value!r}")
    return value


def _is_whole(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()


def normalize_resolution(value: Any, entry: str, field: str) -> Resolution:
    """512 -> (512, 512); [h, w] -> (h, w); each side a positive multiple of 8 (the VAE factor)."""
    if _is_whole(value):
        hw = (int(value), int(value))
    else:
        pair = isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_whole(v) for v in value)
        require(pair, entry, field, f"must be a size like 512 or [height, width] like [512, 768]; got {value!r}")
        hw = (int(value[0]), int(value[1]))
    ok = all(side > 0 and side % 8 == 0 for side in hw)
    require(ok, entry, field, f"{value!r}: each side must be a positive multiple of 8, e.g. 512 or [512, 768]")
    return hw


def normalize_resolutions(value: Any, entry: str, field: str) -> tuple[Resolution, ...]:
    """One resolution or a list of them, read the way sd-scripts reads `resolutions`.

    A flat list of numbers is ONE [height, width] (sd-scripts' rule), so `[512, 768]` is 512x768;
    several resolutions are written as a list of lists: [[512, 512], [768, 768]].
    A bucket set's name ("sdxl_buckets", "sd_buckets": loba.models.buckets) stands for all its sizes.
    The empty tuple () means "the trainer's default" (a graph node's resolution 0): see
    PromptSet.with_default_resolution. Files never produce it: an empty list is an error.
    """
    if isinstance(value, tuple) and not value:
        return ()
    if isinstance(value, str):
        require(value in BUCKET_SETS, entry, field, "must be a size like 512, [height, width] like [832, 1216] or a "
                                                    f"bucket set ({', '.join(BUCKET_SETS)}); got {value!r}")
        return BUCKET_SETS[value]
    if isinstance(value, (list, tuple)) and value and not any(isinstance(v, (list, tuple)) for v in value):
        return (normalize_resolution(value, entry, field),)
    if isinstance(value, (list, tuple)):
        require(len(value) > 0, entry, field, "is empty; give at least one, e.g. [[512, 512]]")
        return tuple(normalize_resolution(v, entry, f"{field}[{i}]") for i, v in enumerate(value))
    return (normalize_resolution(value, entry, field),)


def check_mask(mask: Any, entry: str, field: str = "mask"):
    """A [H, W] float32 tensor in 0..1 (white = train), or None."""
    if mask is None:
        return None
    import torch

    require(isinstance(mask, torch.Tensor), entry, field, f"must be a torch tensor [H, W], got {type(mask).__name__}")
    require(mask.dim() == 2 and mask.numel() > 0, entry, field,
            f"must be a 2-D [height, width] tensor, got shape {list(mask.shape)}; squeeze batch/channel dimensions first")
    mask = mask.detach().to(torch.float32)
    finite = bool(torch.isfinite(mask).all())
    require(finite and float(mask.min()) >= 0 and float(mask.max()) <= 1, entry, field,
            "values must lie in [0, 1] (white = train, black = ignore); divide 8-bit images by 255")
    require(float(mask.max()) > 0, entry, field, "is all black, so nothing would train; white marks the region to train")
    return mask


def mask_summary(mask) -> dict | None:
    """JSON-safe stand-in for a mask in metadata: its shape and mean, not its pixels."""
    if mask is None:
        return None
    return {"shape": list(mask.shape), "mean": round(float(mask.mean()), 6)}
