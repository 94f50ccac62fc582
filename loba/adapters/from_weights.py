"""Start a slider from existing LoRA files (sd-scripts' network_weights): one file, or a weighted merge of several
made with the Merge Sliders modes (loba/sliders/merge.py), then trained like any slider.

Each layer the file(s) hold starts at their (merged) update; a layer whose update has a higher rank than the
training rank is truncated by SVD to it (the relative error is reported), a lower one fills the first columns
and the rest of the adapter starts as a fresh one (random down, zero up). With dim_from_weights every layer
takes the file's rank and alpha instead, and a single file at weight 1 loads bit for bit. Layers of the model
that no file holds start fresh. Refused before training, naming them: keys foreign to the model, and layers
the targeting does not train (widen it, e.g. train_text_encoder, or drop them from the file).

initialize_from_weights(network, backend, start) is the initializer form (a network already built).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Optional

import torch

from ..config.train_config import TrainConfig
from ..errors import AdapterFileError, ConfigError
from ..sliders.family import check_same_family
from ..sliders.kohya import ALPHA, DOWN, UP, SliderFile, load_slider
from ..sliders.merge import MERGE_MODES, Factor, merge_sliders
from .lora import LoRAModule
from .network import AdapterNetwork
from .target_spec import TargetSpec
from .targeting import select_targets
from .text_encoder import adapter_root, module_namer, select_all_targets

FIELD = "network_weights"


@dataclass(frozen=True)
class StartWeights:
    """LoRA files to start from, one weight each, and the merge mode ("sum", "concat" or "svd") for several."""

    files: tuple[SliderFile, ...]
    weights: tuple[float, ...]
    mode: str = "sum"

    def merged(self, rank: int) -> SliderFile:
        """The one file to start from: a single file at weight 1 as it is, else the merge (svd at `rank`)."""
        if len(self.files) == 1 and self.weights[0] == 1.0 and self.mode != "svd":
            return self.files[0]
        return merge_sliders(self.files, self.weights, self.mode, rank if self.mode == "svd" else None)[0]


def read_start_weights(paths: Sequence[str | os.PathLike], weights: Optional[Sequence[float]] = None,
                       mode: str = "sum") -> StartWeights:
    """Read and check the files (before any model work): readable kohya LoRAs of one family, finite weights."""
    if not paths:
        raise ConfigError(FIELD, "give at least one LoRA file")
    weights = [1.0] * len(paths) if weights is None or len(weights) == 0 else [float(w) for w in weights]
    if len(weights) != len(paths):
        raise ConfigError("network_weights_multipliers", f"got {len(weights)} multipliers for {len(paths)} files; "
                                                         "give one per file")
    if not all(math.isfinite(w) for w in weights):
        raise ConfigError("network_weights_multipliers", f"{weights} holds a non-finite number; give finite ones")
    MERGE_MODES.get(mode)
    files = tuple(load_slider(path) for path in paths)
    check_same_family(files, [str(path) for path in paths])
    return StartWeights(files, tuple(weights), mode)


def _stems(source: SliderFile, namer: Callable[[str], Optional[str]]) -> dict[str, str]:
    """{stem: adapter name}; refuses stems foreign to this model, naming them."""
    names = {stem: namer(stem) for stem in sorted(source.module_stems())}
    foreign = [stem for stem, name in names.items() if name is None]
    if foreign:
        raise ConfigError(FIELD, f"{len(foreign)} of {len(names)} layers of the LoRA file(s) are not in this "
                               f"model: {', '.join(foreign[:8])}{' ...' if len(foreign) > 8 else ''}; the file was made "
                               "for another model (family) or holds layers LOBA does not know")
    if not names:
        raise ConfigError(FIELD, "the LoRA file(s) hold no LoRA layers")
    return names


def _check_targeted(names: dict[str, str], targets: Sequence[TargetSpec]) -> None:
    trained = {spec.name for spec in targets}
    untrained = [stem for stem, name in names.items() if name not in trained]
    if untrained:
        raise ConfigError(FIELD, f"{len(untrained)} layers of the LoRA file(s) are not trained by this targeting: "
                                 f"{', '.join(untrained[:8])}{' ...' if len(untrained) > 8 else ''}; widen it (preset, "
                                 "include, train_text_encoder for lora_te keys) or start from a file without them")


def targets_from_weights(targets: Sequence[TargetSpec], source: SliderFile, names: dict[str, str]) -> list[TargetSpec]:
    """dim_from_weights: each layer the file holds at the file's rank and alpha (alpha absent: alpha = rank)."""
    by_name = {name: stem for stem, name in names.items()}
    out = []
    for spec in targets:
        stem = by_name.get(spec.name)
        if stem is None:
            out.append(spec)
            continue
        state = source.module_state(stem)
        rank = int(state[DOWN].shape[0])
        out.append(replace(spec, rank=rank, alpha=float(state[ALPHA]) if ALPHA in state else float(rank)))
    return out


