"""Slider metric definitions on hand-made reads: every formula and its edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from loba.errors import ConfigError
from loba.toyworld import metrics as m
from loba.toyworld.reader import ReadResult


def read(shape="circle", color="red", size="small", background="light", area=0.1) -> ReadResult:
    return ReadResult(shape, color, size, area, background, (32.0, 32.0), True)


GONE = ReadResult(None, None, None, 0.0, "light", None, False)


def reds(count: int, total: int) -> list[ReadResult]:
    return [read(color="red")] * count + [read(color="blue")] * (total - count)


def test_rate_counts_the_value_and_a_vanished_object_shows_nothing():
    assert m.rate(reds(3, 4), "color", "red") == 0.75
    assert m.rate([GONE, read()], "color", "red") == 0.5
    assert m.rate_by_weight({1.0: reds(1, 4), 0.0: reds(4, 4)}, "color", "red") == {0.0: 1.0, 1.0: 0.25}
    with pytest.raises(ValueError):
        m.rate([], "color", "red")


def test_object_rate_tells_erased_from_gone():
    assert m.object_rate_by_weight({0.0: [read(), read()], 1.0: [GONE, read(color="blue")]}) == {0.0: 1.0, 1.0: 0.5}


def test_erase_efficacy():
    assert m.efficacy("erase", {0.0: 0.8, 1.0: 0.2}) == m.Figure(pytest.approx(0.75))
    assert m.efficacy("erase", {0.0: 0.8, 1.0: 0.0}).value == 1.0
    assert m.efficacy("erase", {0.0: 0.5, 1.0: 1.0}).value == -1.0  # made it worse: negative, not clipped


def test_enhance_efficacy():
    assert m.efficacy("enhance", {0.0: 0.25, 1.0: 0.625}).value == pytest.approx(0.5)
    assert m.efficacy("enhance", {0.0: 0.0, 1.0: 1.0}).value == 1.0


@pytest.mark.parametrize("kind, base", [("erase", 0.0), ("enhance", 1.0)])
def test_efficacy_is_undefined_with_a_reason_when_the_base_rate_leaves_nothing_to_do(kind, base):
    figure = m.efficacy(kind, {0.0: base, 1.0: 0.5})
    assert figure.value is None and "w=0" in figure.reason


def test_efficacy_of_a_slider_kind_is_refused():
    with pytest.raises(ValueError, match="erase, enhance"):
        m.efficacy("slider", {0.0: 0.5, 1.0: 0.5})


def test_a_slider_that_does_nothing_has_efficacy_0_preservation_1_drift_0():
    samples = [read(), read(shape="square"), read(color="blue", background="dark"), GONE]
    by_weight = {0.0: samples, 0.5: list(samples), 1.0: list(samples)}
    assert m.efficacy("erase", m.rate_by_weight(by_weight, "color", "red")).value == 0.0
    assert m.preservation_by_weight(by_weight) == {0.0: 1.0, 0.5: 1.0, 1.0: 1.0}
    images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    assert m.drift_by_weight({0.0: images, 1.0: images.copy()}) == {0.0: 0.0, 1.0: 0.0}


def test_average_ranks_share_ties():
    assert m.average_ranks(np.array([10, 20, 20, 5])).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert m.average_ranks(np.array([7, 7, 7])).tolist() == [2.0, 2.0, 2.0]


def test_spearman_perfect_reversed_and_ties():
    assert m.spearman([1, 2, 3, 4], [1, 10, 100, 1000]).value == pytest.approx(1.0)
    assert m.spearman([1, 2, 3, 4], [4, 3, 2, 1]).value == pytest.approx(-1.0)
    # Hand computation: ranks x = [1, 2.5, 2.5, 4], y = [1, 2, 3, 4] -> 4.5 / sqrt(4.5 * 5) (scipy agrees).
    assert m.spearman([1, 2, 2, 3], [1, 2, 3, 4]).value == pytest.approx(4.5 / np.sqrt(22.5))


def test_spearman_of_constant_values_is_undefined():
    figure = m.spearman([1, 2, 3], [0.5, 0.5, 0.5])
    assert figure.value is None and "equal" in figure.reason
    with pytest.raises(ValueError):
        m.spearman([1, 2], [1])


def test_measure_spearman_and_monotonic_over_weights():
    by_weight = {-1.0: [read(area=0.05), read(area=0.07)], 0.0: [read(area=0.10), read(area=0.10)],
                 1.0: [read(area=0.20), read(area=0.08)]}
    means = m.measure_by_weight(by_weight, "size")
    assert means == pytest.approx({-1.0: 0.06, 0.0: 0.10, 1.0: 0.14})
    assert m.monotonic(means)
    # weights [-1, -1, 0, 0, 1, 1] vs areas [.05, .07, .10, .10, .20, .08]: ties in both.
    expected = m.spearman([-1, -1, 0, 0, 1, 1], [0.05, 0.07, 0.10, 0.10, 0.20, 0.08]).value
    assert m.weight_measure_spearman(by_weight, "size").value == pytest.approx(expected)
    assert 0 < expected < 1


def test_monotonic_is_strict_and_ordered_by_weight_not_insertion():
    assert m.monotonic({1.0: 3.0, -1.0: 1.0, 0.0: 2.0})
    assert not m.monotonic({-1.0: 1.0, 0.0: 1.0, 1.0: 2.0})
    assert not m.monotonic({-1.0: 2.0, 0.0: 1.0, 1.0: 3.0})


def test_measures_registry_is_extensible_and_names_the_choices():
    with pytest.raises(ConfigError, match="size"):
        m.MEASURES.get("color")
    assert m.MEASURES.get("size")(read(area=0.3)) == 0.3


def test_preservation_compares_with_the_same_seed_at_weight_0():
    base = [read(), read(shape="square"), read(size="large"), read(background="dark")]
    changed = [read(color="blue"), read(shape="square"), read(size="small"), read(background="dark")]
    by_weight = {0.0: base, 1.0: changed}
    assert m.preservation_by_weight(by_weight) == {0.0: 1.0, 1.0: 0.5}
    assert m.preservation_by_weight(by_weight, ("shape", "background")) == {0.0: 1.0, 1.0: 1.0}
    assert m.preservation_by_weight(by_weight, ("shape", "size"))[1.0] == 0.75
    with pytest.raises(ValueError, match="paired"):
        m.preservation_by_weight({0.0: base, 1.0: changed[:2]})


def test_headline_is_w1_or_the_worse_of_plus_and_minus_1():
    by_weight = {-1.0: 0.7, 0.0: 1.0, 0.5: 0.2, 1.0: 0.9}
    assert m.headline(by_weight, "erase") == 0.9
    assert m.headline(by_weight, "slider") == 0.7


def test_drift_is_the_mean_absolute_pixel_change_on_a_0_to_1_scale():
    base = np.zeros((2, 64, 64, 3), np.uint8)
    half = base.copy()
    half[:, :32] = 255
    quarter = base.copy()
    quarter[0, :32] = 255
    drift = m.drift_by_weight({1.0: half, 0.0: base, 0.5: quarter})
    assert list(drift) == [0.0, 0.5, 1.0]
    assert drift == pytest.approx({0.0: 0.0, 0.5: 0.25, 1.0: 0.5})
