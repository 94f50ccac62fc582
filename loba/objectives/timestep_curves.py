"""Per-entry timestep schedules: a window [start, end) of the timesteps an entry trains at, and a curve over it.

Diffusion decides layout at high t and texture and detail at low t, so an entry may train only where its change
lives (t > 600 for layout, t < 400 for texture). The curve says how often each timestep of the window trains:
steps draw an entry's timestep with probability proportional to curve(u), u = (t - start) / (end - start) in
[0, 1). That has the expected gradient of weighting the loss by the curve, without spending steps at weight ~0.
"flat" draws uniformly, exactly as an entry without a schedule does (same draws, bit for bit).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..registry import Registry

#: The timestep range every schedule window lies in (the discrete training schedules' 1000 steps).
TIMESTEP_RANGE = (0, 1000)


@dataclass(frozen=True)
class TimestepCurve:
    help: str
    weight: Callable[[float], float]  # u in [0, 1] across the window -> relative weight >= 0


TIMESTEP_CURVES: Registry[TimestepCurve] = Registry("timestep curve", field="timestep_curve")
TIMESTEP_CURVES.register("flat", TimestepCurve("every timestep of the window equally often", lambda u: 1.0))
TIMESTEP_CURVES.register("rising", TimestepCurve("more often toward the window's high end (layout, composition)",
                                                 lambda u: 0.1 + 0.9 * u))
TIMESTEP_CURVES.register("falling", TimestepCurve("more often toward the window's low end (texture, detail)",
                                                  lambda u: 1.0 - 0.9 * u))
TIMESTEP_CURVES.register("bell", TimestepCurve("most often in the window's middle, rarely at its edges",
                                               lambda u: 0.1 + 0.9 * math.sin(math.pi * u)))


def curve_help() -> str:
    return "; ".join(f"{name}: {TIMESTEP_CURVES.get(name).help}" for name in TIMESTEP_CURVES)


def draw_weights(timesteps: Sequence[int], window: tuple[int, int], curve: str) -> list[float]:
    """The relative draw probability of each timestep (all inside `window`) under `curve`."""
    start, end = window
    shape = TIMESTEP_CURVES.get(curve).weight
    return [float(shape((int(t) - start) / max(end - start, 1))) for t in timesteps]


def schedule_plot(window: tuple[int, int], curve: str, size: tuple[int, int] = (320, 120)):
    """A small picture of the schedule: the curve over t = 0..1000 (high t, layout, on the left as a sampler walks),
    zero outside the window. PIL image."""
    from PIL import Image, ImageDraw

    width, height = size
    image = Image.new("RGB", size, (250, 250, 250))
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 8, width - 8, 8, height - 22
    low, high = TIMESTEP_RANGE
    start, end = window

    def x_of(t: float) -> float:  # t = 1000 at the left
        return left + (high - t) / (high - low) * (right - left)

    peak = max(draw_weights(range(start, end), window, curve)) or 1.0
    points = []
    for t in range(high - 1, low - 1, -4):
        value = draw_weights([t], window, curve)[0] / peak if start <= t < end else 0.0
        points.append((x_of(t), bottom - value * (bottom - top)))
    draw.rectangle([x_of(end), top, x_of(start), bottom], fill=(225, 235, 250))
    draw.line(points, fill=(30, 80, 200), width=2)
    draw.line([(left, bottom), (right, bottom)], fill=(90, 90, 90))
    draw.text((left, bottom + 4), f"t={high}", fill=(60, 60, 60))
    draw.text((right - 28, bottom + 4), f"t={low}", fill=(60, 60, 60))
    draw.text((width // 2 - 60, bottom + 4), f"[{start}, {end}) {curve}", fill=(30, 30, 30))
    return image
