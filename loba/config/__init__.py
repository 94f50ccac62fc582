"""Training configuration: the frozen dataclass config, run files, and TOML reading."""

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

__all__ = ["CONFIG_VERSION", "SECTIONS", "LossConfig", "NetworkConfig", "NoiseConfig", "OptimizerConfig",
           "SamplingConfig", "TrainConfig", "config_from_dict", "field_help"]
