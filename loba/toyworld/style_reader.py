"""Read an `entangled` toy-world image: the shipped reader's attributes plus linework and palette.

Same method as reader.py (border-median background, largest component with holes filled, soft alpha,
moments), with two changes that the styles need:
- color and palette together: the mean of the object's most contrasted pixels (the top CORE_QUANTILE of
  its distance from the background: blurred edges mix with the background and would look pastel) is
  matched to the nearest of the 8 (color, palette) RGBs; the alpha then projects on THAT color's direction;
- linework: outlined when the filled-in hole is over HOLE_FRACTION of the filled object. For an outline
  the hole counts as object (alpha 1), so size and shape are read from the whole figure, as for a filled one.
Plain (filled, vivid) images read as reader.py reads them, up to the color-matching step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .attributes import COLORS, IMAGE_SIZE
from .reader import (
    REGION_DILATION,
    ROUGH_DISTANCE,
    ReadResult,
    _border_median,
    _dilate,
    _fill_holes,
    _largest_component,
    _moments,
    _result,
)
from .style import palette_table

HOLE_FRACTION = 0.03  # outlines leave >= ~0.075 of the figure as hole (small triangles), filled objects 0
CORE_QUANTILE = 0.75  # pixels above this quantile of the object's background distance give its color


@dataclass(frozen=True)
class StyledRead:
    base: ReadResult
    linework: str | None
    palette: str | None
    hole_fraction: float

    def categorical(self) -> dict[str, str | None]:
        return {**self.base.categorical(), "linework": self.linework, "palette": self.palette}


def read_styled_batch(images: np.ndarray) -> list[StyledRead]:
    """Read uint8 images [N, 64, 64, 3] of the entangled world."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"expected uint8 [N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3], got {images.dtype} {list(images.shape)}")
    levels = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    return [read for start in range(0, len(levels), 256) for read in _read_chunk(levels[start:start + 256])]


def _core_colors(levels: torch.Tensor, distance: torch.Tensor, component: torch.Tensor) -> torch.Tensor:
    """[N, 3] mean RGB of each object's most contrasted pixels (zeros where no object)."""
    colors = torch.zeros(levels.shape[0], 3)
    for i in range(levels.shape[0]):
        values = distance[i][component[i]]
        if values.numel() == 0:
            continue
        core = component[i] & (distance[i] >= torch.quantile(values, CORE_QUANTILE))
        colors[i] = levels[i][:, core].mean(1)
    return colors


def _read_chunk(levels: torch.Tensor) -> list[StyledRead]:
    background = _border_median(levels)
    difference = levels - background[:, :, None, None]
    distance = difference.norm(dim=1)
    component = _largest_component(distance > ROUGH_DISTANCE)
    filled = _fill_holes(component)
    hole = filled & ~component
    hole_fraction = hole.sum((1, 2)).float() / filled.sum((1, 2)).clamp_min(1).float()
    pairs, table = palette_table()
    pair_index = torch.cdist(_core_colors(levels, distance, component), torch.from_numpy(table)).argmin(1)
    direction = torch.from_numpy(table)[pair_index] - background
    alpha = (difference * direction[:, :, None, None]).sum(1) / (direction * direction).sum(1)[:, None, None]
    outlined = hole_fraction > HOLE_FRACTION
    # Inside an outline (the hole and the stroke's inner edge) the figure is object: alpha 1.
    inner = _dilate(hole, 1) & filled & outlined[:, None, None]
    alpha = torch.where(inner, torch.ones_like(alpha), alpha)
    area, center_x, center_y, c3, c4 = _moments(alpha.clamp(-0.25, 1.25) * _dilate(filled, REGION_DILATION))
    found = component.sum((1, 2)) >= 20
    light = background.mean(1) > 127.5
    reads = []
    for i in range(levels.shape[0]):
        color, palette = pairs[int(pair_index[i])]
        base = _result(bool(found[i]), bool(light[i]), COLORS.index(color), 1.0, float(area[i]), float(center_x[i]),
                       float(center_y[i]), float(c3[i]), float(c4[i]))
        if not found[i]:
            reads.append(StyledRead(base, None, None, 0.0))
            continue
        reads.append(StyledRead(base, "outlined" if outlined[i] else "filled", palette, float(hole_fraction[i])))
    return reads
