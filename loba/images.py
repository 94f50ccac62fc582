"""Pictures a host shows: the loss curve and a labelled grid of samples (rows = prompts, columns = weights).

PIL only, so every host (CLI, ComfyUI, a notebook) renders the same images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

BACKGROUND, INK, FAINT, CURVE, SMOOTH = (255, 255, 255), (0, 0, 0), (200, 200, 200), (150, 170, 220), (20, 60, 200)
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP, MARGIN_RIGHT = 56, 24, 20, 12


def smoothed(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (what a user reads through the per-step noise of a slider's loss)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def loss_curve_image(losses: Sequence[float], width: int = 512, height: int = 256, title: str = "loss") -> Image.Image:
    """Per-step loss (light) and its moving average (dark) on a log-free linear axis with step and value labels."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    finite = [v for v in losses if math.isfinite(v)]
    draw.text((MARGIN_LEFT, 4), f"{title}: {len(losses)} steps" + (f", last {finite[-1]:.4g}" if finite else ""), fill=INK, font=font)
    left, top, right, bottom = MARGIN_LEFT, MARGIN_TOP, width - MARGIN_RIGHT, height - MARGIN_BOTTOM
    draw.rectangle((left, top, right, bottom), outline=FAINT)
    if not finite:
        draw.text((left + 8, top + 8), "no finite loss yet", fill=INK, font=font)
        return image
    low, high = min(finite), max(finite)
    high = high if high > low else low + 1e-12

    def point(i: int, v: float) -> tuple[float, float]:
        x = left + (right - left) * (i / max(1, len(losses) - 1))
        return x, bottom - (bottom - top) * (v - low) / (high - low)

    for values, color in ((losses, CURVE), (smoothed(losses, max(1, len(losses) // 20)), SMOOTH)):
        points = [point(i, v) for i, v in enumerate(values) if math.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=color, width=2 if color == SMOOTH else 1)
        elif points:
            draw.ellipse((points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2), fill=color)
    draw.text((4, top), f"{high:.3g}", fill=INK, font=font)
    draw.text((4, bottom - 10), f"{low:.3g}", fill=INK, font=font)
    draw.text((left, bottom + 6), "1", fill=INK, font=font)
    draw.text((right - 6 * len(str(len(losses))), bottom + 6), str(len(losses)), fill=INK, font=font)
    return image


def wrap_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    """Greedy word wrap to `width` px (long prompts would otherwise run into the images)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def labelled_grid(cells: Sequence[Sequence[Image.Image]], row_labels: Sequence[str], column_labels: Sequence[str],
                  label_width: int = 180, header: int = 22, gap: int = 4, min_tile: int = 128) -> Image.Image:
    """cells[row][column] -> one image; small tiles are enlarged (nearest) to at least `min_tile` px wide."""
    if not cells or not cells[0]:
        raise ValueError("labelled_grid needs at least one row and one column")
    tile_w, tile_h = cells[0][0].size
    scale = max(1, math.ceil(min_tile / tile_w))
    tile_w, tile_h = tile_w * scale, tile_h * scale
    grid = Image.new("RGB", (label_width + len(column_labels) * (tile_w + gap), header + len(row_labels) * (tile_h + gap)), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for column, label in enumerate(column_labels):
        draw.text((label_width + column * (tile_w + gap) + 4, 4), label, fill=INK, font=font)
    for row, label in enumerate(row_labels):
        top = header + row * (tile_h + gap)
        for index, line in enumerate(wrap_text(draw, label, font, label_width - 10)[: max(1, tile_h // 13)]):
            draw.text((4, top + 2 + 13 * index), line, fill=INK, font=font)
        for column, cell in enumerate(cells[row]):
            tile = cell.convert("RGB").resize((tile_w, tile_h), Image.NEAREST) if scale > 1 or cell.size != (tile_w, tile_h) else cell
            grid.paste(tile.convert("RGB"), (label_width + column * (tile_w + gap), header + row * (tile_h + gap)))
    return grid


def parse_weights(text: str, field: str = "weights") -> list[float]:
    """'-2, -1, 0, 1, 2' -> [-2.0, -1.0, 0.0, 1.0, 2.0]; a clear error naming the bad item otherwise."""
    from .errors import ConfigError

    raw = [item.strip() for item in str(text).replace(";", ",").split(",")]
    if any(raw) and not all(raw):
        # '1,,2' is a typo (a lost weight), not [1, 2]: say so instead of quietly dropping the gap.
        raise ConfigError(field, f"item {raw.index('') + 1} of '{text}' is empty (two commas in a row, or a comma at "
                                 "an end); give a comma-separated list like -2, -1, 0, 1, 2")
    items = [item for item in raw if item]
    if not items:
        raise ConfigError(field, "is empty; give a comma-separated list of weights, e.g. -2, -1, 0, 1, 2")
    weights = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(field, f"'{item}' is not a number; give a comma-separated list like -2, -1, 0, 1, 2") from None
        if not math.isfinite(value):
            raise ConfigError(field, f"'{item}' is not a finite number")
        weights.append(value)
    return weights
