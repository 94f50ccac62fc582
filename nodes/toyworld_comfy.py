"""The toy-world model as ComfyUI objects: (MODEL, CLIP, VAE) from the same single file the diffusers side reads.

ComfyUI cannot detect the toy architecture from its keys (SD1 layout at toy width), so this module builds
each part from the file's own configs: MODEL through a subclass of comfy.supported_models.SD15 with the
toy unet_config and the file's latent scale; CLIP through comfy.sd.CLIP with ComfyUI's SD1 tokenizer (the
same CLIP vocabulary) and a text-model config of the toy width; VAE through comfy.sd.VAE with an LDM
ddconfig. Every tensor of the file must land somewhere and every ComfyUI weight must come from the file.

Imported from node code and tests only (it imports ComfyUI), never when the pack is imported.
"""

from __future__ import annotations

import functools
import os

import torch

from ..loba.errors import LobaError
from ..loba.toyworld.files import read_toy_state
from ..loba.toyworld.single_file import SD1_TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX


def load_toyworld_comfy(path: str | os.PathLike | None = None, dtype: torch.dtype | None = None):
    """(model_patcher, clip, vae) of the toy model; path None = the embedded default weight file.

    dtype None lets ComfyUI choose per part as for any checkpoint (fp16 text encoder, ...); a dtype forces it."""
    state, info = read_toy_state(path)
    configs, unused = info["configs"], set(state)
    model = _build_model(_take(state, UNET_PREFIX, unused), configs, float(info["scaling_factor"]), dtype)
    clip = _build_clip(_take(state, SD1_TEXT_PREFIX, unused), configs["text_encoder"], dtype)
    vae = _build_vae(_take(state, VAE_PREFIX, unused), configs["vae"], dtype)
    if unused:
        raise LobaError(f"toy-world file tensors no ComfyUI part takes: {sorted(unused)[:5]}")
    return model, clip, vae


def _take(state: dict, prefix: str, unused: set) -> dict:
    part = {key[len(prefix):]: tensor for key, tensor in state.items() if key.startswith(prefix)}
    unused.difference_update(prefix + key for key in part)
    return part


def _load_exactly(module: torch.nn.Module, state: dict, what: str, optional: tuple[str, ...] = ()) -> None:
    # ComfyUI's own loaders only log missing keys; a toy file with a gap must fail loudly instead.
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [key for key in missing if key not in optional]
    if missing or unexpected:
        raise LobaError(f"toy-world {what}: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")


# -- MODEL ----------------------------------------------------------------------------------------
@functools.cache
def _classes():
    """(latent format class, model config class), made once ComfyUI is importable."""
    from comfy import latent_formats, supported_models

    class ToyWorldLatent(latent_formats.SD15):
        def __init__(self, scale_factor: float = 1.0):
            super().__init__(scale_factor)
            # SD's latent->RGB factors and TAESD do not fit the toy VAE's latent space: no fake previews.
            self.latent_rgb_factors = None
            self.taesd_decoder_name = None

    class ToyWorldSD1(supported_models.SD15):
        latent_format = ToyWorldLatent
        prediction = "epsilon"
        loba_native_resolution = 64  # the Train Slider node's resolution 0 means this

        def model_type(self, state_dict, prefix=""):
            from comfy.model_base import ModelType

            return ModelType.V_PREDICTION if self.prediction == "v_prediction" else ModelType.EPS

    return ToyWorldLatent, ToyWorldSD1


def ldm_unet_config(c: dict) -> dict:
    """ComfyUI UNetModel config (with head settings) of an SD1-style diffusers UNet2DConditionModel config."""
    channels = list(c["block_out_channels"])
    base, n, layers = channels[0], len(channels), int(c["layers_per_block"])
    depth = [1 if kind.startswith("CrossAttn") else 0 for kind in c["down_block_types"]]
    up_depth = [1 if kind.startswith("CrossAttn") else 0 for kind in reversed(c["up_block_types"])]
    heads = c["attention_head_dim"]  # diffusers' misnomer: the head COUNT when num_attention_heads is unset
    if c.get("use_linear_projection") or c.get("addition_embed_type") or isinstance(heads, (list, tuple)) or \
            c.get("norm_num_groups", 32) != 32 or any(ch % base for ch in channels):
        raise LobaError("the toy UNet config is outside the SD1 shape this loader maps to ComfyUI")
    return {"use_checkpoint": False, "image_size": 32, "in_channels": c["in_channels"], "out_channels": c["out_channels"],
            "model_channels": base, "num_res_blocks": [layers] * n, "channel_mult": [ch // base for ch in channels],
            "transformer_depth": [d for d in depth for _ in range(layers)], "transformer_depth_middle": 1,
            "transformer_depth_output": [d for d in up_depth for _ in range(layers + 1)], "use_spatial_transformer": True,
            "legacy": False, "context_dim": c["cross_attention_dim"], "use_linear_in_transformer": False,
            "adm_in_channels": None, "use_temporal_attention": False, "use_temporal_resblock": False,
            "num_heads": int(heads), "num_head_channels": -1}


def _sampling_settings(scheduler: dict) -> dict:
    # ComfyUI's "linear" schedule is SD's scaled-linear one (linspace in sqrt(beta)).
    if scheduler.get("beta_schedule") != "scaled_linear" or scheduler.get("prediction_type") not in ("epsilon", "v_prediction"):
        raise LobaError(f"toy scheduler {scheduler} has no ComfyUI discrete-schedule equivalent")
    return {"beta_schedule": "linear", "linear_start": scheduler["beta_start"], "linear_end": scheduler["beta_end"],
            "timesteps": scheduler["num_train_timesteps"]}


def _build_model(unet_state: dict, configs: dict, scaling_factor: float, dtype):
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.utils

    latent_class, config_class = _classes()
    unet_config = ldm_unet_config(configs["unet"])
    model_config = config_class(unet_config)
    model_config.unet_config.update(unet_config)  # SD15's heads settings must not override the toy ones
    model_config.latent_format = latent_class(scaling_factor)
    model_config.sampling_settings = _sampling_settings(configs["scheduler"])
    model_config.prediction = configs["scheduler"]["prediction_type"]
    load_device = mm.get_torch_device()
    if dtype is None:
        dtype = mm.unet_dtype(model_params=comfy.utils.calculate_parameters(unet_state),
                              supported_dtypes=model_config.supported_inference_dtypes, weight_dtype=torch.float16)
    model_config.set_inference_dtype(dtype, mm.unet_manual_cast(dtype, load_device, model_config.supported_inference_dtypes))
    model = model_config.get_model({})
    _load_exactly(model.diffusion_model, unet_state, "UNet")
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=mm.unet_offload_device())


