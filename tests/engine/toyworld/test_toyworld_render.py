"""Toy-world renderer: determinism, attribute fixing, reachability, geometry."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from loba.toyworld.attributes import (
    ATTRIBUTE_VALUES,
    BACKGROUND_GRAY,
    COLOR_RGB,
    IMAGE_SIZE,
    MARGIN,
    SCALE_RANGES,
    Attributes,
    area_of_scale,
)
from loba.toyworld.render import coverage, render, render_batch, sample_attributes


def test_render_batch_is_deterministic_per_seed_and_prefix_stable():
    images, attrs = render_batch(6, seed=11)
    again, attrs_again = render_batch(6, seed=11)
    prefix, _ = render_batch(3, seed=11)
    other, _ = render_batch(6, seed=12)
    assert images.dtype == np.uint8 and images.shape == (6, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert np.array_equal(images, again) and attrs == attrs_again
    assert np.array_equal(prefix, images[:3])
    assert not np.array_equal(images, other)


def test_render_is_deterministic_given_rng_state():
    attrs = sample_attributes(np.random.default_rng(0))
    assert np.array_equal(render(attrs, np.random.default_rng(5)), render(attrs, np.random.default_rng(5)))
    assert not np.array_equal(render(attrs, np.random.default_rng(5)), render(attrs, np.random.default_rng(6)))


def test_every_combination_is_reachable_and_values_are_valid():
    rng = np.random.default_rng(2)
    samples = [sample_attributes(rng) for _ in range(600)]
    seen = {(a.shape, a.color, a.size, a.background) for a in samples}
    assert seen == set(itertools.product(*ATTRIBUTE_VALUES.values()))
    for attrs in samples:
        low, high = SCALE_RANGES[attrs.size]
        assert low <= attrs.scale <= high


@pytest.mark.parametrize("name", ["shape", "color", "size", "background"])
def test_fixing_one_attribute_keeps_the_other_draws(name):
    values = ATTRIBUTE_VALUES[name]
    scenes = [sample_attributes(np.random.default_rng(7), **{name: value}) for value in values]
    assert [getattr(scene, name) for scene in scenes] == list(values)
    for other in set(ATTRIBUTE_VALUES) - {name}:
        assert len({getattr(scene, other) for scene in scenes}) == 1


def test_paired_color_renders_differ_only_on_the_object():
    red = sample_attributes(np.random.default_rng(3), color="red")
    blue = sample_attributes(np.random.default_rng(3), color="blue")
    red_image, blue_image = render(red, np.random.default_rng(4)), render(blue, np.random.default_rng(4))
    outside = coverage(red.shape, red.scale, red.center) == 0
    assert np.array_equal(red_image[outside], blue_image[outside])
    assert not np.array_equal(red_image, blue_image)


def test_fixed_scale_implies_size_and_fixed_center_is_kept():
    attrs = sample_attributes(np.random.default_rng(0), scale=32.0, center=(32.0, 34.0), shape="circle")
    assert attrs.size == "large" and attrs.scale == 32.0 and attrs.center == (32.0, 34.0)
    images, scenes = render_batch(4, seed=1, color="green", background="dark")
    assert {(s.color, s.background) for s in scenes} == {("green", "dark")}


def test_invalid_fixing_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError):
        sample_attributes(rng, hue="red")
    with pytest.raises(ValueError):
        sample_attributes(rng, size="small", scale=33.0)
    with pytest.raises(ValueError):
        sample_attributes(rng, scale=26.0)  # between the classes
    with pytest.raises(ValueError):
        sample_attributes(rng, shape="square", size="large", center=(10.0, 32.0))  # would cross the margin
    with pytest.raises(ValueError):
        Attributes("hexagon", "red", "small", "light", 20.0, (32.0, 32.0))


def test_objects_keep_the_margin_and_equal_area_across_shapes():
    rng = np.random.default_rng(9)
    for shape, size in itertools.product(ATTRIBUTE_VALUES["shape"], ["small", "large"]):
        for scale in SCALE_RANGES[size]:  # both extremes: the tightest fits
            attrs = sample_attributes(rng, shape=shape, scale=scale)
            alpha = coverage(shape, scale, attrs.center)
            inner = alpha[MARGIN:-MARGIN, MARGIN:-MARGIN]
            assert alpha.sum() == pytest.approx(inner.sum())  # nothing in the border band
            assert alpha.sum() == pytest.approx(area_of_scale(scale), rel=0.01)
            assert alpha.max() == 1.0 and 0 < alpha[(alpha > 0) & (alpha < 1)].size  # solid, antialiased


def test_colors_and_backgrounds_are_near_their_references():
    images, scenes = render_batch(40, seed=21)
    for image, attrs in zip(images, scenes):
        low, high = BACKGROUND_GRAY[attrs.background]
        corner = image[:MARGIN, :MARGIN].reshape(-1, 3).astype(float)
        assert low - 8 <= corner.mean() <= high + 8 and np.ptp(corner.mean(0)) < 4  # gray, not tinted
        x, y = (int(v) for v in attrs.center)
        center_pixel = image[y, x].astype(float)
        # Shading and jitter move a color by a few percent, never toward another palette entry.
        distances = {name: np.linalg.norm(center_pixel - rgb) for name, rgb in COLOR_RGB.items()}
        assert min(distances, key=distances.get) == attrs.color and distances[attrs.color] < 40
