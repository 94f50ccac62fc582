"""The one evaluation entry point: build the evaluators (every weight file checked before sampling), render each
prompt x weight x seed through the host's render function, score, and write metrics.json, grid.png, report.html.

render(prompt, weight, seed) -> uint8 [H, W, 3], or a Rendered with the sampler's final latent too, is the host's:
the diffusers backend with LOBA's DDIM headless, ComfyUI's own sampler in the node. Same seed at every weight, so
every figure is paired with its w = 0 twin. A renderer that gives latents says so (`gives_latents = True`), so a
spec asking for the latent evaluator is refused before the first sample where the host has none.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from ..errors import ConfigError
from .metrics import build_metrics, score_all, weight_key
from .registry import EVALUATORS, Evaluator
from .spec import EvalRunSpec


@dataclass(frozen=True)
class Rendered:
    image: np.ndarray  # uint8 [H, W, 3]
    latent: np.ndarray  # float32 [C, h, w]: the sampler's final latent, before the VAE


Render = Callable[[str, float, int], "np.ndarray | Rendered"]
Progress = Callable[[int, int, Optional[np.ndarray]], None]  # (done, total, last image)


@dataclass(frozen=True)
class EvalResult:
    metrics: dict
    grid: Image.Image
    html: str

    def report_image(self) -> Image.Image:
        from .report_image import report_image

        return report_image(self.metrics)


def build_evaluators(spec: EvalRunSpec) -> dict[str, Evaluator]:
    """Every evaluator loaded (packages, weight files) before the first sample."""
    return {name: EVALUATORS.get(name)(settings) for name, settings in spec.evaluators.items()}


def check_latents(evaluators: Mapping[str, Evaluator], render: Render) -> None:
    for name, evaluator in evaluators.items():
        if evaluator.reads == "latents" and not getattr(render, "gives_latents", False):
            raise ConfigError(f"evaluators.{name}", "needs the sampler's final latents, which this host's renderer does not "
                                                    "give; drop it from the spec (pixel drift is always available)")


def render_all(spec: EvalRunSpec, render: Render, progress: Optional[Progress] = None):
    """({(prompt index, weight): uint8 [seeds, H, W, 3]}, the same of final latents [seeds, C, h, w], or None when the
    renderer gives no latents)."""
    images, latents, done = {}, {}, 0
    for index, prompt in enumerate(spec.prompts):
        for weight in spec.weights:
            batch, batch_latents = [], []
            for seed in spec.seeds:
                out = render(prompt, weight, seed)
                batch.append(np.asarray(out.image if isinstance(out, Rendered) else out, dtype=np.uint8))
                batch_latents.append(np.asarray(out.latent, np.float32) if isinstance(out, Rendered) else None)
                done += 1
                if progress is not None:
                    progress(done, spec.samples, batch[-1])
            images[(index, weight)] = np.stack(batch)
            if all(latent is not None for latent in batch_latents):
                latents[(index, weight)] = np.stack(batch_latents)
    return images, (latents if len(latents) == len(images) else None)


def make_grid(spec: EvalRunSpec, images: Mapping[tuple[int, float], np.ndarray]) -> Image.Image:
    from ..images import labelled_grid

    shown = spec.seeds[: spec.grid_seeds]
    rows, labels = [], []
    for index, (prompt, role) in enumerate(zip(spec.prompts, spec.roles)):
        for s, seed in enumerate(shown):
            rows.append([Image.fromarray(images[(index, w)][s]) for w in spec.weights])
            labels.append(f"[{role}] {prompt} (seed {seed})")
    return labelled_grid(rows, labels, [f"w = {weight_key(w)}" for w in spec.weights])


def evaluate_slider(spec: EvalRunSpec, render: Render, info: Mapping[str, Any], *, out_dir: str | os.PathLike | None = None,
                    progress: Optional[Progress] = None, evaluators: Optional[dict] = None) -> EvalResult:
    """Render, score, report; info (model, slider, host, sampling) goes into metrics.json and the report."""
    from .report_html import report_html

    evaluators = build_evaluators(spec) if evaluators is None else evaluators
    check_latents(evaluators, render)
    images, latents = render_all(spec, render, progress)
    metrics = {"spec": spec.as_json(), **dict(info), **build_metrics(spec, score_all(spec, evaluators, images, latents))}
    grid = make_grid(spec, images)
    result = EvalResult(metrics, grid, report_html(metrics, grid))
    if out_dir is not None:
        write_outputs(result, out_dir)
    return result


def write_outputs(result: EvalResult, out_dir: str | os.PathLike) -> None:
    from ..sliders.atomic import atomic_write_bytes, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    result.grid.save(png, format="PNG")
    atomic_write_bytes(out / "grid.png", png.getvalue())
    atomic_write_text(out / "report.html", result.html)
    atomic_write_text(out / "metrics.json", json.dumps(result.metrics, indent=2) + "\n")
