"""The node's report IMAGE: the same table (report_table) and score-vs-weight plots, drawn with PIL."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from .report_table import series, summary_rows

COLORS = {"target": (208, 68, 44), "control": (44, 111, 208), "canary": (44, 157, 74)}
ROW, PLOT_W, PLOT_H, PAD, COLUMN = 14, 300, 180, 34, 190


def _plot(draw, font, left: int, top: int, title: str, by_role: dict) -> None:
    points = [p for pts in by_role.values() for p in pts]
    draw.text((left + PAD, top), title, fill=(0, 0, 0), font=font)
    box = (left + PAD, top + 16, left + PLOT_W - 8, top + PLOT_H - PAD)
    draw.rectangle(box, outline=(200, 200, 200))
    if not points:
        return
    xs, ys = [p[0] for p in points], [v for p in points for v in p[1:]]
    x_lo, y_lo = min(xs), min(ys)
    x_hi, y_hi = max(max(xs), x_lo + 1e-9), max(max(ys), y_lo + 1e-9)

    def at(w: float, v: float) -> tuple[float, float]:
        return (box[0] + (w - x_lo) / (x_hi - x_lo) * (box[2] - box[0]), box[3] - (v - y_lo) / (y_hi - y_lo) * (box[3] - box[1]))

    for role, pts in by_role.items():
        color = COLORS.get(role, (80, 80, 80))
        if len(pts) > 1:
            draw.line([at(w, m) for w, m, _, _ in pts], fill=color, width=2)
        for w, m, lo, hi in pts:
            draw.line([at(w, lo), at(w, hi)], fill=color)
            x, y = at(w, m)
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=color)
    for w in sorted(set(xs)):
        draw.text((at(w, y_lo)[0] - 6, box[3] + 3), f"{w:g}", fill=(0, 0, 0), font=font)
    draw.text((left + 2, box[1]), f"{y_hi:.3g}", fill=(0, 0, 0), font=font)
    draw.text((left + 2, box[3] - 10), f"{y_lo:.3g}", fill=(0, 0, 0), font=font)


def report_image(metrics: dict) -> Image.Image:
    rows = list(summary_rows(metrics))
    plots = list(series(metrics).items())
    per_line = 3
    width = max(3 * 90 + COLUMN * len(metrics["weights"]) + 16, per_line * PLOT_W)
    table_h = (len(rows) + 2) * ROW + 10
    height = table_h + ((len(plots) + per_line - 1) // per_line) * PLOT_H + 20
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    draw.text((8, 4), "LOBA slider evaluation: mean [95% bootstrap interval] over seeds", fill=(0, 0, 0), font=font)
    header = ["prompts", "evaluator", "metric"] + [f"w = {w}" for w in metrics["weights"]]
    for r, cells in enumerate([header] + [[role, name, metric, *values] for role, name, metric, values in rows]):
        x = 8
        for c, cell in enumerate(cells):
            draw.text((x, 4 + (r + 1) * ROW), cell, fill=COLORS.get(cells[0], (0, 0, 0)) if c == 0 else (0, 0, 0), font=font)
            x += 90 if c < 3 else COLUMN
    for i, ((name, metric), by_role) in enumerate(plots):
        _plot(draw, font, (i % per_line) * PLOT_W, table_h + (i // per_line) * PLOT_H, f"{name}: {metric}", by_role)
    return image
