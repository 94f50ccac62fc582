"""Read a toy-world image's attributes back from its pixels (batched torch, CPU-fast, no learned parts).

Method, chosen to survive the blur and noise of an autoencoder round trip:
1. background: per-channel median of the border pixels (objects keep a margin; a median ignores intruders);
2. object: pixels farther than ROUGH_DISTANCE from the background, largest 4-connected component, holes filled;
3. color: the palette color whose direction from the background best matches the object's summed difference
   from it (cosine). Mixing with the background only scales that difference, so blurred edges vote right;
4. coverage alpha: each pixel's projection on that palette direction (0 = background, 1 = object);
5. size from the soft area sum(alpha), centroid from alpha-weighted positions; both are unchanged by any
   symmetric blur, which is what an autoencoder mostly does to edges;
6. shape from normalized complex moments around the centroid, mu_n = sum(alpha * (z - c)^n): an isotropic
   blur leaves every mu_n exactly unchanged. A triangle (3-fold symmetric) has a large |mu_3| and mu_4 = 0;
   an axis-aligned square has mu_3 = 0 and a negative real mu_4 (its far points, the corners, sit at 45 deg);
   a circle has neither. Normalized by area (mu_3 / A^2.5, mu_4 / A^3), the values do not depend on size:
   triangle |c3| ~ 0.068, square c4 ~ -0.0167, circle both ~ 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .attributes import COLOR_RGB, COLORS, IMAGE_SIZE, size_area_threshold

ROUGH_DISTANCE = 40.0  # levels (0..255) of RGB distance from the background that surely belong to the object
MIN_OBJECT_PIXELS = 20  # a smaller component is noise or a vanished object: nothing found
REGION_DILATION = 4  # px around the component whose alpha still counts (blurred edges spread outward)
TRIANGLE_C3 = 0.035  # |c3| above: triangle (triangles ~0.068, others ~0)
# Re(c4) below: square (squares ~-0.0167, circles ~0). Set from the shipped autoencoder's reconstructions,
# whose decoder rounds the corners of small squares (c4 up to ~-0.008) and gives small circles a slight
# grid-aligned squareness (c4 down to ~-0.006): the threshold sits in the middle of that gap.
SQUARE_C4 = -0.0068
# Half-widths of the bands around each threshold inside which a decision is flagged not confident.
C3_BAND, C4_BAND, AREA_BAND, MIN_COLOR_COSINE = 0.01, 0.003, 0.15, 0.9
CHUNK = 256  # images per vectorized pass: bounded memory, same speed


@dataclass(frozen=True)
class ReadResult:
    """What the reader saw. shape/color/size/center are None when no object was found.

    area: object pixel fraction (soft coverage sum / 64^2). center: (x, y) of the alpha-weighted centroid,
    in the renderer's pixel coordinates. confident: an object was found and no decision was near a threshold.
    """

    shape: str | None
    color: str | None
    size: str | None
    area: float
    background: str
    center: tuple[float, float] | None
    confident: bool

    def categorical(self) -> dict[str, str | None]:
        return {"shape": self.shape, "color": self.color, "size": self.size, "background": self.background}


def read_batch(images: np.ndarray) -> list[ReadResult]:
    """Read uint8 images [N, 64, 64, 3]."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"expected uint8 [N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3], got {images.dtype} {list(images.shape)}")
    return _read_levels(torch.from_numpy(images).permute(0, 3, 1, 2).float())


def read_batch_float(images, *, value_range: tuple[float, float]) -> list[ReadResult]:
    """Read float images [N, 3, 64, 64] (CHW) spanning `value_range`, e.g. (0, 1) or (-1, 1)."""
    images = torch.as_tensor(images).detach().float().cpu()
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected [N, 3, {IMAGE_SIZE}, {IMAGE_SIZE}], got {list(images.shape)}")
    low, high = value_range
    return _read_levels(((images - low) / (high - low) * 255.0).clamp(0.0, 255.0))


def _read_levels(levels: torch.Tensor) -> list[ReadResult]:
    """levels: float [N, 3, 64, 64] in 0..255."""
    results = []
    for start in range(0, levels.shape[0], CHUNK):
        results.extend(_read_chunk(levels[start : start + CHUNK]))
    return results


def _read_chunk(levels: torch.Tensor) -> list[ReadResult]:
    background = _border_median(levels)
    difference = levels - background[:, :, None, None]
    component = _fill_holes(_largest_component(difference.norm(dim=1) > ROUGH_DISTANCE))
    color_index, color_cosine = _classify_color(difference, component, background)
    direction = torch.tensor([COLOR_RGB[name] for name in COLORS])[color_index] - background
    alpha = (difference * direction[:, :, None, None]).sum(1) / (direction * direction).sum(1)[:, None, None]
    region = _dilate(component, REGION_DILATION)
    # Clamp: shading nudges alpha a little past 1; far outliers (artifacts) must not dominate high moments.
    area, center_x, center_y, c3, c4 = _moments(alpha.clamp(-0.25, 1.25) * region)
    found = component.sum((1, 2)) >= MIN_OBJECT_PIXELS
    light = background.mean(1) > 127.5
    rows = zip(found.tolist(), light.tolist(), color_index.tolist(), color_cosine.tolist(), area.tolist(),
               center_x.tolist(), center_y.tolist(), c3.tolist(), c4.tolist())
    return [_result(*row) for row in rows]


