"""Build, measure and write the flow world's weight file (what `loba toyworld build --world flow` runs)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

from .flow_build import FlowRecipe, Log, build_flow


def build_and_package_flow(work: Path, out: Optional[Path], recipe: FlowRecipe = FlowRecipe(), base: Optional[Path] = None,
                           log: Log = print, competence: bool = True, config: Optional[dict] = None) -> Optional[Path]:
    """Train the flow world on `base` (default: the shipped toy world, whose VAE and text encoder it reuses) in
    `work`, measure it with the reader (stored in the metadata: prompt obedience per attribute, as the plain
    world's), and write `out`, which names the base file; the base must lie beside `out` when it is loaded."""
    import torch

    from .files import load_toy_components
    from .flow_files import save_flow_checkpoint
    from .worlds import world_weights

    base = Path(base) if base is not None else world_weights("toyworld")
    components, record = build_flow(work, load_toy_components(base), recipe, log, config)
    metadata = {"world": "flow", **record, "parameters": sum(p.numel() for p in components.transformer.parameters()),
                "guidance_embeds": False, "training": "rectified flow, velocity MSE, timesteps uniform over the sigma table"}
    if competence:
        from .competence import measure_competence

        torch.set_num_threads(recipe.threads)
        figures = measure_competence(components, samples_per_prompt=recipe.competence_samples,
                                     partial_samples=recipe.partial_samples, seed=recipe.seed)
        metadata["competence"] = figures
        log(f"competence: {json.dumps(figures['accuracy'])} competent={figures['competent']}")
    if out is None:
        return None
    written = save_flow_checkpoint(out, components, base.name, metadata)
    log(f"wrote {written}")
    return written


def with_steps(recipe: FlowRecipe, steps: Optional[int]) -> FlowRecipe:
    return replace(recipe, denoiser_steps=steps) if steps else recipe
