"""Flux targeting presets select ComfyUI's Flux module names (BFL's: double_blocks.N.img_attn.qkv, ...), and presets of
another family are refused before model work."""

from __future__ import annotations

import pytest
from support.comfy import COMFY_MARKS, require_comfyui
from support.comfy_flux import tiny_flux_model

from loba.adapters.targeting import check_preset_family, select_targets
from loba.config import TrainConfig
from loba.errors import ConfigError
from loba.models.naming import KohyaNames

require_comfyui()
pytestmark = COMFY_MARKS

DOUBLE_ATTENTION = {f"double_blocks.{i}.{s}_attn.{p}" for i in (0, 1) for s in ("img", "txt") for p in ("qkv", "proj")}
DOUBLE_MLP = {f"double_blocks.{i}.{s}_mlp.{p}" for i in (0, 1) for s in ("img", "txt") for p in ("0", "2")}
SINGLE = {f"single_blocks.{i}.{p}" for i in (0, 1) for p in ("linear1", "linear2")}
EXPECTED = {"flux_double_attention": DOUBLE_ATTENTION, "flux_single_blocks": SINGLE,
            "flux_img_stream": {n for n in DOUBLE_ATTENTION | DOUBLE_MLP if ".img_" in n},
            "flux_txt_stream": {n for n in DOUBLE_ATTENTION | DOUBLE_MLP if ".txt_" in n},
            "flux_all_linear": DOUBLE_ATTENTION | DOUBLE_MLP | SINGLE, "all_linear": DOUBLE_ATTENTION | DOUBLE_MLP | SINGLE}


@pytest.fixture(scope="module")
def flux(comfy):
    return tiny_flux_model(comfy, "dev").model.diffusion_model


@pytest.mark.parametrize("preset", list(EXPECTED))
def test_flux_presets_select_the_flux_layers_they_name(flux, preset):
    chosen = {spec.name for spec in select_targets(flux, TrainConfig().replace(preset=preset).network)}
    assert chosen == EXPECTED[preset]


def test_flux_module_names_are_their_own_kohya_stems(flux):
    names = KohyaNames(flux, "flux")
    assert names.kohya_name("double_blocks.0.img_attn.qkv") == "lora_unet_double_blocks_0_img_attn_qkv"
    assert names.module_name_from_kohya("lora_unet_single_blocks_1_linear2") == "single_blocks.1.linear2"


@pytest.mark.parametrize("preset, family, fitting", [("cross_attention", "flux", "flux_double_attention"),
                                                     ("attention_mlp", "flux", "flux_all_linear"),
                                                     ("flux_single_blocks", "sdxl", "cross_attention")])
def test_presets_of_another_family_are_refused(preset, family, fitting):
    with pytest.raises(ConfigError, match=f"preset: preset '{preset}' is for .* and this model is {family}; use one of .*{fitting}"):
        check_preset_family(preset, family)
    check_preset_family("all_linear", family)  # the default trains every family