def _result(found, light, color_index, color_cosine, area, x, y, c3, c4) -> ReadResult:
    background = "light" if light else "dark"
    if not found:
        return ReadResult(None, None, None, 0.0, background, None, False)
    is_triangle = c3 > TRIANGLE_C3
    shape = "triangle" if is_triangle else ("square" if c4 < SQUARE_C4 else "circle")
    threshold = size_area_threshold()
    confident = (
        abs(c3 - TRIANGLE_C3) > C3_BAND
        and (is_triangle or abs(c4 - SQUARE_C4) > C4_BAND)
        and abs(area / threshold - 1) > AREA_BAND
        and color_cosine >= MIN_COLOR_COSINE
    )
    size = "large" if area > threshold else "small"
    return ReadResult(shape, COLORS[color_index], size, area / IMAGE_SIZE**2, background, (x, y), confident)


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Square dilation of bool `mask` [N, H, W], as two 1-D max-pools (separable: cheaper than one 2-D pool)."""
    width = 2 * radius + 1
    rows = F.max_pool2d(mask[:, None].float(), (1, width), 1, (0, radius))
    return F.max_pool2d(rows, (width, 1), 1, (radius, 0))[:, 0] > 0


def _border_median(levels: torch.Tensor) -> torch.Tensor:
    """[N, 3] per-channel median of the one-pixel image border."""
    border = torch.cat([levels[:, :, 0, :], levels[:, :, -1, :], levels[:, :, 1:-1, 0], levels[:, :, 1:-1, -1]], dim=2)
    return border.median(dim=2).values


def _propagate(seed: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Spread the max of int `seed` [N, H, W] over each 4-connected component of bool `allowed` (0 elsewhere).

    Alternates whole-run maxima along rows and columns: a convex blob converges in two sweeps, where a
    3x3 max-pool needs one sweep per pixel of diameter (~10x slower here).
    """
    current = seed * allowed
    while True:
        grown = _run_max(_run_max(current, allowed, transpose=False), allowed, transpose=True)
        if torch.equal(grown, current):
            return current
        current = grown


def _run_max(values: torch.Tensor, allowed: torch.Tensor, transpose: bool) -> torch.Tensor:
    """Each allowed pixel gets the max of `values` over its run of allowed pixels along rows (columns if transpose)."""
    if transpose:
        flipped = _run_max(values.transpose(1, 2).contiguous(), allowed.transpose(1, 2).contiguous(), transpose=False)
        return flipped.transpose(1, 2).contiguous()
    starts = allowed & ~F.pad(allowed, (1, 0))[..., :-1]
    run = torch.cumsum(starts, dim=-1, dtype=torch.int32)  # run number along the row; non-decreasing, so it can offset keys
    offset = int(values.max()) + 1
    # cummax over (run * offset + value) never carries a value across runs: a later run's keys are all larger.
    prefix = torch.cummax(run * offset + values, dim=-1).values - run * offset
    backward_run = run[..., -1:] - run  # non-decreasing from the right
    suffix = torch.cummax((backward_run * offset + values).flip(-1), dim=-1).values.flip(-1) - backward_run * offset
    return torch.maximum(prefix, suffix) * allowed


def _largest_component(mask: torch.Tensor) -> torch.Tensor:
    """Per image, the largest 4-connected component of bool `mask` [N, H, W] (all False where mask is empty)."""
    n, height, width = mask.shape
    # Every pixel starts with its own id; each component ends up labeled with its largest id.
    ids = torch.arange(1, height * width + 1, dtype=torch.int32).reshape(1, height, width).expand(n, -1, -1)
    labels = _propagate(ids, mask).reshape(n, -1).long()
    counts = torch.zeros(n, height * width + 1).scatter_add_(1, labels, torch.ones_like(labels, dtype=torch.float32))
    counts[:, 0] = 0  # label 0 is the background
    largest = counts.argmax(1, keepdim=True)
    return ((labels == largest) & (largest > 0)).reshape(n, height, width)


def _fill_holes(mask: torch.Tensor) -> torch.Tensor:
    """`mask` plus every pixel not reachable from the image border without crossing it."""
    border = torch.ones_like(mask, dtype=torch.int32)
    border[:, 1:-1, 1:-1] = 0
    outside = _propagate(border, ~mask) > 0
    return ~outside


def _classify_color(difference: torch.Tensor, component: torch.Tensor, background: torch.Tensor):
    """(palette index [N], best cosine [N]) of the object's summed difference from the background."""
    summed = (difference * component[:, None]).sum((2, 3))  # [N, 3]
    palette = torch.tensor([COLOR_RGB[name] for name in COLORS], dtype=torch.float32)
    directions = palette[None] - background[:, None]  # [N, colors, 3]
    cosine = (directions @ summed[:, :, None])[..., 0] / (directions.norm(dim=2) * summed.norm(dim=1, keepdim=True) + 1e-6)
    best = cosine.max(1)
    return best.indices, best.values


def _moments(alpha: torch.Tensor):
    """Soft area, centroid (x, y) and the size-free shape features |c3|, Re(c4) of alpha [N, H, W]."""
    coordinates = torch.arange(IMAGE_SIZE, dtype=torch.float32) + 0.5  # pixel centers
    area = alpha.sum((1, 2)).clamp_min(1e-6)
    center_x = (alpha * coordinates[None, None, :]).sum((1, 2)) / area
    center_y = (alpha * coordinates[None, :, None]).sum((1, 2)) / area
    z = torch.complex(coordinates[None, None, :] - center_x[:, None, None], coordinates[None, :, None] - center_y[:, None, None])
    weights = alpha.to(torch.complex64)
    z2 = z * z
    mu3 = (weights * z2 * z).sum((1, 2))
    mu4 = (weights * z2 * z2).sum((1, 2))
    return area, center_x, center_y, mu3.abs() / area**2.5, mu4.real / area**3
