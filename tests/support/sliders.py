"""Slider helpers for tests: write a bare network as a file, and the update a file's module adds (kohya's
definition, computed independently of loba.sliders.merge so it can check it)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from loba.adapters import AdapterNetwork
from loba.sliders.kohya import ALPHA, DOWN, UP, SliderFile, network_metadata, slider_tensors, write_slider_file


def save_slider(path: str | os.PathLike, network: AdapterNetwork, kohya_name: Callable[[str], str], *,
                metadata: Mapping[str, object] | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """A network as a kohya file through the engine's one write path; non-string metadata stored as JSON."""
    text = network_metadata(network)
    for key, value in (metadata or {}).items():
        text[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return write_slider_file(path, slider_tensors(network, kohya_name), text, dtype)


def module_delta(source: SliderFile, stem: str) -> torch.Tensor:
    """The update one module adds at strength 1, [out, in*k*k]: up @ down * alpha / rank."""
    state = source.module_state(stem)
    down, up = state[DOWN].float().flatten(1), state[UP].float().flatten(1)
    rank = down.shape[0]
    alpha = float(state[ALPHA]) if ALPHA in state else float(rank)
    return up @ down * (alpha / rank)


def random_toy_slider(path: str | os.PathLike) -> Path:
    """A random attention slider on the embedded toy UNet: strong enough that w = +-1 visibly moves the images."""
    from loba.adapters.targeting import select_targets
    from loba.config import NetworkConfig
    from loba.models.naming import KohyaNames
    from loba.toyworld.sampling import load_toy_components

    unet = load_toy_components().unet
    torch.manual_seed(1)
    network = AdapterNetwork(select_targets(unet, NetworkConfig(preset="attention", network_alpha=4.0)), unet)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_slider(path, network, KohyaNames(unet, "sd1").kohya_name)
