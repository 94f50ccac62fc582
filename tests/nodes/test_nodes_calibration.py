"""The Train node's strength-calibration inputs: optional (older graphs stay valid), tooltips from the config,
named in the node's doc page, and passed to the config only when a graph sets them."""

from __future__ import annotations

from support.comfy import COMFY_MARKS, REPO_ROOT, require_comfyui

from loba.config import TrainConfig

require_comfyui()
pytestmark = COMFY_MARKS

NEW = ("calibrate_strength", "calibration_effect")


def test_calibration_inputs_are_optional_with_the_config_tooltips(pack):
    schema = pack.nodes["LOBA_TrainSlider"].GET_SCHEMA()
    inputs = {item.id: item for item in schema.inputs}
    for name in NEW:
        assert inputs[name].optional, name
        assert inputs[name].tooltip == TrainConfig.__dataclass_fields__[name].metadata["help"]


def test_the_doc_page_names_every_input_of_the_train_node(pack):
    page = (REPO_ROOT / "web" / "docs" / "LOBA_TrainSlider.md").read_text(encoding="utf-8")
    schema = pack.nodes["LOBA_TrainSlider"].GET_SCHEMA()
    missing = [item.id for item in schema.inputs if f"`{item.id}`" not in page]
    assert not missing


def test_unset_inputs_leave_the_defaults_and_set_ones_reach_the_config(pack):
    train_node = pack.module.nodes.train_node
    assert train_node._set_only({"calibrate_strength": None, "calibration_effect": None}) == {}
    config = train_node.merged_config("LOBA Train Slider", train_node._set_only(
        {"calibrate_strength": True, "calibration_effect": 0.05}), [])
    assert config.calibrate_strength is True and config.calibration_effect == 0.05
