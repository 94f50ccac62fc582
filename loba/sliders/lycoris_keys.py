"""LyCORIS key layouts in kohya-named files (LoHa, LoKr, DoRA), as ComfyUI's weight adapters and A1111's
networks read them: which keys make a module, their checks, and the full update a module stores.

<stem>.hada_w1_a / hada_w1_b / hada_w2_a / hada_w2_b [/ hada_t1 / hada_t2] / alpha       LoHa
<stem>.lokr_w1 | lokr_w1_a + lokr_w1_b, lokr_w2 | lokr_w2_a + lokr_w2_b [/ lokr_t2] / alpha   LoKr
<stem>.lora_down.weight / lora_up.weight / alpha / dora_scale                              DoRA
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import AdapterFileError

LOHA_KEYS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2")
LOKR_KEYS = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")
DORA_KEY = "dora_scale"
SUFFIXES = LOHA_KEYS + LOKR_KEYS + (DORA_KEY,)


def layout_of(found: set[str]) -> str:
    if "hada_w1_a" in found:
        return "loha"
    if found & {"lokr_w1", "lokr_w1_a"}:
        return "lokr"
    return "dora" if DORA_KEY in found else "lora"


def check_lycoris_module(stem: str, state: Mapping[str, torch.Tensor], where) -> None:
    """The partners a LoHa/LoKr module needs, all in floating point and finite (shapes: update_shape)."""
    found = set(state)
    layout = layout_of(found)
    if layout == "loha":
        needed = [("hada_w1_a",), ("hada_w1_b",), ("hada_w2_a",), ("hada_w2_b",)]
        if found & {"hada_t1", "hada_t2"}:
            needed += [("hada_t1",), ("hada_t2",)]
    else:
        needed = [("lokr_w1", "lokr_w1_a"), ("lokr_w2", "lokr_w2_a")]
        needed += [("lokr_w1_b",)] if "lokr_w1_a" in found else []
        needed += [("lokr_w2_b",)] if "lokr_w2_a" in found else []
    for options in needed:
        if not found & set(options):
            raise AdapterFileError(f"{where}: '{stem}' ({layout}) has no {' or '.join(options)} "
                                   f"(found: {', '.join(sorted(found))})")
    for key, tensor in state.items():
        if not tensor.dtype.is_floating_point or not bool(torch.isfinite(tensor).all()):
            raise AdapterFileError(f"{where}: '{stem}' {key} is not finite floating point; the file is damaged")
    update_shape(state, stem, where)


def _mm(state: Mapping[str, torch.Tensor], a: str, b: str) -> torch.Tensor:
    return state[a].float().flatten(1) @ state[b].float().flatten(1)


def _tucker(t: torch.Tensor, b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return torch.einsum("i j k l, j r, i p -> p r k l", t.float(), b.float(), a.float())


def update_shape(state: Mapping[str, torch.Tensor], stem: str = "", where="") -> tuple[int, int]:
    """(out, in * kh * kw) of the weight a LoHa/LoKr module patches."""
    try:
        weight = raw_update(state)
    except RuntimeError as exc:
        raise AdapterFileError(f"{where}: '{stem}' has inconsistent shapes ({exc})") from None
    return int(weight.shape[0]), int(weight[0].numel())


def raw_update(state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The module's update before alpha / rank, as ComfyUI computes it (2-d, or 4-d for tucker forms)."""
    if "hada_w1_a" in state:
        if "hada_t1" in state:
            return (_tucker(state["hada_t1"], state["hada_w1_b"], state["hada_w1_a"])
                    * _tucker(state["hada_t2"], state["hada_w2_b"], state["hada_w2_a"]))
        return _mm(state, "hada_w1_a", "hada_w1_b") * _mm(state, "hada_w2_a", "hada_w2_b")
    w1 = state["lokr_w1"].float() if "lokr_w1" in state else _mm(state, "lokr_w1_a", "lokr_w1_b")
    if "lokr_w2" in state:
        w2 = state["lokr_w2"].float()
    elif "lokr_t2" in state:
        w2 = _tucker(state["lokr_t2"], state["lokr_w2_b"], state["lokr_w2_a"])
    else:
        w2 = _mm(state, "lokr_w2_a", "lokr_w2_b")
    if w2.ndim == 4:
        w1 = w1[:, :, None, None]
    return torch.kron(w1.contiguous(), w2.contiguous())  # kron views its inputs: einsum output may be strided


def lycoris_scale(state: Mapping[str, torch.Tensor]) -> float:
    """alpha / rank with ComfyUI's rank: LoHa w1_b rows; LoKr the factored block's rows (1 when none is)."""
    alpha = state.get("alpha")
    if "hada_w1_a" in state:
        return float(alpha) / state["hada_w1_b"].shape[0] if alpha is not None else 1.0
    dim = None
    if "lokr_w1" not in state:
        dim = state["lokr_w1_b"].shape[0]
    if "lokr_w2" not in state:
        dim = state["lokr_w2_b"].shape[0]
    return float(alpha) / dim if alpha is not None and dim is not None else 1.0


def lycoris_update(state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The full update [out, in * kh * kw] of a LoHa/LoKr module, scale included (float32)."""
    weight = raw_update(state) * lycoris_scale(state)
    return weight.reshape(weight.shape[0], -1)
