"""Render styles of the entangled world: read back exactly, drawn uniformly, invisible to the shipped world."""

import numpy as np
import pytest

from loba.toyworld.entangled import NEW_WORDS, new_word_rows
from loba.toyworld.model import clip_tokenizer
from loba.toyworld.reader import read_batch
from loba.toyworld.render import render, render_batch, render_styled_batch, sample_attributes
from loba.toyworld.style import Style, inner_scale, random_style
from loba.toyworld.style_reader import read_styled_batch


@pytest.fixture(scope="module")
def styled():
    return render_styled_batch(600, seed=9)


def test_the_styled_reader_reads_every_attribute_exactly(styled):
    images, attributes, styles = styled
    for read, attrs, style in zip(read_styled_batch(images), attributes, styles):
        assert read.categorical() == {**attrs.categorical(), **style.categorical()}


def test_styles_are_uniform_and_independent(styled):
    _, attributes, styles = styled
    outlined = np.array([s.linework == "outlined" for s in styles])
    pastel = np.array([s.palette == "pastel" for s in styles])
    assert abs(outlined.mean() - 0.5) < 0.07 and abs(pastel.mean() - 0.5) < 0.07
    assert abs((outlined & pastel).mean() - 0.25) < 0.06
    red = np.array([a.color == "red" for a in attributes])
    assert abs(outlined[red].mean() - 0.5) < 0.12


def test_fixing_a_style_keeps_the_scene(styled):
    images, attributes, styles = styled
    outlined, attrs2, styles2 = render_styled_batch(20, seed=9, linework="outlined")
    assert attrs2 == attributes[:20] and all(s.linework == "outlined" for s in styles2)
    assert [s.palette for s in styles2] == [s.palette for s in styles[:20]]


def test_the_shipped_world_renders_and_reads_as_before():
    images, attributes = render_batch(50, seed=4)
    rng = np.random.default_rng(4)
    again = []
    for _ in range(50):
        attrs = sample_attributes(rng)
        again.append(render(attrs, rng, None))
    assert np.array_equal(np.stack(again), images)
    # A filled, vivid Style draws the plain scene: the styled world contains the shipped one.
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert np.array_equal(render(attributes[0], rng_a), render(attributes[0], rng_b, Style("filled", "vivid")))
    assert [r.categorical() for r in read_batch(images)] == [a.categorical() for a in attributes]
    plain = [r.base.categorical() for r in read_styled_batch(images)]
    assert plain == [a.categorical() for a in attributes]


def test_outline_hole_and_validation():
    assert 0 < inner_scale("triangle", 18.0) < 18.0
    with pytest.raises(ValueError):
        Style("dotted", "vivid")
    with pytest.raises(TypeError):
        random_style(np.random.default_rng(0), texture="rough")


def test_the_clip_vocabulary_holds_the_new_words(tmp_path):
    tokenizer = clip_tokenizer(tmp_path)
    vocabulary = tokenizer.get_vocab()
    for word in NEW_WORDS:
        ids = tokenizer(word).input_ids[1:-1]
        assert tokenizer.decode(ids).strip() == word
        assert tokenizer.unk_token_id not in ids  # CLIP maps an unknown piece to <|endoftext|>
        assert all(0 <= i < len(vocabulary) for i in ids)
    old = {i for w in "a large small red green blue yellow circle square triangle on dark light background".split()
           for i in tokenizer(w).input_ids[1:-1]}
    rows = new_word_rows(tokenizer)
    assert rows and not set(rows) & old  # training the new rows leaves every shipped word's embedding alone
