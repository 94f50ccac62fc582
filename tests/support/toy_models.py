"""Untrained toy-world components of the right architecture: tests run before, and without, the trained weights."""

from __future__ import annotations

from pathlib import Path

from loba.toyworld.model import ToyComponents, build_text_encoder, build_unet, build_vae, clip_tokenizer


def random_components(seed: int = 0, tokenizer_folder: Path | None = None) -> ToyComponents:
    """Untrained components of the right architecture (tests run before, and without, the trained weights)."""
    import tempfile

    import torch

    torch.manual_seed(seed)
    folder = Path(tokenizer_folder or tempfile.mkdtemp(prefix="loba-toy-tokenizer-"))
    return ToyComponents(build_unet(), build_text_encoder(), clip_tokenizer(folder), build_vae(), 1.0).eval()
