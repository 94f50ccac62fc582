"""Procedural renders of the toy world: one solid, slightly shaded object on a near-uniform gray background.

Every random draw happens in a fixed order whatever is fixed, so two calls with equal seeds that fix
different values (color="red" vs color="blue") give the same scene except for that attribute: the
paired images a slider evaluation wants.
"""

from __future__ import annotations

import math

import numpy as np

from .attributes import (
    ATTRIBUTE_VALUES,
    BACKGROUND_GRAY,
    COLOR_RGB,
    IMAGE_SIZE,
    SCALE_RANGES,
    SQUARE_SIDE_PER_SCALE,
    TRIANGLE_SIDE_PER_SCALE,
    Attributes,
    center_range,
    half_extents,
    size_of_scale,
)
from .style import Style, inner_scale, palette_rgb, random_style

SUPERSAMPLE = 4  # antialiasing: coverage is computed on a 4x finer grid, then box-averaged
COLOR_JITTER = 8.0  # +- levels per channel: colors vary a little but stay far from each other
SHADING = (0.03, 0.07)  # relative brightness change from the object's center to its edge
BACKGROUND_GRADIENT = 4.0  # at most +- levels across the image
NOISE_STD = 1.5  # levels, i.i.d. per pixel and channel

_FIXABLE = (*ATTRIBUTE_VALUES, "scale", "center")


def sample_attributes(rng: np.random.Generator, **fixed) -> Attributes:
    """Uniform categorical attributes, scale uniform in the size's range, centroid uniform where the object fits.

    Any of shape, color, size, background, scale, center can be fixed; a fixed scale implies its size.
    """
    unknown = set(fixed) - set(_FIXABLE)
    if unknown:
        raise TypeError(f"cannot fix {sorted(unknown)}; fixable: {_FIXABLE}")
    # Draw everything first, used or not, so fixing one attribute leaves the others' draws unchanged.
    category_draws = {name: values[rng.integers(len(values))] for name, values in ATTRIBUTE_VALUES.items()}
    u_scale, u_x, u_y = rng.random(3)
    chosen = {**category_draws, **{k: v for k, v in fixed.items() if k in ATTRIBUTE_VALUES}}
    if "scale" in fixed:
        scale = float(fixed["scale"])
        if "size" not in fixed:
            chosen["size"] = size_of_scale(scale) or chosen["size"]  # out-of-range scales fail validation below
    else:
        low, high = SCALE_RANGES[chosen["size"]]
        scale = low + u_scale * (high - low)
    if "center" in fixed:
        center = (float(fixed["center"][0]), float(fixed["center"][1]))
    else:
        (x_low, x_high), (y_low, y_high) = center_range(chosen["shape"], scale)
        center = (x_low + u_x * (x_high - x_low), y_low + u_y * (y_high - y_low))
    return Attributes(scale=float(scale), center=(float(center[0]), float(center[1])), **chosen)


def coverage(shape: str, scale: float, center: tuple[float, float]) -> np.ndarray:
    """Fraction of each pixel covered by the object, float32 [64, 64], by 4x supersampling of its bounding box."""
    left, right, up, down = half_extents(shape, scale)
    x0, x1 = max(0, math.floor(center[0] - left)), min(IMAGE_SIZE, math.ceil(center[0] + right))
    y0, y1 = max(0, math.floor(center[1] - up)), min(IMAGE_SIZE, math.ceil(center[1] + down))
    # Sub-pixel centers of the crop, relative to the centroid (only the crop: 3-4x cheaper than the frame).
    dx = (np.arange(x0 * SUPERSAMPLE, x1 * SUPERSAMPLE, dtype=np.float32) + 0.5) / SUPERSAMPLE - np.float32(center[0])
    dy = (np.arange(y0 * SUPERSAMPLE, y1 * SUPERSAMPLE, dtype=np.float32) + 0.5) / SUPERSAMPLE - np.float32(center[1])
    dx, dy = dx[None, :], dy[:, None]
    if shape == "circle":
        inside = dx * dx + dy * dy <= (scale / 2) ** 2
    elif shape == "square":
        half = scale * SQUARE_SIDE_PER_SCALE / 2
        inside = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    elif shape == "triangle":
        side = scale * TRIANGLE_SIDE_PER_SCALE
        height = side * math.sqrt(3) / 2
        below_apex = dy + 2 * height / 3  # distance below the apex; the half-width grows as below_apex / sqrt(3)
        inside = (dy <= height / 3) & (np.abs(dx) * math.sqrt(3) <= below_apex)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    alpha = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    blocks = inside.reshape(y1 - y0, SUPERSAMPLE, x1 - x0, SUPERSAMPLE)
    alpha[y0:y1, x0:x1] = blocks.mean(axis=(1, 3), dtype=np.float32)
    return alpha


