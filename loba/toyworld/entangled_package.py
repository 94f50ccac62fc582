"""Build, measure and write the entangled world's weight file (what `loba toyworld build --world entangled` runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .entangled import EntangledRecipe, Log, build_entangled


def build_and_package_entangled(work: Path, out: Optional[Path], recipe: EntangledRecipe = EntangledRecipe(),
                                base: Optional[Path] = None, log: Log = print, competence: bool = True,
                                samples: int = 64) -> Optional[Path]:
    """Fine-tune `base` (default: the shipped toy world) in `work`, measure it with the styled reader
    (stored in the metadata), and write `out`: only the differences from the base when the base file lies
    beside `out` (the shipped layout), else a complete file."""
    from .files import load_toy_components, save_toy_checkpoint
    from .shared_file import save_shared_checkpoint
    from .worlds import world_weights

    base = Path(base) if base is not None else world_weights("toyworld")
    components, record = build_entangled(work, load_toy_components(base), recipe, log)
    metadata = {"world": "entangled", "base_world": base.name, **record}
    if competence:
        from .entangled_competence import measure_entangled

        metadata["entangled_competence"] = measure_entangled(components, samples=samples, seed=recipe.seed)
        log(f"entangled competence: {json.dumps(metadata['entangled_competence'])}")
    if out is None:
        return None
    out = Path(out)
    beside = out.parent / base.name
    if beside.is_file() and beside.resolve() != out.resolve():
        written = save_shared_checkpoint(out, components, beside, metadata)
    else:
        written = save_toy_checkpoint(out, components, metadata)
    log(f"wrote {written}")
    return written
