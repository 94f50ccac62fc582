"""Aspect buckets: the non-square training sizes a prompt entry can train at, and the rules they obey.

Sizes are (height, width) in pixels, like every resolution in the prompt spec (sd-scripts' order);
labels shown to users are "WIDTHxHEIGHT", the order ComfyUI's Empty Latent Image and the published
SDXL lists use. The SDXL set is the shortlist of the buckets SDXL was trained at (SDXL paper,
appendix; the same sizes head ai-toolkit's resolutions_1024): about 1024x1024 pixels each, every side
a multiple of 64. The SD1/SD2 set has the same aspect ratios at half the size (about 512x512 pixels).

Only loba.errors is imported, so the prompt loaders can use this module without an import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import SpecError

Size = tuple[int, int]  # (height, width)

SDXL_BUCKETS: tuple[Size, ...] = (
    (1024, 1024), (896, 1152), (1152, 896), (832, 1216), (1216, 832),
    (768, 1344), (1344, 768), (640, 1536), (1536, 640),
)
SD_BUCKETS: tuple[Size, ...] = tuple((h // 2, w // 2) for h, w in SDXL_BUCKETS)
# The names a prompt file's `resolution` / `resolutions` may give instead of sizes.
BUCKET_SETS: dict[str, tuple[Size, ...]] = {"sdxl_buckets": SDXL_BUCKETS, "sd_buckets": SD_BUCKETS}

# Every side is a multiple of the VAE factor 8. SDXL was trained only at multiples of 64 (its buckets and
# its size conditioning); sd-scripts' own SDXL UNet breaks below 32. So SDXL asks for 64.
SIDE_MULTIPLE = {"sdxl": 64, "flux": 16}  # Flux: 8x VAE, then 2x2 patches
DEFAULT_SIDE_MULTIPLE = 8

# A mask is resized to each training size; past this relative aspect difference it would visibly stretch.
MASK_ASPECT_TOLERANCE = 0.02


def side_multiple(family: str) -> int:
    return SIDE_MULTIPLE.get(family, DEFAULT_SIDE_MULTIPLE)


def label(size: Size) -> str:
    """(832, 1216) -> "1216x832" (width x height)."""
    return f"{size[1]}x{size[0]}"


def describe(sizes: Sequence[Size]) -> str:
    return ", ".join(label(s) for s in sizes)


def family_size_problem(size: Size, family: str) -> str | None:
    """Why `size` cannot train a `family` model, or None when it can."""
    multiple = side_multiple(family)
    if all(side > 0 and side % multiple == 0 for side in size):
        return None
    height, width = size
    fix = (round(height / multiple) * multiple or multiple, round(width / multiple) * multiple or multiple)
    why = "SDXL was trained at sides that are multiples of 64" if family == "sdxl" else "the VAE works in 8-pixel cells"
    return (f"{label(size)} (width x height) has a side that is not a multiple of {multiple} ({why}); "
            f"use e.g. {label(fix)}" + (f", or an SDXL bucket: {describe(SDXL_BUCKETS)}" if family == "sdxl" else ""))


def check_family_sizes(sizes: Sequence[Size], family: str, entry: str, field: str) -> None:
    """Refuse sizes the model family cannot train at, naming the entry and field."""
    for size in sizes:
        problem = family_size_problem(tuple(size), family)
        if problem:
            raise SpecError(entry, field, problem)


def aspect_stretch(mask_hw: Sequence[int], size: Size) -> float:
    """How much resizing a [H, W] mask to `size` would stretch it: 0 = same aspect ratio."""
    mask_h, mask_w = int(mask_hw[0]), int(mask_hw[1])
    return abs((mask_w / mask_h) / (size[1] / size[0]) - 1)


def aspect_matches(mask_hw: Sequence[int], size: Size) -> bool:
    return aspect_stretch(mask_hw, size) <= MASK_ASPECT_TOLERANCE


def buckets_for_mask(mask_hw: Sequence[int], buckets: Sequence[Size], entry: str, field: str = "mask") -> tuple[Size, ...]:
    """The buckets of a set whose aspect ratio is the mask's; a mask that matches none is refused (it would be
    stretched), with the nearest bucket and the sizes that would fit."""
    fitting = tuple(b for b in buckets if aspect_matches(mask_hw, b))
    if fitting:
        return fitting
    nearest = min(buckets, key=lambda b: aspect_stretch(mask_hw, b))
    mask_h, mask_w = int(mask_hw[0]), int(mask_hw[1])
    raise SpecError(entry, field, f"is {mask_w}x{mask_h} (width x height), an aspect ratio that matches no bucket of "
                                  f"{describe(buckets)}; the nearest is {label(nearest)}: crop or pad the mask to that "
                                  "aspect ratio (it is resized, never stretched), or train at one size of the mask's shape")


def check_mask_fits(mask_hw: Sequence[int], sizes: Sequence[Size], entry: str, field: str = "mask") -> None:
    """Refuse a mask whose aspect ratio differs from a size the entry trains at."""
    mask_h, mask_w = int(mask_hw[0]), int(mask_hw[1])
    for size in sizes:
        if not aspect_matches(mask_hw, size):
            raise SpecError(entry, field, f"is {mask_w}x{mask_h} (width x height) but the entry trains at {label(size)}; "
                                          "give a mask with the same aspect ratio (it is resized, never stretched or "
                                          "cropped), or a bucket set that holds the mask's aspect ratio")


# -- the choices a node offers (a combo): a label -> its sizes; "square" keeps the node's own square resolution.
SQUARE = "square"


def _shape(size: Size) -> str:
    return "square" if size[0] == size[1] else ("landscape" if size[1] > size[0] else "portrait")


def _choices() -> dict[str, tuple[Size, ...]]:
    choices: dict[str, tuple[Size, ...]] = {SQUARE: ()}
    for family, sizes in (("SDXL", SDXL_BUCKETS), ("SD1/SD2", SD_BUCKETS)):
        choices[f"{family}: all buckets"] = sizes
        choices.update({f"{family} {label(s)} {_shape(s)}": (s,) for s in sizes})
    return choices


BUCKET_CHOICES: dict[str, tuple[Size, ...]] = _choices()


def sizes_for_choice(choice: str, side: int, mask_hw: Sequence[int] | None, entry: str) -> tuple[Size, ...]:
    """The sizes a node entry trains at: `side` x `side` for "square" (0 = the run's default, the empty tuple),
    else the chosen bucket(s); a bucket set with a mask keeps the buckets of the mask's aspect ratio."""
    if choice not in BUCKET_CHOICES:
        raise SpecError(entry, "bucket", f"unknown bucket {choice!r}; use one of: {', '.join(BUCKET_CHOICES)}")
    if choice == SQUARE:
        return () if int(side) == 0 else ((int(side), int(side)),)
    if int(side) != 0:
        raise SpecError(entry, "resolution", f"is {side} but bucket {choice!r} gives the size; set resolution to 0, "
                                             "or bucket to square to train at resolution x resolution")
    sizes = BUCKET_CHOICES[choice]
    if mask_hw is None:
        return sizes
    if len(sizes) > 1:
        return buckets_for_mask(mask_hw, sizes, entry)
    check_mask_fits(mask_hw, sizes, entry)
    return sizes