def _linear_ramp(angle: float, origin: tuple[float, float], half_length: float) -> np.ndarray:
    """(p - origin) . direction / half_length over the pixel centers: a smooth ramp for gradients."""
    centers = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
    ramp_x = (centers[None, :] - origin[0]) * math.cos(angle)
    ramp_y = (centers[:, None] - origin[1]) * math.sin(angle)
    return (ramp_x + ramp_y) / half_length


def render(attrs: Attributes, rng: np.random.Generator, style: Style | None = None) -> np.ndarray:
    """The scene as uint8 [64, 64, 3]; deterministic given the rng state.

    `style` None is the shipped world's scene; a Style (entangled world) changes only the object's color
    and coverage, with the same draws, so a styled scene pairs with its plain twin."""
    gray_low, gray_high = BACKGROUND_GRAY[attrs.background]
    gray = gray_low + rng.random() * (gray_high - gray_low)
    nominal = COLOR_RGB[attrs.color] if style is None else palette_rgb(attrs.color, style.palette)
    color = np.asarray(nominal, dtype=np.float32) + rng.uniform(-COLOR_JITTER, COLOR_JITTER, 3).astype(np.float32)
    shading, shading_angle = rng.uniform(*SHADING), rng.uniform(0, 2 * math.pi)
    gradient, gradient_angle = rng.uniform(0, BACKGROUND_GRADIENT), rng.uniform(0, 2 * math.pi)
    noise = rng.normal(0.0, NOISE_STD, (IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)

    half = IMAGE_SIZE / 2
    background = gray + gradient * _linear_ramp(gradient_angle, (half, half), half)
    brightness = 1.0 + shading * np.clip(_linear_ramp(shading_angle, attrs.center, attrs.scale / 2), -1.0, 1.0)
    alpha = coverage(attrs.shape, attrs.scale, attrs.center)[..., None]
    if style is not None and style.linework == "outlined":
        alpha = alpha - coverage(attrs.shape, inner_scale(attrs.shape, attrs.scale), attrs.center)[..., None]
    image = background[..., None] * (1 - alpha) + (color * brightness[..., None]) * alpha + noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def render_batch(n: int, seed: int, **fixed) -> tuple[np.ndarray, list[Attributes]]:
    """`n` scenes from one seed: (uint8 [n, 64, 64, 3], their Attributes). Fixed attributes apply to all."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    attributes = []
    for index in range(n):
        # Sample-then-render per scene: the first k scenes of a batch do not depend on n.
        attributes.append(sample_attributes(rng, **fixed))
        images[index] = render(attributes[-1], rng)
    return images, attributes


def render_styled_batch(n: int, seed: int, **fixed) -> tuple[np.ndarray, list[Attributes], list[Style]]:
    """The entangled world's scenes: like render_batch plus a uniform Style per scene (linework and palette
    can be fixed too). Attributes are drawn first, then the style, then the render's own draws."""
    style_fixed = {k: fixed.pop(k) for k in ("linework", "palette") if k in fixed}
    rng = np.random.default_rng(seed)
    images = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    attributes, styles = [], []
    for index in range(n):
        attributes.append(sample_attributes(rng, **fixed))
        styles.append(random_style(rng, **style_fixed))
        images[index] = render(attributes[-1], rng, styles[-1])
    return images, attributes, styles