def _fit(lora: LoRAModule, state: dict[str, torch.Tensor], name: str) -> float:
    """Set the adapter to the stored update (SVD-truncated to its rank when higher); returns the relative error."""
    down, up = state[DOWN].float(), state[UP].float()
    k = down.shape[0]
    alpha = float(state[ALPHA]) if ALPHA in state else float(k)
    target_down = lora.lora_down.weight
    if down[0].numel() != target_down[0].numel() or up.shape[0] != lora.lora_up.weight.shape[0]:
        raise AdapterFileError(f"{FIELD}: layer '{name}' has another shape in the file than in this model")
    factor = Factor(up.reshape(up.shape[0], k) * (alpha / k), down.reshape(k, -1), tuple(down.shape))
    error = 0.0
    if k > lora.rank:
        new_up, new_down, error = MERGE_MODES.get("svd")([factor], lora.rank)
        factor, k = Factor(new_up, new_down, factor.down_shape), lora.rank
    with torch.no_grad():
        up_weight = lora.lora_up.weight.view(lora.lora_up.weight.shape[0], lora.rank)
        up_weight.zero_()
        up_weight[:, :k] = factor.up / lora.scale
        target_down.view(lora.rank, -1)[:k] = factor.down
    return error


def _copy_exact(lora: LoRAModule, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        lora.lora_down.weight.copy_(state[DOWN].reshape(lora.lora_down.weight.shape))
        lora.lora_up.weight.copy_(state[UP].reshape(lora.lora_up.weight.shape))


def _is_exact(lora: LoRAModule, state: dict[str, torch.Tensor]) -> bool:
    alpha = float(state[ALPHA]) if ALPHA in state else float(state[DOWN].shape[0])
    return int(state[DOWN].shape[0]) == lora.rank and alpha == float(lora.alpha)


def _initialize(network: AdapterNetwork, source: SliderFile, names: dict[str, str], exact: bool) -> dict[str, float]:
    _check_targeted(names, network.targets)
    errors = {}
    for stem, name in names.items():
        lora, state = network.lora(name), source.module_state(stem)
        if exact and _is_exact(lora, state):
            _copy_exact(lora, state)  # one file, weight 1, same rank and alpha: as stored, bit for bit
            continue
        error = _fit(lora, state, name)
        if error:
            errors[stem] = error
    return errors


def _source(start: StartWeights, rank: int, backend) -> tuple[SliderFile, bool]:
    """The (merged) start file in the backend's module layout (Flux in diffusers: fused qkv split per module)."""
    source = start.merged(rank)
    exact = source is start.files[0]
    return SliderFile(backend.model_tensors(source.tensors), source.metadata, source.path), exact


def initialize_from_weights(network: AdapterNetwork, backend, start: StartWeights,
                            rank: Optional[int] = None) -> dict[str, float]:
    """Set a built network's adapters from the LoRA file(s) (svd merges at `rank`, default the largest training
    rank); returns {layer: relative SVD error} of the layers truncated to their training rank."""
    source, exact = _source(start, rank or max((spec.rank for spec in network.targets), default=1), backend)
    return _initialize(network, source, _stems(source, module_namer(backend)), exact)


def network_from_weights(backend, config: TrainConfig, start: StartWeights) -> tuple[AdapterNetwork, dict[str, float]]:
    """The network config's targeting builds (seeded as build_network is), started from the LoRA file(s); svd
    merges at network_dim, the training rank."""
    source, exact = _source(start, config.network.network_dim, backend)
    names = _stems(source, module_namer(backend))
    targets = select_all_targets(backend, config, select_targets)
    if config.network.dim_from_weights:
        targets = targets_from_weights(targets, source, names)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = AdapterNetwork(targets, adapter_root(backend, [t.name for t in targets]))
    return network, _initialize(network, source, names, exact)
