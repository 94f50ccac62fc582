"""Region work in `loba eval`: is the effect inside the region and not outside it?

A spec's [region] is a box (box = [top, left, bottom, right], fractions of the image, top-left origin) or a
mask image (mask = "left-half.png", white = inside, resized to 64 x 64 and thresholded at half gray). Figures,
per weight, on the affected samples against their same-seed w = 0 twins:
- pixel change (mean absolute, 0..1) over the region's pixels and over the rest: a localized slider moves
  the inside and leaves the outside (locality = inside / (inside + outside), 1 = all of it inside);
- the kind's attribute figures (rate, efficacy, measure, spearman) for samples whose object sits inside
  the region (its w = 0 centroid) and for those outside: "erase red on the left" must erase the left ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .attributes import IMAGE_SIZE

REGION_FIELDS = ("box", "mask", "name")


@dataclass(frozen=True)
class Region:
    """Where the effect should be: a [64, 64] bool mask (True = inside) and how it was given."""

    mask: np.ndarray
    source: str  # "box [t, l, b, r]" or the mask file
    name: str = "region"


def key(weight: float) -> str:
    """A weight as a JSON key: '-1', '0.5', '1'."""
    return f"{weight:g}"


def _fail(source: str, field: str, message: str):
    raise ConfigError(field, f"{message} (in {source})")


def box_mask(box, source: str) -> np.ndarray:
    numbers = isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
    if not numbers or not all(0.0 <= v <= 1.0 for v in box) or not (box[0] < box[2] and box[1] < box[3]):
        _fail(source, "region.box", f"must be [top, left, bottom, right] as fractions 0..1 of the image with top < bottom and "
                                    f"left < right, e.g. [0, 0, 1, 0.5] for the left half; got {box!r}")
    centers = (np.arange(IMAGE_SIZE) + 0.5) / IMAGE_SIZE  # a pixel is inside when its center is
    top, left, bottom, right = box
    rows, columns = (centers >= top) & (centers < bottom), (centers >= left) & (centers < right)
    return rows[:, None] & columns[None, :]


def file_mask(name, source: str, base_dir) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not isinstance(name, str) or not name:
        _fail(source, "region.mask", f"must be an image file name (white = inside), got {name!r}")
    path = Path(name) if base_dir is None or Path(name).is_absolute() else Path(base_dir) / name
    try:
        with Image.open(path) as image:
            gray = image.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    except (OSError, UnidentifiedImageError) as exc:
        _fail(source, "region.mask", f"cannot read the mask image {path}: {exc}")
    return np.asarray(gray, dtype=np.float64) >= 127.5


def parse_region(table, source: str, base_dir: str | os.PathLike | None = None) -> Region:
    if not isinstance(table, dict):
        _fail(source, "region", f"must be a table: [region] with box = [top, left, bottom, right] or mask = \"file.png\"; got {table!r}")
    unknown = sorted(set(table) - set(REGION_FIELDS))
    if unknown:
        _fail(source, f"region.{unknown[0]}", f"unknown field; known: {', '.join(REGION_FIELDS)}")
    if ("box" in table) == ("mask" in table):
        _fail(source, "region", "give exactly one of box = [top, left, bottom, right] and mask = \"file.png\"")
    mask = box_mask(table["box"], source) if "box" in table else file_mask(table["mask"], source, base_dir)
    if mask.all() or not mask.any():
        _fail(source, "region.box" if "box" in table else "region.mask",
              "covers " + ("the whole image" if mask.all() else "no pixel") + ": inside vs outside needs both")
    name = table.get("name", "region")
    if not isinstance(name, str) or not name:
        _fail(source, "region.name", f"must be a non-empty label, got {name!r}")
    described = f"box {table['box']}" if "box" in table else str(table["mask"])
    return Region(mask, described, name)


def change_inside_outside(images_by_weight: dict, mask: np.ndarray) -> tuple[dict, dict]:
    """(inside, outside): weight -> mean absolute pixel change (0..1) against w = 0 over those pixels."""
    base = np.asarray(images_by_weight[0.0], dtype=np.float64).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 3)
    inside, outside = {}, {}
    for weight, images in sorted(images_by_weight.items()):
        change = np.abs(np.asarray(images, dtype=np.float64).reshape(base.shape) - base).mean(axis=3) / 255.0
        inside[weight], outside[weight] = float(change[:, mask].mean()), float(change[:, ~mask].mean())
    return inside, outside


def placed_inside(reads, mask: np.ndarray) -> list[bool | None]:
    """Per sample: whether its object's centroid is inside the region (None: no object found)."""
    flags = []
    for read in reads:
        if read.center is None:
            flags.append(None)
            continue
        x, y = (min(max(int(c), 0), IMAGE_SIZE - 1) for c in read.center)
        flags.append(bool(mask[y, x]))
    return flags


def region_figures(spec, affected_images: dict, affected_reads: dict, summarize) -> dict:
    """The [region] block of metrics.json. affected_*: weight -> the affected samples (images [N, 64, 64, 3], reads);
    summarize(spec, reads by weight) -> (figures, notes): the kind's own figures on a subset of samples."""
    mask = spec.region.mask
    inside, outside = change_inside_outside(affected_images, mask)
    locality = {w: inside[w] / (inside[w] + outside[w]) if inside[w] + outside[w] > 0 else None for w in inside}
    flags = placed_inside(affected_reads[0.0], mask)
    groups = {}
    for name, wanted in (("inside", True), ("outside", False)):
        chosen = [i for i, flag in enumerate(flags) if flag is wanted]
        if not chosen:
            groups[name] = {"samples": 0, "note": f"no affected sample has its object {name} the region at w=0"}
            continue
        figures, notes = summarize(spec, {w: [reads[i] for i in chosen] for w, reads in affected_reads.items()})
        groups[name] = {"samples": len(chosen), **figures, **({"notes": notes} if notes else {})}
    return {"name": spec.region.name, "source": spec.region.source, "fraction": float(mask.mean()),
            "change_inside_by_weight": {key(w): v for w, v in inside.items()},
            "change_outside_by_weight": {key(w): v for w, v in outside.items()},
            "locality_by_weight": {key(w): v for w, v in locality.items()},
            "unplaced_samples": sum(flag is None for flag in flags), **{f"objects_{k}": v for k, v in groups.items()}}
