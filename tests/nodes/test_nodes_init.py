"""The closed-form start and the single-step mode as node inputs: optional (old workflows keep kohya's init and
the partial denoise), the combo lists the initializer registry, and the values reach the config."""

from __future__ import annotations

from support.comfy import COMFY_MARKS, require_comfyui
from support.pack import run_node

from loba.adapters.initializers import INITIALIZERS
from loba.config.migrations import config_from_widgets

require_comfyui()
pytestmark = COMFY_MARKS

TARGETING = dict(preset="cross_attention", network_dim=4, network_alpha=4.0, conv_dim=4, conv_alpha=1.0, include="",
                 exclude="", rank_pattern="", lr_pattern="")
SAMPLING = dict(trajectory_cache=4, trajectory_refresh_every=48, min_timestep=0, max_timestep=1000, preserve_from_timestep=1000)


def test_init_is_an_optional_combo_of_the_registry(pack):
    info = pack.nodes["LOBA_Targeting"].GET_NODE_INFO_V1()["input"]
    assert "init" not in info["required"] and info["optional"]["init"][1]["options"] == INITIALIZERS.names()
    assert "single_step" in pack.nodes["LOBA_Sampling"].GET_NODE_INFO_V1()["input"]["optional"]


def test_the_values_reach_the_config_and_their_absence_keeps_the_old_behaviour(pack):
    old = run_node(pack.nodes["LOBA_Targeting"], **TARGETING).args[0]
    new = run_node(pack.nodes["LOBA_Targeting"], **TARGETING, init="closed_form", closed_form_lambda=0.3).args[0]
    assert config_from_widgets(old.values).network.init == "default"
    network = config_from_widgets(new.values).network
    assert (network.init, network.closed_form_lambda) == ("closed_form", 0.3)
    assert not config_from_widgets(run_node(pack.nodes["LOBA_Sampling"], **SAMPLING).args[0].values).sampling.single_step
    one = run_node(pack.nodes["LOBA_Sampling"], **SAMPLING, single_step=True).args[0]
    assert config_from_widgets(one.values).sampling.single_step
