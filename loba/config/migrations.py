"""Config versions: every config LOBA reads back is brought to the current version here, before it is checked.

Three kinds of config are read back, and all three go through `migrate`: run files (runfile.split_run_table),
node widget values (`config_from_widgets`, called by the Train node and the settings nodes) and the
`loba_config` metadata of slider files (`config_from_slider_metadata`). So a file or workflow saved today keeps
loading after an option is renamed or its meaning changes.

Raising CONFIG_VERSION (train_config.py) to N+1 means adding MIGRATIONS[N], a function from a version-N dict to a
version-N+1 dict. A migration sees the flat form (every option at the top level, as sd-scripts writes them;
[network]-style tables are flattened first) and must leave keys it does not know alone: a run file's table also
holds the model keys and the prompts. Workflows and files without a version are version 1, the format before
versions were stored. Workflows store no version yet, so until the nodes save one, a migration must also leave
widget values that already have the new form alone (a rename does; a change of meaning needs a stored version).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Optional

from ..errors import ConfigError
from . import train_config
from .train_config import TrainConfig, coerce_value, config_from_dict, flatten_sections

FIRST_VERSION = 1  # what a config without a `version` key is

# MIGRATIONS[N]: version-N dict -> version-N+1 dict (flat form). Empty while CONFIG_VERSION is 1.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}

SLIDER_CONFIG_KEY = "loba_config"


def stored_version(data: Mapping[str, Any]) -> int:
    """The `version` of a stored config; FIRST_VERSION when it has none."""
    version = coerce_value(data.get("version", FIRST_VERSION), FIRST_VERSION, "version")
    if version < FIRST_VERSION:
        raise ConfigError("version", f"must be >= {FIRST_VERSION}, e.g. {train_config.CONFIG_VERSION}")
    if version > train_config.CONFIG_VERSION:
        raise ConfigError("version", train_config.newer_version_message(version))
    return version


def migrate(data: Mapping[str, Any]) -> dict[str, Any]:
    """A stored config dict (flat or nested, any version up to the current one) in the current version's form,
    with `version` set to the current version. Keys no migration touches are kept as they are."""
    current = train_config.CONFIG_VERSION  # read at call time: the tests raise it
    version = stored_version(data)
    migrated = dict(data) if version == current else flatten_sections(data)
    for step in range(version, current):
        migration = MIGRATIONS.get(step)
        if migration is None:
            raise ConfigError("version", f"this LOBA has no migration from config version {step} to {step + 1}")
        migrated = dict(migration(dict(migrated)))
    migrated["version"] = current
    return migrated


def config_from_stored(data: Mapping[str, Any], where: str = "config") -> TrainConfig:
    """A TrainConfig from a stored dict of any version (missing options take their defaults)."""
    return config_from_dict(migrate(data), where=where)


def config_from_widgets(values: Mapping[str, Any]) -> TrainConfig:
    """The config of node widget values (named like the config fields), laid over the defaults.

    Pass all the values of one run together (the Train node's and its settings nodes'): they come from one
    workflow, so they share its version and are migrated once.
    """
    return TrainConfig().replace(**migrate(values))


def config_from_slider_metadata(metadata: Mapping[str, str]) -> Optional[TrainConfig]:
    """The TrainConfig a slider was trained with, from its file's metadata; None for a LoRA LOBA did not write."""
    text = metadata.get(SLIDER_CONFIG_KEY)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        raise ConfigError(SLIDER_CONFIG_KEY, "the slider's metadata is not JSON; the file was not written by LOBA") from None
    if not isinstance(data, Mapping):
        raise ConfigError(SLIDER_CONFIG_KEY, f"expected a JSON object, got {type(data).__name__}")
    return config_from_stored(data, where="slider metadata")
