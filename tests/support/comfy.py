"""Test helpers for running a real ComfyUI in-process: find it, import it, build tiny ComfyUI models.

Nothing here imports ComfyUI at import time: test modules may import this one without a ComfyUI on
the machine. A ComfyUI test module does

    from support.comfy import COMFY_MARKS, require_comfyui
    require_comfyui()
    pytestmark = COMFY_MARKS

Every test in it is then marked "comfy", and the whole module is skipped with one loud reason line
when no ComfyUI is found. The session fixture `comfy` (a plugin of tests/conftest.py; defined as comfy_fixture so that
the name comfy stays free for the imported package; it also skips without ComfyUI) puts ComfyUI on
sys.path (first, as main.py has it), forces CPU mode before comfy.model_management is imported, and
returns a namespace of the imported modules.

Tiny models: `comfy_model_from_diffusers` turns a (tiny) diffusers UNet2DConditionModel into a
ComfyUI ModelPatcher holding the SAME weights: a supported model config (SD15 / SD20 / SDXL)
subclassed with the matching tiny unet_config, `get_model`, the diffusers state dict converted with
ComfyUI's own key map (comfy.utils.unet_to_diffusers) and loaded strictly, everything under
torch.inference_mode() as ComfyUI's executor builds models.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import pytest
import torch
from torch import nn

from devtools.comfyui import COMFYUI_PATH_ENV, DEFAULT_COMFYUI, REPO_ROOT, find_comfyui, is_comfyui  # noqa: F401

# Which supported_models config each LOBA family subclasses.
FAMILY_CONFIGS = {"sd1": "SD15", "sd2": "SD20", "sdxl": "SDXL"}


def comfyui_skip_reason() -> str:
    env = os.environ.get(COMFYUI_PATH_ENV)
    where = f"{COMFYUI_PATH_ENV}={env} is not a ComfyUI work tree (no comfy/sd.py + main.py)" if env else \
        f"not in ComfyUI/custom_nodes, no {DEFAULT_COMFYUI}"
    return (f"NO ComfyUI found ({where}): set {COMFYUI_PATH_ENV} to a ComfyUI work tree; "
            "ComfyUI tests skipped")


COMFYUI = find_comfyui()
# pytestmark of every ComfyUI test module.
COMFY_MARKS = [pytest.mark.comfy]


def require_comfyui() -> None:
    """Call at the top of a ComfyUI test module: without ComfyUI the whole module is skipped, reported by
    pytest -ra as ONE line (a skipif mark or a fixture skip would give one line per test function)."""
    if COMFYUI is None:
        pytest.skip(comfyui_skip_reason(), allow_module_level=True)


# -- importing it ---------------------------------------------------------------------------------
def import_comfy(path: Path, cpu: bool = True) -> SimpleNamespace:
    """Import ComfyUI's core modules from `path` (in CPU mode by default) and return them by name."""
    path_str = str(path)
    if path_str not in sys.path:
        sys.path.insert(0, path_str)  # first, as when ComfyUI's main.py runs
    import comfy.cli_args

    already = "comfy.model_management" in sys.modules
    if cpu and not already:
        comfy.cli_args.args.cpu = True  # must precede the import of comfy.model_management
    import comfy.lora
    import comfy.model_base
    import comfy.model_detection
    import comfy.model_management
    import comfy.model_patcher
    import comfy.ops
    import comfy.sd
    import comfy.supported_models
    import comfy.supported_models_base
    import comfy.utils
    from comfy.ldm.modules.diffusionmodules import openaimodel

    if cpu and comfy.model_management.cpu_state != comfy.model_management.CPUState.CPU:
        raise RuntimeError("comfy.model_management was imported before CPU mode could be set; "
                           "import ComfyUI through support.comfy.import_comfy")
    return SimpleNamespace(path=path, cli_args=comfy.cli_args, lora=comfy.lora, model_base=comfy.model_base,
                           model_detection=comfy.model_detection, model_management=comfy.model_management,
                           model_patcher=comfy.model_patcher, ops=comfy.ops, sd=comfy.sd,
                           supported_models=comfy.supported_models, supported_models_base=comfy.supported_models_base,
                           utils=comfy.utils, openaimodel=openaimodel)


@pytest.fixture(scope="session", name="comfy")
def comfy_fixture() -> SimpleNamespace:
    """The imported ComfyUI modules (CPU mode); skips when no ComfyUI is found."""
    if COMFYUI is None:
        pytest.skip(comfyui_skip_reason())
    return import_comfy(COMFYUI)


