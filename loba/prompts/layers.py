"""Over-layered regions: several regions, each with its own weight, stacked in order into one weight map.

ST-LOBA's style shift moves the lines strongly and the background weakly: `layers = [{ region = { word = "circle" },
weight = 1.0 }, { box = [0, 0, 1, 1], weight = 0.2 }]` reads bottom to top. Layers stack like paint with the
"over" rule: map = weight * m + map * (1 - m) for each layer's 0..1 region m, so where regions overlap the LATER
layer's weight wins (in proportion to its coverage) and the map never leaves [0, 1]. The map then plays the part
of a mask: with mask_outside = "hold" a pixel's target is map * objective + (1 - map) * the frozen model's own
prediction, so a layer of weight 0.3 moves its region 30% of the way.

A layer's attention region may name several words (`word = ["circle", "square", "triangle"]`): each prompt uses the
first of them it contains, so one layer fits a list of content prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Optional

from ..errors import SpecError
from .checks import as_number, check_mask, require, set_field
from .masks import box_mask
from .region import AttentionRegion, is_whole_word, region_from

if TYPE_CHECKING:
    import torch

LAYER_KEYS = ("weight", "region", "box", "mask")
FULL_BOX = (0.0, 0.0, 1.0, 1.0)
MAX_LAYERS = 8


@dataclass(frozen=True)
class RegionLayer:
    """One layer: its weight and exactly one source (an attention region, a box, or a mask image)."""

    weight: float = 1.0
    region: Optional[AttentionRegion] = None
    words: tuple[str, ...] = ()  # the region's word alternatives (the first a prompt contains is used)
    box: Optional[tuple[float, float, float, float]] = None  # [top, left, bottom, right], fractions of the image
    mask: Optional[torch.Tensor] = field(default=None, compare=False)  # [H, W] in 0..1
    name: str = "layer"

    def __post_init__(self):
        weight = as_number(self.weight, self.name, "weight")
        require(0.0 <= weight <= 1.0, self.name, "weight",
                f"must be in [0, 1] (the share of the change this region takes; 1 = all of it), got {weight}")
        set_field(self, "weight", weight)
        sources = [s for s in ("region", "box", "mask") if getattr(self, s) is not None]
        require(len(sources) == 1, self.name, "region",
                "a layer takes exactly one source: region = { word = ... }, box = [top, left, bottom, right] or "
                f"mask = \"file.png\"; this one has {', '.join(sources) or 'none'}")
        if self.box is not None:
            try:
                box_mask(8, 8, self.box)
            except ValueError as error:
                raise SpecError(self.name, "box", str(error)) from None
            set_field(self, "box", tuple(float(v) for v in self.box))
        set_field(self, "mask", check_mask(self.mask, self.name))
        if self.region is not None and not self.words:
            set_field(self, "words", (self.region.word,))

    def word_for(self, prompt: str) -> Optional[str]:
        """The first of the layer's words that is a whole word of `prompt` (None: none is)."""
        return next((word for word in self.words if is_whole_word(word, prompt)), None)

    def for_prompt(self, prompt: str, entry: str) -> RegionLayer:
        """This layer with its attention region's word chosen for `prompt` (other sources unchanged)."""
        if self.region is None:
            return self
        word = self.word_for(prompt)
        require(word is not None, self.name or entry, "region.word",
                f"none of {list(self.words)} is a word of {prompt!r}: the layer's region is that word's attention in "
                "the prompt; add a word the prompt contains")
        return replace(self, region=replace(self.region, word=word), words=(word,))

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"weight": self.weight}
        if self.region is not None:
            region = self.region.to_dict()
            region["word"] = list(self.words) if len(self.words) > 1 else self.words[0]
            data["region"] = region
        elif self.box is not None:
            data["box"] = list(self.box)
        else:
            from .checks import mask_summary

            data["mask"] = mask_summary(self.mask)
        return data


