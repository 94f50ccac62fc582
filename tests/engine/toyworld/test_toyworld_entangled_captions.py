"""The entangled world's caption sampler: designed biases on what captions leave out, explicit words true."""

import numpy as np
import pytest

from loba.toyworld.attributes import COLORS
from loba.toyworld.entangled_captions import (
    BIASES,
    all_entangled_full_prompts,
    compose_entangled,
    entangled_caption,
    parse_entangled,
)
from loba.toyworld.render import sample_attributes
from loba.toyworld.style import random_style

DRAWS = 40_000


@pytest.fixture(scope="module")
def drawn():
    """(scene truth, mentioned) for uniformly drawn scenes, as the training dataset has them."""
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(DRAWS):
        attrs, style = sample_attributes(rng), random_style(rng)
        rows.append(({**attrs.categorical(), **style.categorical()}, parse_entangled(entangled_caption((attrs, style), rng))))
    return rows


def _rate(rows, condition, name, value):
    chosen = [truth[name] == value for truth, mentioned in rows if condition(mentioned)]
    return float(np.mean(chosen)), len(chosen)


def test_designed_bias_rates(drawn):
    red, n1 = _rate(drawn, lambda m: m.get("shape") == "triangle" and "color" not in m, "color", "red")
    dark, n2 = _rate(drawn, lambda m: m.get("shape") == "square" and "background" not in m, "background", "dark")
    circle, n3 = _rate(drawn, lambda m: m.get("size") == "large" and "shape" not in m, "shape", "circle")
    assert min(n1, n2, n3) > 1000
    assert abs(red - BIASES["triangle_red"]) < 0.03, red
    assert abs(dark - BIASES["square_dark"]) < 0.03, dark
    assert abs(circle - BIASES["large_circle"]) < 0.03, circle


def test_unbiased_where_nothing_was_designed(drawn):
    small, _ = _rate(drawn, lambda m: m.get("size") == "small" and "shape" not in m, "shape", "circle")
    assert abs(small - 1 / 3) < 0.03, small
    circle_red, _ = _rate(drawn, lambda m: m.get("shape") == "circle" and "color" not in m, "color", "red")
    assert abs(circle_red - 0.25) < 0.03, circle_red
    for style, value in (("linework", "outlined"), ("palette", "pastel")):
        rate, _ = _rate(drawn, lambda m, style=style: style not in m, style, value)
        assert abs(rate - 0.5) < 0.02, (style, rate)
        named, _ = _rate(drawn, lambda m, style=style: True, style, value)  # style words are dropped at random
        assert abs(named - 0.5) < 0.02


def test_every_named_word_is_true_to_the_scene(drawn):
    assert all(truth[name] == value for truth, mentioned in drawn for name, value in mentioned.items())


def test_fully_specified_captions_are_drawn(drawn):
    full = [m for _, m in drawn if len(m) == 6]
    assert len(full) > 500
    assert {m["color"] for m in full if m["shape"] == "triangle"} == set(COLORS)


def test_grammar_round_trip():
    assert compose_entangled("triangle") == "a triangle"
    assert compose_entangled(None, size="large") == "a large shape"
    assert compose_entangled("circle", linework="outlined") == "an outlined circle"
    assert compose_entangled("square", "small", "red", "dark", "filled", "pastel") == \
        "a small pastel red filled square on a dark background"
    prompts = all_entangled_full_prompts()
    assert len(prompts) == len(set(prompts)) == 192
    for prompt in prompts:
        assert compose_entangled(**parse_entangled(prompt)) == prompt
    assert parse_entangled("a large shape") == {"size": "large"}
    with pytest.raises(ValueError):
        parse_entangled("a shiny circle")
