"""The evaluation grid: rows = prompts (affected, then control), columns = slider weights.

Each cell shows the first few seeds side by side, enlarged with nearest-neighbour scaling so the
64 px renders stay crisp; the same seed sits in the same place in every column, so a slider's effect
reads left to right. Fixed geometry (label column, tile size) keeps the image size predictable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..images import wrap_text

SCALE = 2
TILE = 64 * SCALE
GAP = 6  # px between cells
LABEL_WIDTH = 190  # px of prompt labels on the left
HEADER = 22  # px of weight labels on top
DEFAULT_PER_CELL = 4
BACKGROUND, INK, FAINT = (255, 255, 255), (0, 0, 0), (120, 120, 120)


def grid_size(rows: int, columns: int, per_cell: int) -> tuple[int, int]:
    """(width, height) in px of a grid of `rows` prompts x `columns` weights with `per_cell` samples per cell."""
    return LABEL_WIDTH + columns * (per_cell * TILE + GAP), HEADER + rows * (TILE + GAP)


def _tiles(images: np.ndarray, per_cell: int) -> Image.Image:
    """The first `per_cell` images [S, 64, 64, 3] side by side, scaled by SCALE."""
    strip = np.concatenate(list(images[:per_cell]), axis=1)
    return Image.fromarray(strip).resize((strip.shape[1] * SCALE, strip.shape[0] * SCALE), Image.NEAREST)


def make_grid(images: Mapping[float, np.ndarray], prompts: Sequence[str], roles: Sequence[str],
              per_cell: int = DEFAULT_PER_CELL) -> Image.Image:
    """images: weight -> uint8 [prompts, samples, 64, 64, 3]; roles: "affected"/"control" per prompt."""
    weights = sorted(images)
    per_cell = max(1, min(per_cell, images[weights[0]].shape[1]))
    grid = Image.new("RGB", grid_size(len(prompts), len(weights), per_cell), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    cell_width = per_cell * TILE + GAP
    for column, weight in enumerate(weights):
        draw.text((LABEL_WIDTH + column * cell_width + 4, 4), f"w = {weight:g}", fill=INK, font=font)
    for row, (prompt, role) in enumerate(zip(prompts, roles)):
        top = HEADER + row * (TILE + GAP)
        if row and role != roles[row - 1]:  # a rule between the affected and the control group
            draw.line((0, top - GAP // 2 - 1, grid.width, top - GAP // 2 - 1), fill=FAINT, width=2)
        draw.text((4, top + 2), role, fill=FAINT, font=font)
        for index, line in enumerate(wrap_text(draw, prompt, font, LABEL_WIDTH - 10)):
            draw.text((4, top + 18 + 13 * index), line, fill=INK, font=font)
        for column, weight in enumerate(weights):
            grid.paste(_tiles(images[weight][row], per_cell), (LABEL_WIDTH + column * cell_width, top))
    return grid