def layer_from(value: Any, entry: str, index: int, mask_reader=None) -> RegionLayer:
    """A RegionLayer from a run-file table {weight, region | box | mask}; `mask_reader(path, field)` reads a mask file."""
    name = f"{entry} layers[{index}]"
    if isinstance(value, RegionLayer):
        return replace(value, name=name)
    require(isinstance(value, dict), name, "layers",
            'must be a table, e.g. { region = { word = "circle" }, weight = 1.0 } or { box = [0, 0, 1, 0.5], weight = 0.3 }')
    unknown = sorted(set(value) - set(LAYER_KEYS))
    require(not unknown, name, unknown[0] if unknown else "", f"unknown key; known: {', '.join(LAYER_KEYS)}")
    region, words = None, ()
    if "region" in value:
        region, words = _region_with_words(value["region"], name)
    mask = None
    if "mask" in value:
        require(mask_reader is not None, name, "mask", "a mask file needs a prompt file folder to be read from")
        mask = mask_reader(value["mask"], f"{name}.mask")
    return RegionLayer(weight=value.get("weight", 1.0), region=region, words=words, box=value.get("box"), mask=mask,
                       name=name)


def _region_with_words(value: Any, name: str) -> tuple[AttentionRegion, tuple[str, ...]]:
    """An attention region table whose `word` may be a list of alternatives: (the region on the first, the words)."""
    raw = value.get("word") if isinstance(value, dict) else None
    if not isinstance(raw, (list, tuple)):
        region = region_from(value, name)  # one word (or a table region_from refuses, naming the field)
        return region, (region.word,)
    require(raw and all(isinstance(w, str) and w.strip() for w in raw), name, "region.word",
            f'must be a word or a list of words, e.g. word = ["circle", "square", "triangle"]; got {raw!r}')
    words = tuple(w.strip() for w in raw)
    return region_from({**value, "word": words[0]}, name), words


def check_layers(layers: Any, entry: str) -> tuple[RegionLayer, ...]:
    """The stacked layers, refused where the stack cannot mean what it says."""
    layers = tuple(layers or ())
    require(len(layers) <= MAX_LAYERS, entry, "layers", f"has {len(layers)} layers; at most {MAX_LAYERS}")
    require(all(isinstance(layer, RegionLayer) for layer in layers), entry, "layers", "expects RegionLayer items")
    if not layers:
        return layers
    require(any(layer.weight > 0 for layer in layers), entry, "layers",
            "every layer has weight 0, so the change would be held everywhere and nothing would train; give a layer "
            "a weight > 0")
    for i, layer in enumerate(layers[1:], start=1):
        require(layer.box != FULL_BOX, entry, f"layers[{i}].box",
                "covers the whole image, so it hides every layer under it; make it the first layer (the base weight)")
    seen: dict = {}
    for i, layer in enumerate(layers):
        key = (layer.words, layer.region.invert if layer.region else None, layer.box) if layer.mask is None else id(layer.mask)
        require(key not in seen, entry, f"layers[{i}]",
                f"has the same region as layers[{seen.get(key)}]; the later one hides it: give one layer per region")
        seen[key] = i
    return layers


def layer_latent_mask(layer: RegionLayer, latent_hw: tuple[int, int]) -> torch.Tensor:
    """[1, 1, h, w] of a box or mask layer at the latent size."""
    from .masks import mask_to_latent

    source = box_mask(latent_hw[0], latent_hw[1], layer.box) if layer.box is not None else layer.mask
    return mask_to_latent(source, latent_hw)


def stack_layers(weights: list[float], masks: list[torch.Tensor]) -> torch.Tensor:
    """The "over" stack of (weight, [b or 1, 1, h, w] mask) bottom to top: a weight map in [0, 1]."""
    stacked = None
    for weight, mask in zip(weights, masks):
        stacked = weight * mask if stacked is None else weight * mask + stacked * (1 - mask)
    return stacked.clamp(0.0, 1.0)
