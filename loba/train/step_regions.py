"""Where a step's loss acts: each pair's attention region or its over-layered regions, read from the teacher forward.

Found once per run: the cross-attention layers and each region word's context positions. Per step: one attention
capture per word the pair needs (hooked into the teacher forward the step runs anyway), then the pair's map: its
region, or its layers stacked with the "over" rule (loba.prompts.layers). Box and mask layers are cached at the
latent size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from ..errors import SpecError
from ..prompts import PromptPair
from ..prompts.layers import layer_latent_mask, stack_layers
from .attention_maps import AttentionCapture, cross_attention_layers, region_mask


def _regions(pair: PromptPair) -> list:
    if pair.region is not None:
        return [pair.region]
    return [layer.region for layer in pair.layers if layer.region is not None]


class StepRegions:
    def __init__(self, backend, pairs: Sequence[PromptPair]):
        self.backend = backend
        self.positions: dict[tuple[str, str], list[int]] = {}
        self._masks: dict[tuple, torch.Tensor] = {}
        wanted = [(pair, region) for pair in pairs for region in _regions(pair)]
        self.layers = cross_attention_layers(backend.denoiser()) if wanted else []
        for pair, region in wanted:
            key = (pair.target, region.word)
            if key not in self.positions:
                positions = backend.token_positions(pair.target, region.word)
                if not positions:
                    raise SpecError(pair.name or "prompt pair", "region.word",
                                    f"{region.word!r} is not among the tokens of {pair.target!r} as the text encoder "
                                    "reads it; name a whole word of the prompt")
                self.positions[key] = positions

    def captures(self, pair: PromptPair, prompts: list[str], n: int) -> dict[str, AttentionCapture]:
        """One capture per attention-region word of the pair, on the target prompt's n rows of the teacher batch."""
        regions = _regions(pair)
        if not regions:
            return {}
        first = prompts.index(pair.target) * n  # the teacher batch stacks the prompts' blocks of n rows in order
        return {region.word: AttentionCapture(self.layers, self.positions[(pair.target, region.word)], first, first + n)
                for region in regions}

    def region_map(self, pair: PromptPair, pair_index: int, captures: dict[str, AttentionCapture],
                   latent_hw: tuple[int, int]) -> Optional[torch.Tensor]:
        """[B or 1, 1, h, w]: the pair's attention region, or its layers stacked (None: neither)."""
        if pair.region is not None:
            return region_mask(captures[pair.region.word].maps, latent_hw, pair.region)
        if not pair.layers:
            return None
        masks = [region_mask(captures[layer.region.word].maps, latent_hw, layer.region) if layer.region is not None
                 else self.latent_mask((pair_index, index, *latent_hw), lambda layer=layer: layer_latent_mask(layer, latent_hw))
                 for index, layer in enumerate(pair.layers)]
        return stack_layers([layer.weight for layer in pair.layers], masks)

    def latent_mask(self, key: tuple, make) -> torch.Tensor:
        if key not in self._masks:
            self._masks[key] = make().to(self.backend.device, torch.float32)
        return self._masks[key]
