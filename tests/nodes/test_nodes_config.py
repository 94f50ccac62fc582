"""Config fields in the node pack: widget bounds come from the field metadata, and widget values (today's
workflows included) reach the config through the same migration as run files and slider files."""

from __future__ import annotations

import dataclasses

from support.comfy import COMFY_MARKS, require_comfyui

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
