"""Export the toy model as a diffusers StableDiffusionPipeline folder (loads offline with from_pretrained)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LobaError
from . import model


def export_diffusers(folder: str | os.PathLike, weights: str | os.PathLike | None = None) -> Path:
    """Write `weights` (None = the embedded default file) as a StableDiffusionPipeline folder; returns it.

    The folder holds unet, text_encoder, tokenizer (the real CLIP vocabulary), vae (config scaling_factor =
    the file's), scheduler = DDIM with SD's schedule, no safety checker. Weights are the file's fp16 values
    stored as float32, so a plain from_pretrained (fp32 by default) gives exactly the toy model."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from .files import load_toy_components, read_toy_info

    target = Path(folder).expanduser()
    _check_target(target)
    components = load_toy_components(weights)
    scheduler = DDIMScheduler(**read_toy_info(weights)["configs"]["scheduler"])
    pipe = StableDiffusionPipeline(vae=components.vae, text_encoder=components.text_encoder, tokenizer=components.tokenizer,
                                   unet=components.unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(str(target), safe_serialization=True)
    # transformers 5 saves tokenizer.json only; the classic vocab.json + merges.txt serve older loaders too.
    model.write_tokenizer_files(target / "tokenizer")
    return target


def _check_target(target: Path) -> None:
    # Overwriting an earlier export is fine; filling some other non-empty folder with pipeline files is not.
    if target.exists() and not target.is_dir():
        raise LobaError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / "model_index.json").is_file():
        raise LobaError(f"{target} is a non-empty folder that is not a diffusers pipeline; choose an empty or new folder")
