"""A toy-world weight file that stores only what differs from another one (its base): the entangled world
shares the shipped world's text encoder and VAE encoder, so shipping both stays small.

The file is an ordinary toy-world file (same format, same "loba_toyworld" metadata) whose metadata holds
"base": {"file": <name beside this file>, "rows": {key: [row ids]}}. A tensor missing from the file is the
base's; a tensor listed under "rows" is the base's with those rows replaced by the file's `<key>.rows`.
files.read_toy_state merges, so every loader (diffusers, ComfyUI, export) sees one complete SD1 state dict.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .files import MAX_FILE_BYTES, METADATA_KEY, ROWS_SUFFIX, ToyWeightsError, toy_file_info
from .model import ToyComponents

MAX_ROW_FRACTION = 0.01  # a tensor with more changed rows than this is stored whole


def _changed_rows(tensor: torch.Tensor, base: torch.Tensor) -> list[int]:
    return torch.nonzero((tensor != base).reshape(tensor.shape[0], -1).any(1)).flatten().tolist()


def save_shared_checkpoint(path: str | os.PathLike, components: ToyComponents, base_path: str | os.PathLike,
                           metadata: dict | None = None) -> Path:
    """Write `components` as fp16, leaving out every tensor equal to `base_path`'s (the base must lie in the
    same folder as `path` when loaded) and storing only the changed rows of mostly unchanged 2-D tensors."""
    from safetensors.torch import load_file, save

    from ..sliders.atomic import atomic_write_bytes
    from .single_file import single_file_state

    base = load_file(str(base_path))
    state = {k: t.to(torch.float16) for k, t in single_file_state(components.unet, components.vae, components.text_encoder).items()}
    if set(state) != set(base):
        raise ToyWeightsError(f"{base_path} is not the same architecture: keys differ")
    stored, rows = {}, {}
    for key, tensor in state.items():
        if torch.equal(tensor, base[key]):
            continue
        changed = _changed_rows(tensor, base[key]) if tensor.ndim == 2 else []
        if tensor.ndim == 2 and len(changed) <= MAX_ROW_FRACTION * tensor.shape[0]:
            stored[key + ROWS_SUFFIX], rows[key] = tensor[changed].contiguous(), changed
        else:
            stored[key] = tensor.contiguous()
    if not all(torch.isfinite(t).all() for t in stored.values()):
        raise ToyWeightsError("weights outside float16 range (or already non-finite)")
    info = toy_file_info(components.scaling_factor, {**(metadata or {}), "base": {"file": Path(base_path).name, "rows": rows}})
    data = save(stored, metadata={METADATA_KEY: json.dumps(info, sort_keys=True)})
    if len(data) > MAX_FILE_BYTES:
        raise ToyWeightsError(f"toy checkpoint would be {len(data) / 1e6:.1f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} MB budget")
    return atomic_write_bytes(path, data)

