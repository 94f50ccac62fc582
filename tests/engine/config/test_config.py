"""Training config: flat sd-scripts keys or nested tables, unknown keys and bad types named."""

import dataclasses

import pytest

from loba.config import SECTIONS, TrainConfig, config_from_dict, field_help
from loba.errors import ConfigError


def test_flat_sd_scripts_keys_and_nested_tables_agree():
    flat = config_from_dict({"network_dim": 8, "learning_rate": 2e-4, "max_denoising_steps": 30, "max_train_steps": 100})
    nested = config_from_dict({"network": {"network_dim": 8}, "optimizer": {"learning_rate": 2e-4},
                               "sampling": {"max_denoising_steps": 30}, "max_train_steps": 100})
    assert flat == nested
    assert flat.network.network_dim == 8 and flat.sampling.max_denoising_steps == 30


def test_round_trip_through_dict():
    config = TrainConfig().replace(network_dim=16, rank_pattern={"attn2": 8}, include=["proj_in"])
    assert config_from_dict(config.to_dict()) == config


@pytest.mark.parametrize("data, field", [
    ({"network_dimm": 4}, "network_dimm"),
    ({"network": {"rank": 4}}, "network.rank"),
    ({"network_dim": "four"}, "network.network_dim"),
    ({"network_dim": 0}, "network_dim"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"min_timestep": 900, "max_timestep": 100}, "min_timestep"),
    ({"preserve_from_timestep": 0}, "preserve_from_timestep"),
    ({"save_precision": "fp8"}, "save_precision"),
    ({"gradient_checkpointing": "yes"}, "gradient_checkpointing"),
])
def test_bad_options_name_the_field(data, field):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert info.value.field == field


def test_every_field_has_help_for_tooltips():
    for cls in [TrainConfig, *SECTIONS.values()]:
        helps = field_help(cls)
        assert all(helps[f.name] for f in dataclasses.fields(cls)), cls.__name__


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().seed = 3
