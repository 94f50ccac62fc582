"""diffusers <-> LDM (ComfyUI) UNet module names and kohya stems."""


import pytest
from support.comfy_unets import comfy_ldm_unet
from support.tiny_models import tiny_unet
from torch import nn

from loba.errors import UnsupportedModelError
from loba.models.naming import KohyaNames, diffusers_to_ldm_map, file_name_map, kohya_index, kohya_stem, ldm_to_diffusers_map, naming_scheme


def leaf_names(root: nn.Module) -> set[str]:
    return {name for name, m in root.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}


SD1_L2 = {  # tiny sd1: down (CrossAttn, Down), up (Up, CrossAttn), layers_per_block 2
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_2": "time_embed.2",
    "down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k": "input_blocks.2.1.transformer_blocks.0.attn2.to_k",
    "down_blocks.0.attentions.0.proj_in": "input_blocks.1.1.proj_in",
    "down_blocks.0.resnets.1.conv1": "input_blocks.2.0.in_layers.2",
    "down_blocks.0.downsamplers.0.conv": "input_blocks.3.0.op",
    "down_blocks.1.resnets.0.time_emb_proj": "input_blocks.4.0.emb_layers.1",
    "down_blocks.1.resnets.0.conv_shortcut": "input_blocks.4.0.skip_connection",
    "down_blocks.1.resnets.1.conv2": "input_blocks.5.0.out_layers.3",
    "mid_block.resnets.0.conv1": "middle_block.0.in_layers.2",
    "mid_block.attentions.0.transformer_blocks.0.ff.net.2": "middle_block.1.transformer_blocks.0.ff.net.2",
    "mid_block.resnets.1.time_emb_proj": "middle_block.2.emb_layers.1",
    "up_blocks.0.resnets.2.conv1": "output_blocks.2.0.in_layers.2",
    "up_blocks.0.upsamplers.0.conv": "output_blocks.2.1.conv",  # no attention in this up block: index 1
    "up_blocks.1.resnets.0.conv_shortcut": "output_blocks.3.0.skip_connection",
    "up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_out.0": "output_blocks.5.1.transformer_blocks.0.attn1.to_out.0",
    "up_blocks.1.attentions.2.proj_out": "output_blocks.5.1.proj_out",
    "conv_out": "out.2",
}

SDXL_L1 = {  # tiny sdxl: down (Down, CrossAttn), up (CrossAttn, Up), layers_per_block 1
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "down_blocks.0.resnets.0.conv1": "input_blocks.1.0.in_layers.2",
    "down_blocks.0.downsamplers.0.conv": "input_blocks.2.0.op",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v": "input_blocks.3.1.transformer_blocks.0.attn2.to_v",
    "down_blocks.1.resnets.0.conv_shortcut": "input_blocks.3.0.skip_connection",
    "mid_block.attentions.0.proj_in": "middle_block.1.proj_in",
    "up_blocks.0.attentions.1.transformer_blocks.0.attn1.to_q": "output_blocks.1.1.transformer_blocks.0.attn1.to_q",
    "up_blocks.0.upsamplers.0.conv": "output_blocks.1.2.conv",  # after the attention: index 2
    "up_blocks.1.resnets.1.time_emb_proj": "output_blocks.3.0.emb_layers.1",
    "conv_out": "out.2",
}


@pytest.mark.parametrize("kind,layers,expected", [("sd1", 2, SD1_L2), ("sdxl", 1, SDXL_L1)])
def test_diffusers_to_ldm_matches_hand_written_names(kind, layers, expected):
    unet = tiny_unet(kind, layers_per_block=layers)
    mapping = diffusers_to_ldm_map(unet)
    for diffusers_name, ldm_name in expected.items():
        assert mapping[diffusers_name] == ldm_name
    assert set(mapping) == leaf_names(unet)  # every Linear/Conv2d has a counterpart
    assert len(set(mapping.values())) == len(mapping)


@pytest.mark.parametrize("kind,layers", [("sd1", 1), ("sd1", 2), ("sdxl", 1), ("sdxl", 2)])
def test_round_trip(kind, layers):
    unet = tiny_unet(kind, layers_per_block=layers)
    forward, backward = diffusers_to_ldm_map(unet), ldm_to_diffusers_map(unet)
    assert {backward[ldm]: ldm for ldm in forward.values()} == forward


def test_kohya_stems_follow_the_family_scheme():
    assert kohya_stem("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k") == \
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    sd1 = tiny_unet("sd1")
    index = kohya_index(sd1, "sd1")
    assert index["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"] == \
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    assert set(index.values()) == leaf_names(sd1)
    sdxl = tiny_unet("sdxl")
    index = kohya_index(sdxl, "sdxl")
    assert index["lora_unet_input_blocks_3_1_transformer_blocks_0_attn2_to_k"] == \
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"
    assert not any("down_blocks" in stem for stem in index)
    names = KohyaNames(sdxl, "sdxl")
    assert names.kohya_name("conv_out") == "lora_unet_out_2"
    assert names.module_name_from_kohya("lora_unet_out_2") == "conv_out"
    assert names.module_name_from_kohya("lora_te1_text_model_encoder_layers_0_mlp_fc1") is None
    with pytest.raises(UnsupportedModelError):
        names.kohya_name("not.a.module")


def test_explicit_map_and_errors():
    sd1 = tiny_unet("sd1")
    assert kohya_index(sd1, "sd1", ldm_map={"conv_in": "conv_in"}) == {"lora_unet_conv_in": "conv_in"}
    with pytest.raises(UnsupportedModelError, match="unknown model family"):
        file_name_map(sd1, "sd3")
    with pytest.raises(UnsupportedModelError, match="a diffusers model has no kohya flux names"):
        file_name_map(sd1, "flux")
    with pytest.raises(UnsupportedModelError):
        naming_scheme(nn.Linear(2, 2))


@pytest.mark.parametrize("kind,layers", [("sd1", 1), ("sd1", 2), ("sdxl", 1), ("sdxl", 2)])
def test_against_comfyui(kind, layers):
    """ComfyUI's real UNetModel has exactly our LDM names, and its unet_to_diffusers agrees with our table."""
    ldm_unet = comfy_ldm_unet(kind, layers)
    import comfy.utils

    unet = tiny_unet(kind, layers_per_block=layers)
    forward = diffusers_to_ldm_map(unet)
    assert set(forward.values()) == leaf_names(ldm_unet)
    assert ldm_to_diffusers_map(ldm_unet) == {ldm: diffusers for diffusers, ldm in forward.items()}
    assert naming_scheme(ldm_unet) == "ldm"
    attention_level = [1, 0] if kind == "sd1" else [0, 1]
    config = {"num_res_blocks": [layers, layers], "channel_mult": [1, 2], "transformer_depth_middle": 1,
              "transformer_depth": [d for d in attention_level for _ in range(layers)],
              "transformer_depth_output": [d for d in attention_level for _ in range(layers + 1)]}
    comfy_table = {k[:-len(".weight")]: v[:-len(".weight")] for k, v in comfy.utils.unet_to_diffusers(config).items()
                   if k.endswith(".weight") and k[:-len(".weight")] in forward}
    assert len(comfy_table) == len(forward)
    assert all(forward[name] == ldm for name, ldm in comfy_table.items())
    # The sdxl family's stems on a ComfyUI model are its own names; sd1's go through the map.
    assert kohya_index(ldm_unet, "sdxl")["lora_unet_out_2"] == "out.2"
    assert kohya_index(ldm_unet, "sd1")["lora_unet_conv_out"] == "out.2"
