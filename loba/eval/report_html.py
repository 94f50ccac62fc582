"""report.html: one self-contained page (the grid inline as a data: URI, plots as inline SVG, no scripts, no
external files): the settings, a table of means with 95% bootstrap intervals, and score-vs-weight plots."""

from __future__ import annotations

import base64
import html
import io

from PIL import Image

from .report_table import series, settings_rows, summary_rows

COLORS = {"target": "#d0442c", "control": "#2c6fd0", "canary": "#2c9d4a"}
WIDTH, HEIGHT, PAD = 320, 200, 36


def _scale(values: list[float], low_px: float, high_px: float):
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1e-9
    return lambda v: low_px + (v - lo) / (hi - lo) * (high_px - low_px)


def svg_plot(title: str, by_role: dict[str, list]) -> str:
    """Mean vs weight per role, with interval bars."""
    points = [p for role in by_role.values() for p in role]
    if not points:
        return f"<p>{html.escape(title)}: no defined values</p>"
    x = _scale([p[0] for p in points], PAD, WIDTH - 10)
    y = _scale([v for p in points for v in p[1:]], HEIGHT - PAD, 20)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img">',
             f'<text x="{PAD}" y="14" font-size="12">{html.escape(title)}</text>',
             f'<rect x="{PAD}" y="20" width="{WIDTH - 10 - PAD}" height="{HEIGHT - 20 - PAD}" fill="none" stroke="#ccc"/>']
    for role, pts in by_role.items():
        color = COLORS.get(role, "#555")
        path = " ".join(f"{x(w):.1f},{y(m):.1f}" for w, m, _, _ in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"><title>{role}</title></polyline>')
        parts += [f'<line x1="{x(w):.1f}" x2="{x(w):.1f}" y1="{y(lo):.1f}" y2="{y(hi):.1f}" stroke="{color}"/>' for w, _, lo, hi in pts]
    for w in sorted({p[0] for p in points}):
        parts.append(f'<text x="{x(w):.1f}" y="{HEIGHT - PAD + 14}" font-size="10" text-anchor="middle">{w:g}</text>')
    lo, hi = min(v for p in points for v in p[1:]), max(v for p in points for v in p[1:])
    parts.append(f'<text x="2" y="{HEIGHT - PAD}" font-size="10">{lo:.3g}</text><text x="2" y="26" font-size="10">{hi:.3g}</text>')
    parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 4}" font-size="10" text-anchor="middle">slider weight</text></svg>')
    return "".join(parts)


def _png_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(metrics: dict) -> str:
    head = "".join(f"<th>w = {html.escape(w)}</th>" for w in metrics["weights"])
    rows = "".join(f"<tr><td>{role}</td><td>{html.escape(name)}</td><td>{html.escape(metric)}</td>"
                   + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
                   for role, name, metric, cells in summary_rows(metrics))
    return f"<table><tr><th>prompts</th><th>evaluator</th><th>metric</th>{head}</tr>{rows}</table>"


def report_html(metrics: dict, grid: Image.Image) -> str:
    prompts = "".join(f"<tr><td>{entry['role']}</td><td>{html.escape(prompt)}</td></tr>" for prompt, entry in metrics["per_prompt"].items())
    settings = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in settings_rows(metrics))
    legend = " ".join(f'<span style="color:{c}">&#9632; {role}</span>' for role, c in COLORS.items() if role in metrics["summary"])
    plots = "".join(f'<figure>{svg_plot(f"{name}: {metric}", by_role)}</figure>'
                    for (name, metric), by_role in series(metrics).items())
    style = ("body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}"
             "td,th{border:1px solid #ddd;padding:3px 8px;font-size:13px;text-align:left}"
             "figure{display:inline-block;margin:6px}img{max-width:100%;image-rendering:pixelated}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>LOBA slider evaluation</title><style>{style}</style>"
            f"</head><body><h1>LOBA slider evaluation</h1><h2>Settings</h2><table>{settings}</table>"
            f"<h2>Prompts</h2><table>{prompts}</table>"
            f"<h2>Means with 95% bootstrap intervals (over seeds, pooled per prompt role)</h2>{_table(metrics)}"
            f"<h2>Score vs slider weight</h2><p>{legend}</p>{plots}"
            f"<h2>Grid</h2><img alt=\"grid\" src=\"{_png_uri(grid)}\"></body></html>\n")
