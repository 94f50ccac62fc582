"""Merging sliders (any kohya LoRA/LoCon, LyCORIS LoHa/LoKr converted to LoRA) with weights into one file.

Every mode starts from the exact merged update of each module, sum_i w_i * (alpha_i / rank_i) * up_i @ down_i,
and differs only in how it stores it:
- `concat`: the ranks side by side (rank = the sum of the ranks); exact, and the cheapest to compute;
- `sum`: the exact sum refactored by SVD at the rank it really has (never more than concat's);
- `svd`: the sum truncated by SVD to a chosen rank; smaller files, with the relative error reported.
A merged file loads like any LoRA (alpha = rank, so its scale is 1), at any strength, in any host.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import AdapterFileError, ConfigError
from ..registry import Registry
from .family import check_same_family
from .kohya import ALPHA, DOWN, UP, SliderFile
from .lycoris_keys import DORA_KEY
from .lycoris_merge import lycoris_factor
from .validate import validate_tensors

# Singular values below this fraction of the largest are numerical noise: `sum` drops them.
RANK_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Factor:
    """One module's update as up [out, r] @ down [r, in*k*k], with the weight and alpha/rank folded into up."""

    up: torch.Tensor
    down: torch.Tensor
    down_shape: tuple[int, ...]  # the file's down shape (conv kernels kept), rank first


@dataclass(frozen=True)
class MergeReport:
    mode: str
    modules: int
    ranks: dict[str, int]
    relative_error: float  # Frobenius norm of what `svd` dropped over the merged update's norm (0 when exact)


Merger = Callable[[list[Factor], Optional[int]], tuple[torch.Tensor, torch.Tensor, float]]
MERGE_MODES: Registry[Merger] = Registry("merge mode", "mode")


def _factors(source: SliderFile, stem: str, weight: float) -> Factor:
    state = source.module_state(stem)
    if DORA_KEY in state:
        raise AdapterFileError(f"{source.path or 'a slider'}: '{stem}' is DoRA, whose update depends on the base model's "
                               "weights; merging needs them: bake it into the model (Bake Slider) instead")
    if DOWN not in state:  # LoHa / LoKr: their exact update, refactored as a LoRA
        return Factor(*lycoris_factor(stem, state, weight))
    down, up = state[DOWN].float(), state[UP].float()
    rank = down.shape[0]
    alpha = float(state[ALPHA]) if ALPHA in state else float(rank)
    return Factor(up.reshape(up.shape[0], rank) * (weight * alpha / rank), down.reshape(rank, -1), tuple(down.shape))


@MERGE_MODES.register("concat")
def _concat(factors: list[Factor], rank: Optional[int]) -> tuple[torch.Tensor, torch.Tensor, float]:
    return torch.cat([f.up for f in factors], dim=1), torch.cat([f.down for f in factors], dim=0), 0.0


def _svd(factors: list[Factor], keep: Callable[[torch.Tensor], int]) -> tuple[torch.Tensor, torch.Tensor, float]:
    up, down, _ = _concat(factors, None)
    # Orthogonalize the thin factors first: the SVD of the small core equals that of up @ down, without
    # ever forming the full [out, in] matrix.
    q_up, r_up = torch.linalg.qr(up.double())
    q_down, r_down = torch.linalg.qr(down.double().T)
    u, s, vh = torch.linalg.svd(r_up @ r_down.T)
    k = max(1, min(keep(s), s.numel()))
    dropped = float(s[k:].square().sum().sqrt() / s.square().sum().sqrt().clamp_min(1e-30))
    root = s[:k].sqrt()
    new_up = (q_up @ u[:, :k]) * root
    new_down = root[:, None] * (vh[:k] @ q_down.T)
    return new_up.float(), new_down.float(), dropped


