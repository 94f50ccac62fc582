"""Toy-world caption grammar: coverage, dropping, full prompts, parse round trip."""

from __future__ import annotations

import numpy as np
import pytest

from loba.toyworld.attributes import Attributes
from loba.toyworld.captions import OPTIONAL, all_full_prompts, all_prompts, caption, compose, parse_caption

SCENE = Attributes("triangle", "blue", "large", "dark", 32.0, (32.0, 36.0))


def test_grammar_examples():
    assert compose("circle") == "a circle"
    assert compose("circle", color="red") == "a red circle"
    assert compose("triangle", "large", "blue", "dark") == "a large blue triangle on a dark background"
    assert compose(SCENE.shape, SCENE.size, SCENE.color, SCENE.background) == "a large blue triangle on a dark background"
    with pytest.raises(ValueError):
        compose("red")


def test_drop_probability_extremes_and_determinism():
    assert caption(SCENE, np.random.default_rng(0), drop_probability=0.0) == "a large blue triangle on a dark background"
    assert caption(SCENE, np.random.default_rng(0), drop_probability=1.0) == "a triangle"
    first = [caption(SCENE, np.random.default_rng(5)) for _ in range(3)]
    assert len(set(first)) == 1


def test_every_drop_pattern_occurs():
    rng = np.random.default_rng(1)
    patterns = {tuple(name in parse_caption(caption(SCENE, rng)) for name in OPTIONAL) for _ in range(400)}
    assert len(patterns) == 2 ** len(OPTIONAL)


def test_all_full_prompts_are_48_unique_and_fully_specified():
    prompts = all_full_prompts()
    assert len(prompts) == 48 and len(set(prompts)) == 48
    assert all(len(parse_caption(prompt)) == 4 for prompt in prompts)


def test_parse_round_trip_over_the_whole_grammar():
    prompts = all_prompts()
    assert len(set(prompts)) == len(prompts) == 3 * 5 * 3 * 3
    for prompt in prompts:
        assert compose(**parse_caption(prompt)) == prompt


def test_parse_is_tolerant_but_loud_on_nonsense():
    assert parse_caption("A Red circle.") == {"color": "red", "shape": "circle"}
    assert parse_caption("a small square on a light background") == {"size": "small", "shape": "square", "background": "light"}
    with pytest.raises(ValueError):
        parse_caption("a purple circle")
    with pytest.raises(ValueError):
        parse_caption("a red blue circle")
