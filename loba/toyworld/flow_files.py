"""The flow toy world's weight file: the toy Flux transformer only, in diffusers' module names, float16.

The flow world reuses the shipped toy world's VAE and text encoder unchanged, so its file holds the
transformer (`transformer.<diffusers key>`) and names the base file beside it that supplies the rest
(metadata "base_world"). The metadata entry "loba_toyworld" (JSON) has its own format name, the
transformer config, the sigma shift, the context length and what the builder measured; loaders build the
transformer from THE FILE's config.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .flow_model import FLOW_CONFIG, FLOW_SAMPLING, TEXT_TOKENS, FlowComponents
from .weight_errors import MAX_FILE_BYTES, METADATA_KEY, ToyWeightsError, ToyWeightsMissing

FLOW_FORMAT = "loba-toyworld-flow"
FLOW_VERSION = 1
PREFIX = "transformer."
_RESERVED = ("format", "version", "configs", "scaling_factor", "base_world")


def flow_file_info(components: FlowComponents, base_file: str, metadata: dict | None = None) -> dict[str, Any]:
    extra = dict(metadata or {})
    clashes = sorted(set(extra) & set(_RESERVED))
    if clashes:
        raise ToyWeightsError(f"metadata keys {clashes} are reserved by the flow file format; rename them")
    config = json.loads(json.dumps(dict(components.transformer.config)))
    config = {k: v for k, v in config.items() if k in FLOW_CONFIG}
    return {"format": FLOW_FORMAT, "version": FLOW_VERSION, "base_world": base_file, "scaling_factor": components.scaling_factor,
            "configs": {"transformer": config, "shift": components.shift, "text_tokens": TEXT_TOKENS, "sampling": FLOW_SAMPLING},
            **extra}


def save_flow_checkpoint(path: str | os.PathLike, components: FlowComponents, base_file: str = "toyworld.safetensors",
                         metadata: dict | None = None) -> Path:
    """Write the transformer as fp16 (atomically); the VAE and text encoder are `base_file`'s, beside `path`."""
    from safetensors.torch import save

    from ..sliders.atomic import atomic_write_bytes

    state = {PREFIX + k: t.detach().to("cpu", torch.float16).contiguous().clone()
             for k, t in components.transformer.state_dict().items()}
    overflow = [k for k, t in state.items() if not torch.isfinite(t).all()]
    if overflow:
        raise ToyWeightsError(f"weights outside float16 range (or already non-finite): {overflow[:5]}")
    info = flow_file_info(components, base_file, metadata)
    data = save(state, metadata={METADATA_KEY: json.dumps(info, sort_keys=True)})
    if len(data) > MAX_FILE_BYTES:
        raise ToyWeightsError(f"flow checkpoint would be {len(data) / 1e6:.1f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} MB budget")
    return atomic_write_bytes(path, data)


def file_format(path: str | os.PathLike) -> str | None:
    """The "format" of a toy-world file's metadata (None when it has none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        text = (handle.metadata() or {}).get(METADATA_KEY)
    return None if text is None else json.loads(text).get("format")


def read_flow_info(path: str | os.PathLike) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        info = json.loads((handle.metadata() or {}).get(METADATA_KEY, "{}"))
    if info.get("format") != FLOW_FORMAT or int(info.get("version", 0)) > FLOW_VERSION:
        raise ToyWeightsError(f"{path}: format {info.get('format')} v{info.get('version')} is not {FLOW_FORMAT} "
                              f"v{FLOW_VERSION} or older")
    return info


def load_flow_components(path: str | os.PathLike, dtype: torch.dtype, load_base: Callable) -> FlowComponents:
    """The flow model (eval mode, no grad): the file's transformer over its base file's VAE and text encoder, which
    load_base (files.load_toy_components, handed in so the two loaders never import each other) reads."""
    from safetensors.torch import load_file

    from .flow_model import build_flow_transformer

    path = Path(path)
    info = read_flow_info(path)
    base_path = path.parent / info["base_world"]
    if not base_path.is_file():
        raise ToyWeightsMissing(f"{path} reuses the VAE and text encoder of {base_path.name}, which is not beside it")
    base = load_base(base_path, dtype)
    transformer = build_flow_transformer(info["configs"]["transformer"])
    state = {k[len(PREFIX):]: t for k, t in load_file(str(path)).items() if k.startswith(PREFIX)}
    transformer.load_state_dict(state, strict=True)  # copies into the fp32 parameters: exact upcast
    if dtype != torch.float32:
        transformer = transformer.to(dtype)
    components = FlowComponents(transformer, base.text_encoder, base.tokenizer, base.vae, float(info["scaling_factor"]),
                                float(info["configs"]["shift"]))
    return components.eval()
