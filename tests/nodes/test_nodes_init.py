"""The closed-form start and the single-step mode as node inputs: optional (old workflows keep kohya's init and
the partial denoise), the combo lists the initializer registry, and the values reach the config; the Train
Slider's optional instant input saves the closed-form start alone on the toy world."""

from __future__ import annotations

import pytest
import torch
from support.comfy import COMFY_MARKS, comfy_eps, require_comfyui
from support.nodes import assert_untouched, pair, snapshot, train_inputs
from support.pack import run_node

from loba.adapters.initializers import INITIALIZERS
from loba.config.migrations import config_from_widgets
from loba.sliders.kohya import load_slider

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


def test_instant_saves_the_closed_form_start_without_a_step_and_leaves_the_model_untouched(pack, comfy, toy):
    targeting = run_node(pack.nodes["LOBA_Targeting"], **TARGETING, init="closed_form").args[0]
    before = snapshot(comfy, toy.model)
    slider, _, path = run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                               targeting=targeting, instant=True,
                               **train_inputs(resolution=0, filename_prefix="loba/instant")).args
    assert_untouched(comfy, toy.model, before)
    assert slider.metadata["ss_steps"] == "0" and load_slider(path).metadata["ss_steps"] == "0"
    changed = {key for key, value in slider.tensors.items() if key.endswith("lora_up.weight") and value.abs().sum() > 0}
    assert changed and all(key.split(".")[0].endswith(("attn2_to_k", "attn2_to_v")) for key in changed)
    x, context, y = before[2]
    applied = run_node(pack.nodes["LOBA_ApplySlider"], model=toy.model, slider=slider, strength=1.0).args[0]
    assert not torch.equal(comfy_eps(comfy, applied, x, torch.tensor([500.0]), context, y), before[1])


def test_instant_without_the_closed_form_or_with_a_resume_is_refused_on_the_node(pack, toy):
    inputs = dict(model=toy.model, clip=toy.clip, prompts=pair(pack), instant=True, **train_inputs(filename_prefix="loba/no"))
    with pytest.raises(ValueError, match="LOBA Train Slider.*init = closed_form"):
        run_node(pack.nodes["LOBA_TrainSlider"], **inputs)
    targeting = run_node(pack.nodes["LOBA_Targeting"], **TARGETING, init="closed_form").args[0]
    checkpointed = {**inputs, "targeting": targeting, "instant": False, "max_train_steps": 2, "save_every_n_steps": 1}
    run_node(pack.nodes["LOBA_TrainSlider"], **checkpointed)  # a run with a checkpoint for resume_file = auto to find
    with pytest.raises(ValueError, match="LOBA Train Slider, input 'resume_file'.*nothing to resume"):
        run_node(pack.nodes["LOBA_TrainSlider"], **{**checkpointed, "instant": True, "resume_file": "auto"})