# -- CLIP -----------------------------------------------------------------------------------------
def _clip_json_config(text: dict) -> dict:
    """The transformers-style config ComfyUI's CLIPTextModel reads (it takes the vocabulary size as SD's)."""
    keys = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "hidden_act",
            "max_position_embeddings", "eos_token_id", "bos_token_id", "vocab_size", "projection_dim")
    config = {key: text[key] for key in keys}
    config.update(layer_norm_eps=text.get("layer_norm_eps", 1e-5), model_type="clip_text_model", architectures=["CLIPTextModel"])
    if config["vocab_size"] != 49408 or config["max_position_embeddings"] != 77 or config["layer_norm_eps"] != 1e-5:
        raise LobaError("ComfyUI's CLIP text model has CLIP-L's vocabulary, 77 positions and LayerNorm eps 1e-5 only")
    return config


def _build_clip(text_state: dict, text_config: dict, dtype):
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models_base

    width = int(text_config["hidden_size"])
    target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    # The tokenizer's embedding size only filters textual-inversion files: only toy-width ones fit.
    tokenizer_class = functools.partial(comfy.sd1_clip.SDTokenizer, embedding_size=width)
    # "clip_l_model_config" overrides the entries of ComfyUI's CLIP-L config (SDClipModel reads it).
    options = {"clip_l_model_config": _clip_json_config(text_config), **({} if dtype is None else {"dtype": dtype})}
    clip = comfy.sd.CLIP(target, tokenizer_data={"clip_l_tokenizer_class": tokenizer_class},
                         parameters=sum(t.numel() for t in text_state.values()), model_options=options)
    encoder = clip.cond_stage_model.clip_l.transformer
    # SD1 files carry no text projection (SD1 never uses it); identity instead of uninitialized memory.
    with torch.no_grad():
        encoder.text_projection.weight.copy_(torch.eye(width, dtype=encoder.text_projection.weight.dtype))
    _load_exactly(encoder, text_state, "text encoder", optional=("text_projection.weight",))
    return clip


# -- VAE ------------------------------------------------------------------------------------------
def ldm_vae_config(c: dict) -> dict:
    """comfy.sd.VAE's `config` (LDM AutoencoderKL params) of a diffusers AutoencoderKL config."""
    channels = list(c["block_out_channels"])
    if c.get("norm_num_groups", 32) != 32 or any(ch % channels[0] for ch in channels) or not c.get("mid_block_add_attention", True):
        raise LobaError("the toy VAE config is outside the SD-style KL autoencoder this loader maps to ComfyUI")
    ddconfig = {"double_z": True, "z_channels": c["latent_channels"], "resolution": c.get("sample_size", 64),
                "in_channels": c["in_channels"], "out_ch": c["out_channels"], "ch": channels[0],
                "ch_mult": [ch // channels[0] for ch in channels], "num_res_blocks": c["layers_per_block"],
                "attn_resolutions": [], "dropout": 0.0}
    return {"params": {"ddconfig": ddconfig, "embed_dim": c["latent_channels"]}}


def _build_vae(vae_state: dict, vae_config: dict, dtype):
    import comfy.sd

    vae = comfy.sd.VAE(sd=dict(vae_state), config=ldm_vae_config(vae_config), dtype=dtype)
    # comfy.sd.VAE loads non-strictly and only logs gaps: check the key sets here.
    expected = set(vae.first_stage_model.state_dict())
    if expected != set(vae_state):
        raise LobaError(f"toy-world VAE: missing {sorted(expected - set(vae_state))[:5]}, "
                        f"unexpected {sorted(set(vae_state) - expected)[:5]}")
    return vae
