"""Render style of the `entangled` toy world: linework (filled | outlined) and palette (vivid | pastel).

The shipped world never saw these words: a scene without a `Style` is drawn exactly as before (filled,
vivid), so its renders, reader figures and weights are untouched. Styles are drawn uniformly and are
never the target of a caption bias (the style-shift work that follows wants them independent).

Outlined: the object's boundary band of width STROKE_WIDTH px, cut from the filled shape by the same
shape shrunk about its centroid (for all three shapes the centroid is also the incenter, so the band
has one width all round). Pastel: the palette color mixed PASTEL_MIX of the way to white.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .attributes import COLOR_RGB, COLORS, SQUARE_SIDE_PER_SCALE, TRIANGLE_SIDE_PER_SCALE

LINEWORKS = ("filled", "outlined")
PALETTES = ("vivid", "pastel")
STYLE_VALUES = {"linework": LINEWORKS, "palette": PALETTES}
STYLE_WORDS = (*LINEWORKS, *PALETTES)
PLAIN = None  # no style: the shipped world's filled, vivid scene

STROKE_WIDTH = 4.5  # px; an 8x autoencoder keeps the hole of the smallest outlined triangle at this width
PASTEL_MIX = 0.5  # fraction of the way from the vivid color to white


@dataclass(frozen=True)
class Style:
    linework: str = "filled"
    palette: str = "vivid"

    def __post_init__(self):
        for name, values in STYLE_VALUES.items():
            if getattr(self, name) not in values:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {values}")

    def categorical(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in STYLE_VALUES}


def palette_rgb(color: str, palette: str) -> tuple[float, float, float]:
    """The nominal RGB of `color` in `palette` (before the renderer's jitter)."""
    vivid = COLOR_RGB[color]
    if palette == "vivid":
        return tuple(float(c) for c in vivid)
    if palette == "pastel":
        return tuple(c + PASTEL_MIX * (255.0 - c) for c in vivid)
    raise ValueError(f"palette must be one of {PALETTES}, got {palette!r}")


def palette_table() -> tuple[list[tuple[str, str]], np.ndarray]:
    """Every (color, palette) pair and its nominal RGB [8, 3], colors outer: what the styled reader picks from."""
    pairs = [(color, palette) for color in COLORS for palette in PALETTES]
    return pairs, np.asarray([palette_rgb(c, p) for c, p in pairs], dtype=np.float32)


def inradius(shape: str, scale: float) -> float:
    """Distance from the centroid to the nearest edge (the circle's radius)."""
    if shape == "circle":
        return scale / 2
    if shape == "square":
        return scale * SQUARE_SIDE_PER_SCALE / 2
    return scale * TRIANGLE_SIDE_PER_SCALE / (2 * math.sqrt(3))


def inner_scale(shape: str, scale: float) -> float:
    """The scale of the shape the outline's hole is: the object shrunk by STROKE_WIDTH all round."""
    radius = inradius(shape, scale)
    return scale * max(0.0, radius - STROKE_WIDTH) / radius


def random_style(rng: np.random.Generator, **fixed) -> Style:
    """Uniform linework and palette (two draws always, so fixing one keeps the other's draw)."""
    unknown = set(fixed) - set(STYLE_VALUES)
    if unknown:
        raise TypeError(f"cannot fix {sorted(unknown)}; fixable: {tuple(STYLE_VALUES)}")
    draws = {name: values[rng.integers(len(values))] for name, values in STYLE_VALUES.items()}
    return Style(**{**draws, **fixed})
