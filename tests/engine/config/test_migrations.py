"""Config versions: run files, widget values and slider metadata are migrated on reading; the version-1 files
written today (tests/fixtures/v1) keep loading to the config they were written with."""

import dataclasses
import json

import pytest
from support.config_versions import RUN_FILE, RUN_FILE_SETTINGS, SLIDER, SLIDER_CHANGES, install_version_2

from loba.config import CONFIG_VERSION, TrainConfig, config_from_slider_metadata, config_from_widgets, migrate
from loba.config.runfile import load_run_file
from loba.config.train_config import flatten_sections
from loba.errors import ConfigError
from loba.sliders.kohya import SliderFile, load_slider

EXPECTED_RUN = TrainConfig().replace(**RUN_FILE_SETTINGS)
EXPECTED_SLIDER = EXPECTED_RUN.replace(**SLIDER_CHANGES)


def slider_with_config(data: dict) -> SliderFile:
    return SliderFile({}, {**load_slider(SLIDER).metadata, "loba_config": json.dumps(data)})


# -- the version-1 files of today ------------------------------------------------------------------------------
def test_v1_run_file_loads_to_its_settings():
    run = load_run_file(RUN_FILE)
    assert run.model == "runwayml/stable-diffusion-v1-5" and run.model_dtype == "fp16"
    assert run.config == EXPECTED_RUN and run.config.version == CONFIG_VERSION
    assert len(run.prompts.pairs()) == 3


def test_v1_slider_metadata_loads_to_the_config_it_was_saved_with():
    slider = load_slider(SLIDER)
    assert SLIDER.stat().st_size < 200_000
    config = slider.training_config()
    assert config == EXPECTED_SLIDER
    # Exact on every stored option while CONFIG_VERSION is 1; options added since (with defaults that reproduce the
    # old behaviour, so no version bump) read as their defaults.
    stored, current = (flatten_sections(json.loads(text)) for text in (slider.metadata["loba_config"], config.to_json()))
    defaults = flatten_sections(json.loads(TrainConfig().to_json()))  # JSON form, as current: tuples read as lists
    assert {key: current[key] for key in stored} == stored
    assert all(current[key] == defaults[key] for key in set(current) - set(stored))


def test_a_lora_without_loba_metadata_has_no_config():
    assert config_from_slider_metadata({"ss_network_dim": "4"}) is None


# -- the machinery: a test-only version 2 whose migration renames rank -> network_dim --------------------------
def test_migrate_sets_the_current_version_on_flat_and_nested_dicts(monkeypatch):
    calls = install_version_2(monkeypatch)
    assert migrate({"rank": 8}) == {"network_dim": 8, "version": 2}
    assert migrate({"version": 1, "network": {"rank": 8}, "seed": 1}) == {"network_dim": 8, "seed": 1, "version": 2}
    assert migrate({"version": 2, "rank": 8}) == {"version": 2, "rank": 8}  # already current: untouched
    assert len(calls) == 2


def test_run_file_path_migrates(monkeypatch, tmp_path):
    old = tmp_path / "old.toml"
    old.write_text(RUN_FILE.read_text().replace("network_dim = 4", "rank = 6"))
    with pytest.raises(ConfigError, match="network.rank"):
        load_run_file(old)  # version 1 knows no `rank`: only the migration makes it loadable
    calls = install_version_2(monkeypatch)
    run = load_run_file(old, overrides={"max_train_steps": 7})
    assert run.config.network.network_dim == 6 and run.config.version == 2 and run.config.max_train_steps == 7
    assert dataclasses.replace(load_run_file(RUN_FILE).config, version=1) == EXPECTED_RUN
    assert len(calls) == 2


def test_widget_path_migrates(monkeypatch):
    with pytest.raises(ConfigError, match="rank"):
        config_from_widgets({"rank": 6})
    calls = install_version_2(monkeypatch)
    config = config_from_widgets({"rank": 6, "max_train_steps": 3})
    assert (config.network.network_dim, config.max_train_steps, config.version) == (6, 3, 2)
    assert len(calls) == 1


def test_slider_metadata_path_migrates(monkeypatch):
    data = json.loads(load_slider(SLIDER).metadata["loba_config"])
    data["network"]["rank"] = data["network"].pop("network_dim")
    with pytest.raises(ConfigError, match="network.rank"):
        slider_with_config(data).training_config()
    calls = install_version_2(monkeypatch)
    config = slider_with_config(data).training_config()
    assert config.version == 2 and dataclasses.replace(config, version=1) == EXPECTED_SLIDER
    assert dataclasses.replace(load_slider(SLIDER).training_config(), version=1) == EXPECTED_SLIDER
    assert len(calls) == 2


# -- versions LOBA cannot read -----------------------------------------------------------------------------------
@pytest.mark.parametrize("version, message", [(CONFIG_VERSION + 1, "newer than this LOBA"), (0, "must be >= 1"),
                                              ("two", "expected int")])
def test_unreadable_versions_are_named_on_every_path(tmp_path, version, message):
    run = tmp_path / "run.toml"
    run.write_text(f"version = {json.dumps(version)}\n" + RUN_FILE.read_text())
    data = {**json.loads(load_slider(SLIDER).metadata["loba_config"]), "version": version}
    for read in (lambda: load_run_file(run), lambda: slider_with_config(data).training_config(),
                 lambda: config_from_widgets({"version": version})):
        with pytest.raises(ConfigError, match=message) as info:
            read()
        assert info.value.field == "version"


def test_a_missing_migration_step_is_an_error(monkeypatch):
    from loba.config import train_config

    monkeypatch.setattr(train_config, "CONFIG_VERSION", 3)
    with pytest.raises(ConfigError, match="no migration from config version 1 to 2"):
        migrate({})


def test_a_checkpoint_written_by_an_older_version_still_resumes(tmp_path, monkeypatch):
    from loba.config import TrainConfig
    from loba.models.sources import ModelSource
    from loba.prompts import PromptPair, PromptSet
    from loba.train.run import RunRequest, run_training

    prompts = PromptSet((PromptPair("a red circle", "a red circle", "a circle", "a circle", resolutions=((64, 64),)),), ())
    config = TrainConfig().replace(max_train_steps=2, save_every_n_steps=1, max_denoising_steps=3, network_dim=1)
    run_training(RunRequest(prompts, config, model=ModelSource("toyworld"), out_dir=tmp_path))
    install_version_2(monkeypatch)  # the checkpoints above now hold a version-1 config
    resumed = run_training(RunRequest(prompts, TrainConfig().replace(**{**_flat(config), "max_train_steps": 3, "version": 2}),
                                      model=ModelSource("toyworld"), out_dir=tmp_path, resume="auto"))
    assert resumed.steps_done == 3


def _flat(config) -> dict:
    from loba.config.train_config import flatten_sections

    values = flatten_sections(config.to_dict())
    values.pop("version")
    return values
