"""Does a slider's every layer have the shape of the MODEL layer it patches? ComfyUI's LoRA code would log a
shape mismatch and sample on (or fail at patch time); a wrong-shaped file is refused on the node instead."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

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
        down, up = tensors[f"{stem}.{DOWN}"], tensors[f"{stem}.{UP}"]
        if up.shape[0] != weight.shape[0] or down[0].numel() != weight[0].numel():
            raise fail(node, field, f"layer '{stem}' is {up.shape[0]}x{down[0].numel()} in the slider but "
                                    f"{tuple(weight.shape)} in this MODEL: the slider was made for another model")
