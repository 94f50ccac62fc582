"""Text-encoder LoRA: which CLIP layers it adapts, how its adapters are named, and kohya's lora_te keys.

One AdapterNetwork holds the UNet's and the text encoders' adapters. A text-encoder adapter is named
"te<N>:<module name inside encoder N>" (N from 1, in the backend's encoder order: CLIP-L, then SDXL's CLIP-G);
UNet names have no ":", so the two never collide and old (UNet-only) networks, checkpoints and files keep
their names. AdapterRoot resolves both kinds, so the network attaches its hooks to every module it adapts.

kohya's file keys name a layer by its place in the encoder (sd-scripts' networks/lora.py; ComfyUI's
comfy/lora.py model_lora_keys_clip reads them): lora_te_text_model_encoder_layers_<i>_<leaf> for SD1/SD2,
lora_te1_ (CLIP-L) and lora_te2_ (CLIP-G) for SDXL. Host module names differ (transformers 5 flattened
CLIPTextModel to encoder.layers..., ComfyUI keeps text_model.encoder.layers...), so the stem is built from
the encoder.layers.<i>.<leaf> tail alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Optional

from torch import nn

from ..config.train_config import NetworkConfig, TrainConfig
from ..errors import ConfigError
from .lora import adapter_kind
from .target_spec import TargetSpec

SEPARATOR = ":"
_LAYER = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)\.((?:self_attn\.(?:q_proj|k_proj|v_proj|out_proj))|(?:mlp\.fc[12]))$")
TEXT_ENCODER_PRESETS: dict[str, Callable[[str], bool]] = {
    "attention_mlp": lambda leaf: True,
    "attention": lambda leaf: leaf.startswith("self_attn."),
    "mlp": lambda leaf: leaf.startswith("mlp."),
}


def text_encoder_name(index: int, module_name: str) -> str:
    """The adapter name of module `module_name` of text encoder `index` (0-based)."""
    return f"te{index + 1}{SEPARATOR}{module_name}"


def split_name(name: str) -> Optional[tuple[int, str]]:
    """(0-based encoder index, module name) of a text-encoder adapter name; None for a UNet name."""
    head, sep, tail = name.partition(SEPARATOR)
    if not sep or not head.startswith("te") or not head[2:].isdigit():
        return None
    return int(head[2:]) - 1, tail


def has_text_encoder(names: Iterable[str]) -> bool:
    return any(split_name(name) is not None for name in names)


class AdapterRoot:
    """Looks adapter names up in the denoiser or, for "te<N>:..." names, in text encoder N (get_submodule only:
    what AdapterNetwork and targeting.describe ask of a root)."""

    def __init__(self, denoiser: nn.Module, text_encoders: Sequence[nn.Module]):
        self.denoiser = denoiser
        self.text_encoders = list(text_encoders)

    def get_submodule(self, name: str) -> nn.Module:
        split = split_name(name)
        if split is None:
            return self.denoiser.get_submodule(name)
        index, module_name = split
        if index >= len(self.text_encoders):
            raise AttributeError(f"this model has {len(self.text_encoders)} text encoder(s), not {index + 1}")
        return self.text_encoders[index].get_submodule(module_name)


def adapter_root(backend, names: Iterable[str]):
    """The denoiser itself for a UNet-only network (exactly as before), else an AdapterRoot over the backend."""
    if not has_text_encoder(names):
        return backend.denoiser()
    return AdapterRoot(backend.denoiser(), backend.text_encoder_modules())


def kohya_prefix(family: str, index: int) -> str:
    return f"lora_te{index + 1}_" if family == "sdxl" else "lora_te_"


def kohya_text_stem(family: str, index: int, module_name: str) -> Optional[str]:
    """lora_te[N]_text_model_encoder_layers_<i>_<leaf> of a CLIP layer kohya adapts; None for other modules."""
    match = _LAYER.search(module_name)
    if match is None:
        return None
    layer, leaf = match.groups()
    return f"{kohya_prefix(family, index)}text_model_encoder_layers_{layer}_{leaf.replace('.', '_')}"


def text_encoder_stems(family: str, encoders: Sequence[nn.Module]) -> dict[str, str]:
    """{kohya stem: adapter name} of every CLIP layer a text-encoder LoRA can adapt in these encoders."""
    stems = {}
    for index, encoder in enumerate(encoders):
        for module_name, module in encoder.named_modules():
            stem = kohya_text_stem(family, index, module_name)
            if stem is not None and adapter_kind(module) == "lora":
                stems[stem] = text_encoder_name(index, module_name)
    return stems


def text_encoder_targets(family: str, encoders: Sequence[nn.Module], config: TrainConfig) -> list[TargetSpec]:
    """The text-encoder layers config.network trains, with text_encoder_lr as their lr multiplier."""
    network: NetworkConfig = config.network
    if not encoders:
        raise ConfigError("train_text_encoder", "this model's host gives LOBA no text encoder to train; "
                                                "set train_text_encoder = off")
    chosen = TEXT_ENCODER_PRESETS[network.text_encoder_preset]
    excludes = [re.compile(pattern) for pattern in network.text_encoder_exclude]
    te_lr = config.optimizer.text_encoder_lr
    multiplier = te_lr / config.optimizer.learning_rate if te_lr > 0 else 1.0
    targets = []
    for stem, name in text_encoder_stems(family, encoders).items():
        leaf = _LAYER.search(split_name(name)[1]).group(2)
        if chosen(leaf) and not any(p.search(stem) for p in excludes):
            targets.append(TargetSpec(name, "lora", network.network_dim, network.network_alpha, multiplier))
    if not targets:
        raise ConfigError("text_encoder_exclude", f"text_encoder_preset '{network.text_encoder_preset}' with exclude "
                          f"{list(network.text_encoder_exclude)} selects no text-encoder layer; loosen the exclude")
    return targets


def select_all_targets(backend, config: TrainConfig, select_unet: Callable) -> list[TargetSpec]:
    """The UNet's targets (unless train_text_encoder = only) and the text encoders' (unless off)."""
    mode = config.network.train_text_encoder
    targets = [] if mode == "only" else list(select_unet(backend.denoiser(), config.network))
    if mode != "off":
        targets += text_encoder_targets(backend.family, backend.text_encoder_modules(), config)
    return targets


def kohya_namer(backend) -> Callable[[str], str]:
    """Adapter name -> kohya stem: the backend's own naming for UNet layers, lora_te* for text-encoder ones."""
    def name(adapter_name: str) -> str:
        split = split_name(adapter_name)
        if split is None:
            return backend.kohya_name(adapter_name)
        stem = kohya_text_stem(backend.family, *split)
        if stem is None:
            raise ConfigError("train_text_encoder", f"text-encoder module '{split[1]}' has no kohya name")
        return stem

    return name


def module_namer(backend) -> Callable[[str], Optional[str]]:
    """kohya stem -> adapter name (UNet or text encoder), None when the stem is foreign to this model."""
    stems: Optional[dict[str, str]] = None

    def name(stem: str) -> Optional[str]:
        nonlocal stems
        if not stem.startswith("lora_te"):
            return backend.module_name_from_kohya(stem)
        if stems is None:
            stems = text_encoder_stems(backend.family, backend.text_encoder_modules())
        return stems.get(stem)

    return name
