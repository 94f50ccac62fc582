"""Captions of toy-world scenes from a small grammar, and a parser that reads them back.

Grammar: "a [size] [color] <shape> [on a <background> background]". Shape is the noun and always
present; size, color and background are each dropped independently, so partial prompts ("a circle",
"a red circle") and neutral ones mean something to a model trained on them. Every word starts with a
consonant, so the article is always "a".
"""

from __future__ import annotations

import itertools

import numpy as np

from .attributes import ATTRIBUTE_VALUES, BACKGROUNDS, COLORS, SHAPES, SIZES, Attributes

DEFAULT_DROP_PROBABILITY = 0.3  # each optional attribute; P(fully specified) = 0.7^3 ~ 0.34
OPTIONAL = ("size", "color", "background")

_WORD_TO_ATTRIBUTE = {value: name for name, values in ATTRIBUTE_VALUES.items() for value in values}
_FILLER_WORDS = {"a", "an", "the", "on", "background"}


def compose(shape: str, size: str | None = None, color: str | None = None, background: str | None = None) -> str:
    """The grammar's sentence for the given attributes (None = not mentioned)."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    words = ["a", *(word for word in (size, color) if word is not None), shape]
    if background is not None:
        words += ["on", "a", background, "background"]
    return " ".join(words)


def caption(attrs: Attributes, rng: np.random.Generator, drop_probability: float = DEFAULT_DROP_PROBABILITY) -> str:
    """A caption of `attrs` with size, color and background each dropped with `drop_probability`."""
    keep = rng.random(len(OPTIONAL)) >= drop_probability  # always three draws: same rng use for any attrs
    mentioned = {name: getattr(attrs, name) for name, kept in zip(OPTIONAL, keep) if kept}
    return compose(attrs.shape, **mentioned)


def all_full_prompts() -> list[str]:
    """Every fully specified prompt (3 shapes x 4 colors x 2 sizes x 2 backgrounds = 48), in a fixed order."""
    combinations = itertools.product(SHAPES, COLORS, SIZES, BACKGROUNDS)
    return [compose(shape, size, color, background) for shape, color, size, background in combinations]


def all_prompts() -> list[str]:
    """Every sentence the grammar can produce, partial ones included (3 x 3 x 5 x 3 = 135)."""
    combinations = itertools.product(SHAPES, (None, *COLORS), (None, *SIZES), (None, *BACKGROUNDS))
    return [compose(shape, size, color, background) for shape, color, size, background in combinations]


def parse_caption(text: str) -> dict[str, str]:
    """The attributes a caption mentions, e.g. {"shape": "circle", "color": "red"}.

    Tolerant of case, punctuation and word order; raises ValueError on an unknown word or on two
    different values for one attribute ("a red blue circle"), so a typo in an eval prompt is loud.
    """
    mentioned: dict[str, str] = {}
    for word in text.lower().replace(",", " ").replace(".", " ").split():
        if word in _FILLER_WORDS:
            continue
        if word not in _WORD_TO_ATTRIBUTE:
            raise ValueError(f"unknown word {word!r} in caption {text!r}")
        name = _WORD_TO_ATTRIBUTE[word]
        if mentioned.get(name, word) != word:
            raise ValueError(f"caption {text!r} gives {name} twice: {mentioned[name]!r} and {word!r}")
        mentioned[name] = word
    return mentioned