@MERGE_MODES.register("sum")
def _exact_sum(factors: list[Factor], rank: Optional[int]) -> tuple[torch.Tensor, torch.Tensor, float]:
    return _svd(factors, lambda s: int((s > s[0] * RANK_TOLERANCE).sum()) if s.numel() and s[0] > 0 else 1)


@MERGE_MODES.register("svd")
def _truncated(factors: list[Factor], rank: Optional[int]) -> tuple[torch.Tensor, torch.Tensor, float]:
    if not rank or rank < 1:
        raise ConfigError("rank", "the svd merge mode needs a rank >= 1, e.g. 8")
    return _svd(factors, lambda s: rank)


def _check_shapes(stem: str, factors: list[Factor], names: list[str]) -> None:
    outs = {f.up.shape[0] for f in factors}
    ins = {math.prod(f.down_shape[1:]) for f in factors}  # a LoHa/LoKr 1x1 conv is stored flat: same columns
    if len(outs) > 1 or len(ins) > 1:
        raise AdapterFileError(f"'{stem}' has different layer shapes in {', '.join(names)}: "
                               "these LoRAs were made for different models and cannot be merged")


def _check_sources(sources: Sequence[SliderFile], weights: Sequence[float], names: list[str]) -> None:
    """Refused before any work: broken tensors, non-finite weights, sources of different model families."""
    for source, weight, name in zip(sources, weights, names):
        validate_tensors(source.tensors, name)
        if not math.isfinite(float(weight)):
            raise ConfigError("weights", f"the weight of {name} is {weight}; give a finite number, e.g. 1.0")
    check_same_family(sources, names)


def merge_sliders(sources: Sequence[SliderFile], weights: Sequence[float], mode: str = "concat",
                  rank: Optional[int] = None) -> tuple[SliderFile, MergeReport]:
    """One kohya file holding sum_i weights[i] * sources[i] (modules missing from a source count as 0)."""
    merger = MERGE_MODES.get(mode)
    if not sources:
        raise ConfigError("sliders", "give at least one slider to merge")
    if len(weights) != len(sources):
        raise ConfigError("weights", f"got {len(weights)} weights for {len(sources)} sliders; give one weight per slider")
    names = [s.path or f"slider {i + 1}" for i, s in enumerate(sources)]
    _check_sources(sources, weights, names)
    stems = sorted(set().union(*(s.module_stems() for s in sources)))
    tensors: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    worst = 0.0
    for stem in stems:
        holders = [(s, w, n) for s, w, n in zip(sources, weights, names) if stem in s.module_stems()]
        factors = [_factors(s, stem, float(w)) for s, w, _ in holders]
        _check_shapes(stem, factors, [n for *_, n in holders])
        up, down, error = merger(factors, rank)
        worst = max(worst, error)
        k = down.shape[0]
        kernel = max((f.down_shape[1:] for f in factors), key=len)  # a LoRA's [in, 1, 1] over a flat LoHa
        tensors[f"{stem}.{DOWN}"] = down.reshape(k, *kernel).contiguous()
        tensors[f"{stem}.{UP}"] = up.reshape(up.shape[0], k, *([1, 1] if len(kernel) == 3 else [])).contiguous()
        tensors[f"{stem}.{ALPHA}"] = torch.tensor(float(k))
        ranks[stem] = k
    report = MergeReport(mode, len(stems), ranks, worst)
    return SliderFile(tensors, _merged_metadata(sources, weights, report)), report


def _merged_metadata(sources: Sequence[SliderFile], weights: Sequence[float], report: MergeReport) -> dict[str, str]:
    rank = max(report.ranks.values(), default=0)
    metadata = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(float(rank)),
                "loba_merge": json.dumps({"mode": report.mode, "weights": [float(w) for w in weights],
                                          "sources": [s.path for s in sources], "relative_error": report.relative_error})}
    first = sources[0].metadata
    for key in ("ss_base_model_version", "ss_v2", "ss_v_parameterization"):
        if key in first:
            metadata[key] = first[key]
    return metadata
