"""Training configuration: the frozen dataclass config, its bounds, versions and migrations, run files, TOML reading."""

from .migrations import MIGRATIONS, config_from_slider_metadata, config_from_stored, config_from_widgets, migrate
from .train_config import (
    CONFIG_VERSION,
    SECTIONS,
    LossConfig,
    NetworkConfig,
    NoiseConfig,
    OptimizerConfig,
    SamplingConfig,
    TrainConfig,
    config_from_dict,
    field_help,
)

__all__ = ["CONFIG_VERSION", "MIGRATIONS", "SECTIONS", "LossConfig", "NetworkConfig", "NoiseConfig", "OptimizerConfig",
           "SamplingConfig", "TrainConfig", "config_from_dict", "config_from_slider_metadata", "config_from_stored",
           "config_from_widgets", "field_help", "migrate"]
