"""Does a slider's every layer have the shape of the MODEL layer it patches? ComfyUI's LoRA code would log a
shape mismatch and sample on (or fail at patch time); a wrong-shaped file is refused on the node instead."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from ..loba.sliders.lycoris_keys import update_shape
from ..loba.sliders.validate import DOWN, UP
from .node_errors import fail


def check_fits_model(tensors: Mapping[str, torch.Tensor], stems: Iterable[str], key_map: Mapping[str, object],
                     model, node: str, field: str) -> None:
    """Raise naming the first layer whose up @ down shape differs from the model weight's."""
    weights = model.model.state_dict()
    for stem in sorted(stems):
        key = key_map.get(stem)
        weight = weights.get(key) if isinstance(key, str) else None
        if weight is None:
            continue  # a key ComfyUI maps specially (a slice of a fused weight): its own code checks it
        out, columns = _update_shape(tensors, stem)
        if out != weight.shape[0] or columns != weight[0].numel():
            raise fail(node, field, f"layer '{stem}' is {out}x{columns} in the slider but "
                                    f"{tuple(weight.shape)} in this MODEL: the slider was made for another model")


def _update_shape(tensors: Mapping[str, torch.Tensor], stem: str) -> tuple[int, int]:
    """(out, in * kh * kw) of the update a layer stores: LoRA/DoRA from up and down, LoHa/LoKr from their blocks."""
    if f"{stem}.{DOWN}" in tensors:
        return int(tensors[f"{stem}.{UP}"].shape[0]), int(tensors[f"{stem}.{DOWN}"][0].numel())
    prefix = f"{stem}."
    return update_shape({key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)})
