"""The Toy World Loader's `world` combo: the shipped worlds, the entangled one loaded from its shared file."""

from __future__ import annotations

import pytest
import torch
from support.comfy import COMFY_MARKS, require_comfyui
from support.pack import run_node

from loba.toyworld.worlds import DEFAULT_WORLD, world_names

require_comfyui()
pytestmark = COMFY_MARKS


def test_the_loader_lists_the_worlds_and_loads_each(pack):
    node = pack.nodes["LOBA_ToyWorldLoader"]
    [world] = [item for item in node.define_schema().inputs if item.id == "world"]
    assert world.options == world_names() == ["toyworld", "entangled", "flow"] and world.default == DEFAULT_WORLD
    plain = run_node(node).args
    entangled = run_node(node, world="entangled").args
    unets = [outputs[0].model.diffusion_model.state_dict() for outputs in (plain, entangled)]
    assert unets[0].keys() == unets[1].keys()
    assert any(not torch.equal(unets[0][key], unets[1][key]) for key in unets[0])
    vaes = [outputs[2].first_stage_model.state_dict() for outputs in (plain, entangled)]
    encoder = [key for key in vaes[0] if key.startswith("encoder.")]
    assert encoder and all(torch.equal(vaes[0][key], vaes[1][key]) for key in encoder)  # shared with the shipped world
    assert any(not torch.equal(vaes[0][key], vaes[1][key]) for key in vaes[0] if key.startswith("decoder."))


def test_an_unknown_world_names_the_node_and_field(pack):
    with pytest.raises(Exception, match="world") as raised:
        run_node(pack.nodes["LOBA_ToyWorldLoader"], world="atlantis")
    assert "toyworld" in str(raised.value)
