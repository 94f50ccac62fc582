"""parse_weights (the preview weights of Train Slider, Preview Grid and the CLI): an empty item is a typo, not a gap."""

import pytest

from loba.errors import ConfigError
from loba.images import parse_weights


@pytest.mark.parametrize("text, item", [("1,,2", 2), ("1, 2,", 3), (",1", 1), ("1;;2", 2)])
def test_an_empty_item_is_refused_naming_the_field(text, item):
    with pytest.raises(ConfigError, match=rf"^preview_weights: item {item} of '{text}' is empty"):
        parse_weights(text, "preview_weights")


@pytest.mark.parametrize("text, problem", [("", "is empty"), (" , ", "is empty"), ("1, x", "'x' is not a number"),
                                           ("1, nan", "'nan' is not a finite number")])
def test_other_bad_lists(text, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_weights(text, "preview_weights")


def test_good_lists():
    assert parse_weights("-1, 0; 1.5") == [-1.0, 0.0, 1.5]
