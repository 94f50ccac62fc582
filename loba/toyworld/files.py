"""The toy model's weight file: ONE safetensors file in the original SD1 single-file layout, float16.

The layout is the one users' SD1.5 checkpoints have (`model.diffusion_model.*`, `first_stage_model.*`,
`cond_stage_model.transformer.*`), so every loader that reads SD1 files finds its keys; the metadata
entry "loba_toyworld" (JSON) carries the architecture configs, the latent scaling factor and what the
builder recorded (seed, steps, competence ...). The file describes itself: loaders build the modules
from ITS configs, not from today's model.py, so an old file keeps loading after the configs move on.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..sliders.atomic import atomic_write_bytes
from . import model
from .weight_errors import MAX_FILE_BYTES, METADATA_KEY, ToyWeightsError, ToyWeightsMissing

__all__ = ["MAX_FILE_BYTES", "METADATA_KEY", "ToyWeightsError", "ToyWeightsMissing", "load_toy_components"]

FORMAT_NAME = "loba-toyworld-sd1"
FORMAT_VERSION = 1
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "toyworld.safetensors"
_RESERVED = ("format", "version", "configs", "scaling_factor")
ROWS_SUFFIX = ".rows"  # shared files: `<key>.rows` holds the changed rows of the base's `<key>`




def current_configs() -> dict[str, dict]:
    """The architecture of model.py as JSON-ready dicts (tuples become lists)."""
    configs = {"text_encoder": model.TEXT_CONFIG, "unet": model.UNET_CONFIG, "vae": model.VAE_CONFIG,
               "scheduler": model.SCHEDULER_CONFIG}
    return json.loads(json.dumps(configs))


def toy_file_info(scaling_factor: float, metadata: dict | None = None) -> dict[str, Any]:
    """The "loba_toyworld" metadata: format, configs, scaling factor, then the caller's entries."""
    extra = dict(metadata or {})
    clashes = sorted(set(extra) & set(_RESERVED))
    if clashes:
        raise ToyWeightsError(f"metadata keys {clashes} are reserved by the file format; rename them")
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "configs": current_configs(),
            "scaling_factor": float(scaling_factor), **extra}


def save_toy_checkpoint(path: str | os.PathLike, components: model.ToyComponents, metadata: dict | None = None) -> Path:
    """Write `components` as one fp16 single-file checkpoint (atomically); returns the path.

    Raises ToyWeightsError when a weight does not fit in float16 or the file would exceed MAX_FILE_BYTES."""
    from safetensors.torch import save

    from .single_file import single_file_state

    state = single_file_state(components.unet, components.vae, components.text_encoder)
    half = {key: tensor.to(torch.float16) for key, tensor in state.items()}
    overflow = [key for key, tensor in half.items() if not torch.isfinite(tensor).all()]
    if overflow:
        raise ToyWeightsError(f"weights outside float16 range (or already non-finite): {overflow[:5]}")
    info = toy_file_info(components.scaling_factor, metadata)
    data = save(half, metadata={METADATA_KEY: json.dumps(info, sort_keys=True)})
    if len(data) > MAX_FILE_BYTES:
        raise ToyWeightsError(f"toy checkpoint would be {len(data) / 1e6:.1f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} MB budget")
    return atomic_write_bytes(path, data)


def resolve_weights(path: str | os.PathLike | None = None) -> Path:
    """`path`, or the embedded default file; ToyWeightsMissing (a FileNotFoundError) when absent."""
    if path is None:
        if not DEFAULT_WEIGHTS.is_file():
            raise ToyWeightsMissing(f"the toy model's weights are not built yet ({DEFAULT_WEIGHTS} is missing): "
                                    "run `loba toyworld build` first, or pass the path of a weight file")
        return DEFAULT_WEIGHTS
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ToyWeightsMissing(f"toy-world weight file not found: {resolved}")
    return resolved


def read_toy_info(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The "loba_toyworld" metadata of a weight file (configs, scaling_factor, builder entries)."""
    from safetensors import safe_open

    resolved = resolve_weights(path)
    with safe_open(str(resolved), framework="pt") as handle:
        text = (handle.metadata() or {}).get(METADATA_KEY)
    if text is None:
        raise ToyWeightsError(f"{resolved} has no '{METADATA_KEY}' metadata: not a toy-world weight file")
    info = json.loads(text)
    if info.get("format") != FORMAT_NAME or int(info.get("version", 0)) > FORMAT_VERSION:
        raise ToyWeightsError(f"{resolved}: format {info.get('format')} v{info.get('version')} is not one this LOBA reads "
                              f"({FORMAT_NAME} v{FORMAT_VERSION} or older)")
    return info


def read_toy_state(path: str | os.PathLike | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(single-file state dict as stored (fp16), metadata info). Shared by the diffusers and ComfyUI loaders."""
    from safetensors.torch import load_file

    resolved = resolve_weights(path)
    info = read_toy_info(resolved)
    if "base" in info:  # a file that stores only its differences from a base file beside it (shared_file.py)
        return _merge_base(resolved, load_file(str(resolved)), info), info
    return load_file(str(resolved)), info


def _merge_base(path: Path, state: dict[str, torch.Tensor], info: dict) -> dict[str, torch.Tensor]:
    """The complete state of a file written by shared_file.save_shared_checkpoint: the base file beside it,
    with the rows listed under info["base"]["rows"] and every tensor the file holds replaced by the file's."""
    from safetensors.torch import load_file

    base_path = path.parent / info["base"]["file"]
    if not base_path.is_file():
        raise ToyWeightsMissing(f"{path} stores only its differences from {base_path.name}, which is not beside it")
    merged = load_file(str(base_path))
    for key, ids in info["base"].get("rows", {}).items():
        merged[key] = merged[key].clone()
        merged[key][torch.tensor(ids, dtype=torch.long)] = state[key + ROWS_SUFFIX]
    merged.update({k: t for k, t in state.items() if not k.endswith(ROWS_SUFFIX)})
    return merged


def load_toy_components(path: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32) -> model.ToyComponents:
    """The toy model in diffusers classes (eval mode, no grad), weights = the file's fp16 values in `dtype`.

    path None = the embedded default file (loba/toyworld/weights/toyworld.safetensors). A flow-world file
    (flow_files.py) gives its FlowComponents: the toy Flux transformer over the base file's VAE and text encoder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .flow_files import FLOW_FORMAT, file_format, load_flow_components
    from .single_file import load_single_file_state

    if file_format(resolve_weights(path)) == FLOW_FORMAT:
        return load_flow_components(resolve_weights(path), dtype, load_toy_components)
    state, info = read_toy_state(path)
    configs = info["configs"]
    unet = UNet2DConditionModel(**configs["unet"])
    vae = AutoencoderKL(**configs["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
    load_single_file_state(state, unet, vae, text_encoder)  # copies into the fp32 parameters: exact upcast
    # diffusers pipelines read the latent scale from the VAE config; keep it and the components in step.
    vae.register_to_config(scaling_factor=float(info["scaling_factor"]))
    with tempfile.TemporaryDirectory(prefix="loba-toy-tokenizer-") as folder:
        tokenizer = model.clip_tokenizer(Path(folder))  # the tokenizer holds its vocabulary after construction
    if dtype != torch.float32:  # diffusers warns on every .to(dtype), even a no-op one
        unet, text_encoder, vae = unet.to(dtype), text_encoder.to(dtype), vae.to(dtype)
    return model.ToyComponents(unet, text_encoder, tokenizer, vae, float(info["scaling_factor"])).eval()
