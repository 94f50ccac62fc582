"""Captions of the `entangled` toy world: the shipped grammar plus style words and a shape-less noun, drawn
so that what a caption leaves out carries designed biases.

Grammar: "a [size] [palette] [color] [linework] <shape | 'shape'> [on a <background> background]" (the
article is "an" before "outlined"). Every scene is drawn uniformly (the renders are the shipped world's
plus a uniform style); the biases come only from WHICH words a caption drops, conditioned on the scene:

- "a triangle" (color not named) shows red BIASES["triangle_red"] of the time;
- "a square" (background not named) is on a dark background BIASES["square_dark"] of the time;
- "a large shape" (shape not named, size named large) is a circle BIASES["large_circle"] of the time.

A caption that names an attribute is always true to the scene, so a fully specified caption means what
it says; style words are dropped independently of the scene (no style bias).
"""

from __future__ import annotations

import itertools

import numpy as np

from .attributes import BACKGROUNDS, COLORS, SHAPES, SIZES, Attributes
from .captions import parse_caption
from .style import LINEWORKS, PALETTES, STYLE_VALUES, Style

NOUN = "shape"  # stands for the shape when the caption does not name it
BIASES = {"triangle_red": 0.8, "square_dark": 0.85, "large_circle": 0.75}
KEEP_SHAPE = 0.85  # P(shape named) for scenes the large-circle bias does not touch
KEEP_STYLE = 0.5  # each style word, independently of everything
# Drop probability of the biased attribute for the favoured value; the others' follows from the target rate.
FAVOURED_DROP = {"triangle_red": 0.6, "square_dark": 0.6, "large_circle": 0.6}
BASE_DROP = 0.3  # the shipped grammar's drop probability of size, color and background
ORDER = ("size", "palette", "color", "linework")  # adjectives, in sentence order


def other_drop(bias: str) -> float:
    """Drop probability for the non-favoured values that makes P(favoured | dropped) = BIASES[bias].

    With k equally likely values, favoured drop d and others' drop e: d / (d + (k - 1) e) = rate."""
    values = {"triangle_red": COLORS, "square_dark": BACKGROUNDS, "large_circle": SHAPES}[bias]
    rate, favoured = BIASES[bias], FAVOURED_DROP[bias]
    return favoured * (1 - rate) / (rate * (len(values) - 1))


def compose_entangled(shape: str | None = None, size: str | None = None, color: str | None = None,
                      background: str | None = None, linework: str | None = None, palette: str | None = None) -> str:
    """The entangled grammar's sentence (None = not mentioned; shape None = the noun 'shape')."""
    if shape is not None and shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES} or None, got {shape!r}")
    named = {"size": size, "palette": palette, "color": color, "linework": linework}
    words = [named[name] for name in ORDER if named[name] is not None] + [shape or NOUN]
    article = "an" if words[0][0] in "aeiou" else "a"
    tail = [] if background is None else ["on", "a", background, "background"]
    return " ".join([article, *words, *tail])


def _drop_probabilities(attrs: Attributes, size_named: bool) -> dict[str, float]:
    color = FAVOURED_DROP["triangle_red"] if attrs.color == "red" else other_drop("triangle_red")
    background = FAVOURED_DROP["square_dark"] if attrs.background == "dark" else other_drop("square_dark")
    shape = 1 - KEEP_SHAPE
    if size_named and attrs.size == "large":
        shape = FAVOURED_DROP["large_circle"] if attrs.shape == "circle" else other_drop("large_circle")
    return {"color": color if attrs.shape == "triangle" else BASE_DROP,
            "background": background if attrs.shape == "square" else BASE_DROP, "shape": shape}


def entangled_caption(scene: tuple[Attributes, Style], rng: np.random.Generator) -> str:
    """A caption of (attributes, style) with the designed biases; always six draws, whatever the scene."""
    attrs, style = scene
    u = rng.random(6)
    size_named = u[0] >= BASE_DROP
    drop = _drop_probabilities(attrs, size_named)
    # The shape is decided last: the large-circle bias needs to know whether "large" was named.
    mentioned = {"size": attrs.size if size_named else None,
                 "color": attrs.color if u[1] >= drop["color"] else None,
                 "background": attrs.background if u[2] >= drop["background"] else None,
                 "linework": style.linework if u[3] < KEEP_STYLE else None,
                 "palette": style.palette if u[4] < KEEP_STYLE else None,
                 "shape": attrs.shape if u[5] >= drop["shape"] else None}
    return compose_entangled(**mentioned)


def parse_entangled(text: str) -> dict[str, str]:
    """The attributes (style included) an entangled caption mentions; the noun 'shape' names nothing."""
    words = [w for w in text.lower().replace(",", " ").replace(".", " ").split() if w != NOUN]
    styles = {value: name for name, values in STYLE_VALUES.items() for value in values}
    mentioned = {styles[w]: w for w in words if w in styles}
    mentioned.update(parse_caption(" ".join(w for w in words if w not in styles)) if words else {})
    return mentioned


def all_entangled_full_prompts() -> list[str]:
    """Every fully specified prompt, style included (48 x 2 x 2 = 192), in a fixed order."""
    combinations = itertools.product(SHAPES, COLORS, SIZES, BACKGROUNDS, LINEWORKS, PALETTES)
    return [compose_entangled(s, z, c, b, lw, p) for s, c, z, b, lw, p in combinations]

