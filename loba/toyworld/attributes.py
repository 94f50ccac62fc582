"""The toy world's vocabulary and geometry: what an image can show, and the `Attributes` of one scene.

Everything the renderer, the caption grammar and the reader must agree on lives here, so the
reader's thresholds derive from the same numbers the renderer samples from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

IMAGE_SIZE = 64
MARGIN = 4  # px of pure background between the object's bounding box and the image border

SHAPES = ("circle", "square", "triangle")
COLORS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
BACKGROUNDS = ("light", "dark")
ATTRIBUTE_VALUES = {"shape": SHAPES, "color": COLORS, "size": SIZES, "background": BACKGROUNDS}

# Saturated palette, far from both gray backgrounds and from each other in direction (see reader).
COLOR_RGB = {
    "red": (215, 45, 45),
    "green": (40, 195, 75),
    "blue": (45, 85, 225),
    "yellow": (235, 205, 45),
}
BACKGROUND_GRAY = {"light": (200.0, 235.0), "dark": (20.0, 55.0)}

# `scale` is the equal-area diameter: the diameter of the circle with the object's area. Equal areas
# across shapes let one area threshold separate small from large whatever the shape; the gap (area ratio
# 30^2/22^2 = 1.86) survives any blur, since blur keeps the soft area. Small objects span >= 2 latent cells
# at 8x (square side >= 16 px): below ~18 px an 8x bottleneck can no longer tell a circle from a square.
SCALE_RANGES = {"small": (18.0, 22.0), "large": (30.0, 35.0)}

SQUARE_SIDE_PER_SCALE = math.sqrt(math.pi) / 2  # side^2 = pi d^2 / 4
TRIANGLE_SIDE_PER_SCALE = math.sqrt(math.pi / math.sqrt(3))  # (sqrt3/4) side^2 = pi d^2 / 4


def area_of_scale(scale: float) -> float:
    """Object area in px for an equal-area diameter `scale`."""
    return math.pi * scale * scale / 4


def size_area_threshold() -> float:
    """Area (px) between the largest small and the smallest large object (geometric mean: blur scales areas)."""
    return math.sqrt(area_of_scale(SCALE_RANGES["small"][1]) * area_of_scale(SCALE_RANGES["large"][0]))


def size_of_scale(scale: float) -> str | None:
    """The size class whose range holds `scale`, or None between/outside the ranges."""
    for size, (low, high) in SCALE_RANGES.items():
        if low <= scale <= high:
            return size
    return None


def half_extents(shape: str, scale: float) -> tuple[float, float, float, float]:
    """Distances (left, right, up, down) from the object's centroid to its bounding box edges."""
    if shape == "circle":
        r = scale / 2
        return r, r, r, r
    if shape == "square":
        h = scale * SQUARE_SIDE_PER_SCALE / 2
        return h, h, h, h
    side = scale * TRIANGLE_SIDE_PER_SCALE
    height = side * math.sqrt(3) / 2
    # Apex up: the centroid sits at 2/3 of the height below the apex.
    return side / 2, side / 2, 2 * height / 3, height / 3


def center_range(shape: str, scale: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """((x_min, x_max), (y_min, y_max)) of centroids that keep the object MARGIN px inside the image."""
    left, right, up, down = half_extents(shape, scale)
    return (MARGIN + left, IMAGE_SIZE - MARGIN - right), (MARGIN + up, IMAGE_SIZE - MARGIN - down)


@dataclass(frozen=True)
class Attributes:
    """One scene: categorical attributes plus the continuous `scale` (equal-area diameter, px) and
    `center` (x, y) of the object's centroid in pixel coordinates (pixel j covers [j, j+1), y down)."""

    shape: str
    color: str
    size: str
    background: str
    scale: float
    center: tuple[float, float]

    def __post_init__(self):
        for name, values in ATTRIBUTE_VALUES.items():
            if getattr(self, name) not in values:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {values}")
        if size_of_scale(self.scale) != self.size:
            raise ValueError(f"scale {self.scale} is outside the {self.size} range {SCALE_RANGES[self.size]}")
        (x_low, x_high), (y_low, y_high) = center_range(self.shape, self.scale)
        x, y = self.center
        if not (x_low - 1e-6 <= x <= x_high + 1e-6 and y_low - 1e-6 <= y <= y_high + 1e-6):
            raise ValueError(f"center {self.center} puts the {self.shape} closer than {MARGIN}px to the border")

    def categorical(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ATTRIBUTE_VALUES}
