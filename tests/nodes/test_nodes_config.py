"""Config fields in the node pack: widget bounds come from the field metadata, and widget values (today's
workflows included) reach the config through the same migration as run files and slider files."""

from __future__ import annotations

import dataclasses
import json

import pytest
from support.comfy import COMFY_MARKS, require_comfyui
from support.config_versions import WORKFLOW, install_version_2
from support.pack import run_node

from devtools.example_workflows.convert import widget_value_names
from loba.config import SECTIONS, TrainConfig

require_comfyui()
pytestmark = COMFY_MARKS

CONFIG_FIELDS = {f.name: f for cls in [TrainConfig, *SECTIONS.values()] for f in dataclasses.fields(cls)
                 if f.name not in SECTIONS or cls is not TrainConfig}


def widget_specs(pack):
    for node_id, cls in sorted(pack.nodes.items()):
        inputs = cls.GET_NODE_INFO_V1()["input"]
        for name, spec in {**inputs.get("required", {}), **inputs.get("optional", {})}.items():
            if name in CONFIG_FIELDS and spec[0] in ("INT", "FLOAT"):
                yield node_id, name, spec[1]


def test_numeric_config_widgets_take_their_bounds_from_the_field_metadata(pack):
    seen = set()
    for node_id, name, options in widget_specs(pack):
        meta = CONFIG_FIELDS[name].metadata
        for key in ("min", "max"):
            if key in meta:
                assert options[key] == meta[key], f"{node_id}.{name}: widget {key} {options[key]} != metadata {meta[key]}"
        seen.add(name)
    # The exclusive minimum of learning_rate keeps 0 as the widget's min (smaller valid rates stay reachable).
    assert {"learning_rate", "network_dim", "huber_delta", "trajectory_cache", "max_timestep"} <= seen


# -- widget values -> config: the path every workflow takes -------------------------------------------------------
NOT_CONFIG_WIDGETS = {"resolution", "preview_every", "preview_weights", "filename_prefix", "resume_file"}


def node_widget_values(pack, node: dict) -> dict:
    """A UI-format node's widgets_values by input name, as the frontend maps them."""
    names = widget_value_names(pack.nodes[node["type"]].GET_NODE_INFO_V1())
    values = dict(zip(names, node["widgets_values"]))
    values.pop(None, None)
    return values


def workflow_config(pack, workflow: dict) -> TrainConfig:
    """The Train node's config of a UI workflow whose only settings node is LOBA Sampling (the erase example)."""
    nodes = {node["type"]: node for node in workflow["nodes"]}
    train_values = node_widget_values(pack, nodes["LOBA_TrainSlider"])
    assert set(train_values) - set(CONFIG_FIELDS) == NOT_CONFIG_WIDGETS
    sampling = run_node(pack.nodes["LOBA_Sampling"], **node_widget_values(pack, nodes["LOBA_Sampling"])).args[0]
    widgets = {name: value for name, value in train_values.items() if name in CONFIG_FIELDS}
    return pack.module.nodes.train_node.merged_config("LOBA Train Slider", widgets, [None, None, None, sampling])


EXPECTED_WORKFLOW = TrainConfig().replace(
    max_train_steps=150, learning_rate=0.002, network_dim=4, network_alpha=4.0, seed=0, max_denoising_steps=25,
    leco_denoise_guidance_scale=5.0, denoise_with_adapter=False, mixed_precision="no", gradient_checkpointing=False,
    save_precision="float", save_every_n_steps=20, trajectory_cache=4, trajectory_refresh_every=48, min_timestep=0,
    max_timestep=1000, preserve_from_timestep=1000)


def test_v1_workflow_widgets_reach_the_config_they_were_saved_with(pack):
    # to_dict: the pack imports its own copy of the engine, whose TrainConfig is another class.
    assert workflow_config(pack, json.loads(WORKFLOW.read_text())).to_dict() == EXPECTED_WORKFLOW.to_dict()


def test_v1_workflow_widgets_are_migrated(pack, monkeypatch):
    calls = install_version_2(monkeypatch, pack.module.loba.config)
    config = workflow_config(pack, json.loads(WORKFLOW.read_text()))
    assert config.version == 2 and dataclasses.replace(config, version=1).to_dict() == EXPECTED_WORKFLOW.to_dict()
    assert len(calls) == 2  # the Sampling node checks its part; the Train node migrates all values once


def test_train_and_settings_nodes_migrate_widget_values(pack, monkeypatch):
    nodes = pack.module.nodes
    targeting = {"preset": "cross_attention", "rank": 3, "network_alpha": 1.0}
    with pytest.raises(ValueError, match="LOBA Targeting.*rank"):
        nodes.config_nodes.checked("LOBA Targeting", targeting)
    install_version_2(monkeypatch, pack.module.loba.config)
    part = nodes.config_nodes.checked("LOBA Targeting", targeting)
    config = nodes.train_node.merged_config("LOBA Train Slider", {"rank": 5, "max_train_steps": 3}, [part])
    assert (config.network.network_dim, config.network.preset, config.version) == (3, "cross_attention", 2)
    config = nodes.train_node.merged_config("LOBA Train Slider", {"rank": 5}, [])
    assert config.network.network_dim == 5
