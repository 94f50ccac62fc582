"""Attention regions: a prompt entry's training region taken from the frozen model's own cross-attention for one
word of its target prompt, per sample and per step (RC-LOBA's prompt-only region control).

The map is the softmax attention of every cross-attention layer's queries on the word's tokens, averaged over
heads and layers and scaled to 0..1 per sample (minimum to 0, peak to 1); `threshold` cuts it (0 keeps it soft), `invert` takes the rest
of the image (the shape word inverted is the background), `grow` and `feather` shape it as the Mask node does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .checks import as_flag, as_number, as_text, require, set_field

REGION_KEYS = ("word", "invert", "threshold", "grow", "feather")
MAX_GROW = 16  # latent pixels: beyond that a region is the whole latent of any trained size


@dataclass(frozen=True)
class AttentionRegion:
    word: str
    invert: bool = False
    threshold: float = 0.5  # on the per-sample 0..1 map; 0 = the soft map itself
    grow: int = 0  # latent pixels: > 0 grows, < 0 shrinks
    feather: float = 0.0  # Gaussian sigma in latent pixels
    entry: str = ""  # label for messages

    def __post_init__(self):
        where = self.entry or "region"
        word = as_text(self.word, where, "region.word").strip()
        require(word, where, "region.word", 'is empty: name a word of the target prompt, e.g. word = "circle"')
        set_field(self, "word", word)
        set_field(self, "invert", as_flag(self.invert, where, "region.invert"))
        threshold = as_number(self.threshold, where, "region.threshold")
        require(0.0 <= threshold < 1.0, where, "region.threshold",
                f"must be in [0, 1) (on the map scaled to 0..1; 0 = soft), got {threshold}")
        set_field(self, "threshold", threshold)
        grow = self.grow
        require(isinstance(grow, int) and not isinstance(grow, bool) and abs(grow) <= MAX_GROW, where, "region.grow",
                f"must be a whole number of latent pixels in [-{MAX_GROW}, {MAX_GROW}], got {grow!r}")
        feather = as_number(self.feather, where, "region.feather")
        require(0.0 <= feather <= MAX_GROW, where, "region.feather", f"must be in [0, {MAX_GROW}] latent pixels, got {feather}")
        set_field(self, "feather", feather)

    def check_prompt(self, prompt: str, entry: str) -> None:
        """The word must be a whole word of the prompt whose attention it reads (before any model work)."""
        require(is_whole_word(self.word, prompt), entry, "region.word",
                f"{self.word!r} is not a word of the target prompt {prompt!r}: the region is that word's attention "
                "in the target prompt; name one of its words")

    def to_dict(self) -> dict:
        return {"word": self.word, "invert": self.invert, "threshold": self.threshold, "grow": self.grow,
                "feather": self.feather}


def is_whole_word(word: str, prompt: str) -> bool:
    """`word` stands in `prompt` as a whole word (case-insensitive; a part of a word does not count)."""
    return re.search(rf"(?<![\w]){re.escape(word.lower())}(?![\w])", prompt.lower()) is not None


def region_from(value: Any, entry: str) -> AttentionRegion | None:
    """An entry's `region` value: None, an AttentionRegion, or a table {word, invert, threshold, grow, feather}."""
    if value is None or isinstance(value, AttentionRegion):
        return value
    require(isinstance(value, dict), entry, "region",
            'must be a table, e.g. region = { word = "circle", invert = true }')
    unknown = sorted(set(value) - set(REGION_KEYS))
    require(not unknown, entry, f"region.{unknown[0] if unknown else ''}", f"unknown key; known: {', '.join(REGION_KEYS)}")
    require("word" in value, entry, "region.word", 'is missing: name a word of the target prompt, e.g. word = "circle"')
    return AttentionRegion(**value, entry=entry)
