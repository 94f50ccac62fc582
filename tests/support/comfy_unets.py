"""ComfyUI's own UNetModel built tiny, for the tests that compare ComfyUI's key names with LOBA's."""

from __future__ import annotations

import pytest
from support.comfy import COMFYUI, comfyui_skip_reason, import_comfy
from torch import nn


def comfy_ldm_unet(kind: str, layers: int) -> nn.Module:
    """ComfyUI's own UNetModel shaped like tiny_unet(kind, layers_per_block=layers); skips without ComfyUI."""
    if COMFYUI is None:
        pytest.skip(comfyui_skip_reason())
    try:
        comfy = import_comfy(COMFYUI)
    except Exception as exc:  # a ComfyUI that does not import here is a reason to skip, not to fail
        pytest.skip(f"ComfyUI does not import: {exc}")
    UNetModel = comfy.openaimodel.UNetModel
    attention_level = [1, 0] if kind == "sd1" else [0, 1]
    extra = (dict(context_dim=32, use_linear_in_transformer=False) if kind == "sd1" else
             dict(context_dim=64, use_linear_in_transformer=True, adm_in_channels=80, num_classes="sequential"))
    return UNetModel(image_size=None, in_channels=4, model_channels=32, out_channels=4, num_res_blocks=[layers, layers],
                     channel_mult=(1, 2), num_head_channels=8, use_spatial_transformer=True,
                     transformer_depth=[d for d in attention_level for _ in range(layers)],
                     transformer_depth_output=[d for d in attention_level for _ in range(layers + 1)],
                     transformer_depth_middle=1, operations=comfy.ops.disable_weight_init, device="cpu", **extra)
