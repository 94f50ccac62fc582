"""NaN and infinity are refused when the config is made, naming the field: in bounded fields (even with only a
minimum), in the {regex: value} pattern tables and in optimizer_args; and before any model work."""

import pytest

from loba.config.train_config import config_from_dict
from loba.errors import ConfigError

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("values, field, text", [
    ({"leco_denoise_guidance_scale": NAN}, "leco_denoise_guidance_scale", "must be >= 0"),
    ({"leco_denoise_guidance_scale": INF}, "leco_denoise_guidance_scale", "must be a finite number"),
    ({"network_alpha": INF}, "network_alpha", "must be a finite number"),
    ({"learning_rate": INF}, "learning_rate", "must be a finite number"),
    ({"max_grad_norm": NAN}, "max_grad_norm", "must be >= 0"),
    ({"max_train_steps": INF}, "max_train_steps", "expected int, got inf"),
    ({"lr_pattern": {"up_blocks": NAN}}, "lr_pattern", "value nan must be a finite number >= 0"),
    ({"lr_pattern": {"up_blocks": -1}}, "lr_pattern", "must be a finite number >= 0"),
    ({"lr_pattern": {"up_blocks": "fast"}}, "lr_pattern", "must be a finite number"),
    ({"alpha_pattern": {".*": INF}}, "alpha_pattern", "must be a finite number"),
    ({"rank_pattern": {".*": 2.5}}, "rank_pattern", "must be a whole number >= 1"),
    ({"rank_pattern": {"(": 4}}, "rank_pattern", "is not a valid regular expression"),
    ({"include": ["attn("]}, "include", "is not a valid regular expression"),
    ({"exclude": "[a"}, "exclude", "is not a valid regular expression"),
    ({"optimizer_args": {"betas": [0.9, NAN]}}, "optimizer_args", "betas[1] is nan"),
    ({"optimizer_args": {"eps": INF}}, "optimizer_args", "eps is inf"),
])
def test_non_finite_values_are_refused_naming_the_field(values, field, text):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(values)
    assert caught.value.field == field and text in str(caught.value), str(caught.value)


def test_finite_pattern_tables_still_work():
    config = config_from_dict({"rank_pattern": {"up_blocks": 8.0}, "lr_pattern": {".*": 0.5}, "alpha_pattern": {".*": 0}})
    assert config.network.lr_pattern == {".*": 0.5}