# -- tiny ComfyUI models from diffusers UNets -----------------------------------------------------
def _per_block(value, n: int, field: str) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(f"diffusers config {field} has {len(values)} entries for {n} blocks")
    return values


def comfy_unet_config(diffusers_config: Mapping) -> tuple[dict, dict]:
    """(unet_config, head config) of the ComfyUI UNetModel equivalent to a diffusers UNet2DConditionModel
    config. Raises ValueError for features the LDM UNet cannot express the same way."""
    c = dict(diffusers_config)
    channels = list(c["block_out_channels"])
    n = len(channels)
    base = channels[0]
    if any(ch % base for ch in channels):
        raise ValueError(f"block_out_channels {channels} are not multiples of the first")
    if not (c.get("flip_sin_to_cos", True) and c.get("freq_shift", 0) == 0 and c.get("time_embedding_type", "positional") == "positional"):
        raise ValueError("ComfyUI's UNet has SD's timestep embedding (flip_sin_to_cos, freq_shift 0) only")
    if c.get("class_embed_type") is not None or c.get("encoder_hid_dim") is not None:
        raise ValueError("class embeddings / encoder_hid_proj have no ComfyUI UNetModel equivalent")
    if c.get("mid_block_type", "UNetMidBlock2DCrossAttn") != "UNetMidBlock2DCrossAttn":
        raise ValueError(f"mid block {c.get('mid_block_type')} is not SD's")
    layers = _per_block(c["layers_per_block"], n, "layers_per_block")
    depths = _per_block(c.get("transformer_layers_per_block", 1), n, "transformer_layers_per_block")
    if any(not isinstance(d, int) for d in depths):
        raise ValueError("per-layer transformer depths are not supported")

    def depth(block_type: str, level: int) -> int:
        return depths[level] if block_type.startswith("CrossAttn") else 0

    transformer_depth = [d for level, kind in enumerate(c["down_block_types"]) for d in [depth(kind, level)] * layers[level]]
    # Output blocks pop from the end: list by level (0 first), level L has layers[L] + 1 output blocks.
    up_types = list(reversed(c["up_block_types"]))
    transformer_depth_output = [d for level in range(n) for d in [depth(up_types[level], level)] * (layers[level] + 1)]
    unet_config = {
        "use_checkpoint": False, "image_size": 32, "in_channels": c["in_channels"], "out_channels": c["out_channels"],
        "model_channels": base, "num_res_blocks": layers, "channel_mult": [ch // base for ch in channels],
        "transformer_depth": transformer_depth, "transformer_depth_middle": depths[-1],
        "transformer_depth_output": transformer_depth_output, "use_spatial_transformer": True, "legacy": False,
        "context_dim": c["cross_attention_dim"], "use_linear_in_transformer": bool(c.get("use_linear_projection")),
        "adm_in_channels": None, "use_temporal_attention": False, "use_temporal_resblock": False,
    }
    if c.get("addition_embed_type") == "text_time":
        unet_config["adm_in_channels"] = c["projection_class_embeddings_input_dim"]
        unet_config["num_classes"] = "sequential"
    elif c.get("addition_embed_type") is not None:
        raise ValueError(f"addition_embed_type {c['addition_embed_type']} has no ComfyUI UNetModel equivalent")
    # diffusers' attention_head_dim is the number of heads when num_attention_heads is unset (its known misnomer).
    heads = _per_block(c.get("num_attention_heads") or c["attention_head_dim"], n, "attention_head_dim")
    head_dims = {ch // h for ch, h in zip(channels, heads)}
    if len(set(heads)) == 1:
        head_config = {"num_heads": heads[0], "num_head_channels": -1}
    elif len(head_dims) == 1:
        head_config = {"num_heads": -1, "num_head_channels": head_dims.pop()}
    else:
        raise ValueError(f"heads {heads} for channels {channels}: neither the head count nor the head size is constant")
    return unet_config, head_config


def tiny_model_config(comfy: SimpleNamespace, family: str, unet_config: dict, head_config: dict,
                      prediction_type: str = "epsilon"):
    """A supported_models config (SD15 / SD20 / SDXL subclass) for a tiny UNet, float32 weights.

    The class carries the tiny unet_config, so it can also be registered in
    comfy.supported_models.models (in tests only) for load_checkpoint_guess_config to detect it."""
    base = getattr(comfy.supported_models, FAMILY_CONFIGS[family])
    model_types = {"epsilon": comfy.model_base.ModelType.EPS, "v_prediction": comfy.model_base.ModelType.V_PREDICTION}
    model_type = model_types[prediction_type]
    cls = type(f"Tiny{base.__name__}", (base,), {
        "unet_config": dict(unet_config),
        "unet_extra_config": dict(head_config),
        "model_type": lambda self, state_dict, prefix="": model_type,
    })
    config = cls(unet_config)
    config.set_inference_dtype(torch.float32, None)
    return config


def diffusers_to_comfy_keys(comfy: SimpleNamespace, unet_config: dict, diffusers_keys) -> dict[str, str]:
    """{diffusers state-dict key: ComfyUI diffusion_model key} from ComfyUI's own map (every key must map)."""
    table = comfy.utils.unet_to_diffusers(unet_config)
    missing = [key for key in diffusers_keys if key not in table]
    if missing:
        raise KeyError(f"ComfyUI's unet_to_diffusers has no entry for {len(missing)} diffusers keys, e.g. {missing[:5]}")
    return {key: table[key] for key in diffusers_keys}


def match_group_norms(comfy_unet: nn.Module, diffusers_unet: nn.Module, key_map: Mapping[str, str]) -> int:
    """ComfyUI's UNet hard-codes GroupNorm(32); give each norm its diffusers counterpart's groups and eps.

    Real SD models use 32 groups, so this only matters for tiny test models."""
    count = 0
    for name, module in diffusers_unet.named_modules():
        if isinstance(module, nn.GroupNorm):
            target = comfy_unet.get_submodule(key_map[f"{name}.weight"].rsplit(".", 1)[0])
            target.num_groups, target.eps = module.num_groups, module.eps
            count += 1
    return count


def comfy_model_from_diffusers(comfy: SimpleNamespace, diffusers_unet: nn.Module, family: Optional[str] = None,
                               prediction_type: str = "epsilon"):
    """A ComfyUI ModelPatcher whose UNet holds exactly the weights of `diffusers_unet` (built as the executor does)."""
    config = diffusers_unet.config
    if family is None:
        family = "sdxl" if config.get("addition_embed_type") == "text_time" else \
            "sd2" if config.get("use_linear_projection") else "sd1"
    unet_config, head_config = comfy_unet_config(config)
    state = {key: tensor.detach().to("cpu", torch.float32) for key, tensor in diffusers_unet.state_dict().items()}
    key_map = diffusers_to_comfy_keys(comfy, unet_config, state)
    mm = comfy.model_management
    with torch.inference_mode():
        model_config = tiny_model_config(comfy, family, unet_config, head_config, prediction_type)
        model = model_config.get_model({})
        missing, unexpected = model.diffusion_model.load_state_dict({key_map[k]: v for k, v in state.items()}, strict=False)
        if missing or unexpected:
            raise KeyError(f"diffusers -> ComfyUI weights: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
        match_group_norms(model.diffusion_model, diffusers_unet, key_map)
        if family == "sdxl":
            # SDXL's size embedder is Timestep(256); tiny UNets embed sizes with addition_time_embed_dim.
            model.embedder = comfy.openaimodel.Timestep(config["addition_time_embed_dim"])
        return comfy.model_patcher.ModelPatcher(model, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())


def comfy_adm(patcher, pooled: torch.Tensor, height: int, width: int) -> Optional[torch.Tensor]:
    """The UNet's `y` as ComfyUI builds it (SDXL: pooled + size embeddings; None for SD1/SD2), pixel sizes."""
    model = patcher.model
    if model.adm_channels == 0:
        return None
    with torch.inference_mode():
        return model.encode_adm(pooled_output=pooled, width=width, height=height, crop_w=0, crop_h=0,
                                target_width=width, target_height=height)


def comfy_eps(comfy: SimpleNamespace, patcher, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
              y: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Load `patcher` as ComfyUI does before sampling (its patches go into the weights) and call its UNet."""
    with torch.inference_mode():
        comfy.model_management.load_models_gpu([patcher])
        device = patcher.load_device
        unet = patcher.model.diffusion_model
        out = unet(x.to(device), timesteps=timesteps.to(device, torch.float32), context=context.to(device),
                   y=None if y is None else y.to(device))
    return out.float().cpu().clone()  # cloned outside inference mode: a normal tensor
