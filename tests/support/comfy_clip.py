"""One tiny random CLIP text stack in both hosts: transformers encoders (the diffusers backend) and ComfyUI's CLIP
object holding exactly the same weights (SD1: clip_l; SDXL: clip_l + clip_g), both with CLIP's real vocabulary.

The tokenizers are the real CLIP BPE (loba.toyworld.model.clip_tokenizer, offline) on the diffusers side and
ComfyUI's own shipped sd1_tokenizer on the ComfyUI side, as for a real checkpoint. SDXL's second tokenizer
pads with "!" (id 0) as SDXL's tokenizer_2 and ComfyUI's clip_g tokenizer do.
"""

from __future__ import annotations

from pathlib import Path

import torch

from loba.toyworld.model import clip_tokenizer, write_tokenizer_files

WIDTHS = {"l": 32, "g": 32}  # l + g = the tiny SDXL UNet's context width (tiny_models)
LAYERS = 3  # SDXL's penultimate default needs more than two layers in ComfyUI


def _text_config(width: int, act: str) -> dict:
    return dict(vocab_size=49408, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=LAYERS,
                num_attention_heads=4, max_position_embeddings=77, hidden_act=act, bos_token_id=49406,
                eos_token_id=49407, pad_token_id=49407, projection_dim=width, layer_norm_eps=1e-5)


def tiny_clip_encoders(family: str, seed: int = 0) -> list:
    """The transformers text encoders: [CLIPTextModel] (sd1) or [CLIPTextModel, CLIPTextModelWithProjection] (sdxl)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    encoders = [CLIPTextModel(CLIPTextConfig(**_text_config(WIDTHS["l"], "quick_gelu"))).eval()]
    if family == "sdxl":  # OpenCLIP bigG uses gelu, CLIP-L quick_gelu, as ComfyUI's configs say
        encoders.append(CLIPTextModelWithProjection(CLIPTextConfig(**_text_config(WIDTHS["g"], "gelu"))).eval())
    return encoders


def tiny_clip_tokenizers(family: str, folder: Path) -> list:
    from transformers import CLIPTokenizer

    tokenizers = [clip_tokenizer(folder)]
    if family == "sdxl":
        files = write_tokenizer_files(folder)
        tokenizers.append(CLIPTokenizer(str(files / "vocab.json"), str(files / "merges.txt"), model_max_length=77,
                                        pad_token="!"))
    return tokenizers


def _comfy_config(width: int, act: str) -> dict:
    keys = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "hidden_act", "projection_dim")
    return {key: value for key, value in _text_config(width, act).items() if key in keys}


def _comfy_state(encoder) -> dict:
    state = {k: v.detach().float().clone() for k, v in encoder.state_dict().items()}
    # transformers 5 flattened CLIPTextModel's keys; ComfyUI keeps text_model.*
    state = {k if k.startswith(("text_model.", "text_projection")) else f"text_model.{k}": v for k, v in state.items()}
    width = state["text_model.final_layer_norm.weight"].shape[0]
    state.setdefault("text_projection.weight", torch.eye(width))  # CLIP-L files without one; SD1 never uses it
    return state


def comfy_clip(encoders: list):
    """ComfyUI's CLIP (comfy.sd.CLIP) with the encoders' weights, built under inference mode as loader nodes do."""
    import comfy.sd
    import comfy.sd1_clip
    import comfy.sdxl_clip
    import comfy.supported_models_base

    sdxl = len(encoders) == 2
    options = {"clip_l_model_config": _comfy_config(WIDTHS["l"], "quick_gelu"), "dtype": torch.float32}
    if sdxl:
        options["clip_g_model_config"] = _comfy_config(WIDTHS["g"], "gelu")
        target = comfy.supported_models_base.ClipTarget(comfy.sdxl_clip.SDXLTokenizer, comfy.sdxl_clip.SDXLClipModel)
    else:
        target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    with torch.inference_mode():
        clip = comfy.sd.CLIP(target, model_options=options)
        parts = [clip.cond_stage_model.clip_l] + ([clip.cond_stage_model.clip_g] if sdxl else [])
        for part, encoder in zip(parts, encoders):
            missing, unexpected = part.transformer.load_state_dict(_comfy_state(encoder), strict=False)
            if missing or unexpected:
                raise KeyError(f"CLIP weights: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return clip
