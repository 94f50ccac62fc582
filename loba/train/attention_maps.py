"""Cross-attention maps of the frozen teacher, read during its own forward (no extra model call).

Every cross-attention layer (`attn2` in diffusers' and ComfyUI's UNets) computes q = to_q(x) then k = to_k(context);
forward hooks on those two projections see both, so the map of a word is softmax(q k^T / sqrt(d)) summed over the
word's token columns, for the batch rows of the prompt whose attention is wanted. Only that [rows, N] reduction is
kept per layer. Rows are counted per layer, so micro-batched teacher forwards read the same maps.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnsupportedModelError
from ..prompts.region import AttentionRegion


def cross_attention_layers(denoiser: nn.Module) -> list[nn.Module]:
    layers = [m for name, m in denoiser.named_modules()
              if name.split(".")[-1] == "attn2" and all(hasattr(m, a) for a in ("to_q", "to_k", "heads"))]
    if not layers:
        raise UnsupportedModelError("attention regions read the UNet's cross-attention (attn2) layers, and this model "
                                    "has none (Flux and other DiT models: use a mask)")
    return layers


class AttentionCapture:
    """Per layer, the attention of batch rows [start, stop) on the context columns `positions`, as [rows, N]."""

    def __init__(self, layers: Sequence[nn.Module], positions: Sequence[int], start: int, stop: int):
        self.layers, self.positions, self.start, self.stop = list(layers), list(positions), start, stop
        self._parts: dict[int, list[torch.Tensor]] = {}  # layer (first-run order) -> its row blocks, in batch order
        self._queries: dict[int, torch.Tensor] = {}
        self._seen: dict[int, int] = {}

    def _rows(self, layer: int, batch: int) -> slice | None:
        first = self._seen.get(layer, 0)
        lo, hi = max(self.start, first), min(self.stop, first + batch)
        return slice(lo - first, hi - first) if lo < hi else None

    def _on_query(self, layer: int):
        def hook(module, args, output):
            rows = self._rows(layer, output.shape[0])
            if rows is not None:
                self._queries[layer] = output[rows].detach()
        return hook

    def _on_key(self, layer: int, heads: int):
        def hook(module, args, output):
            rows = self._rows(layer, output.shape[0])
            self._seen[layer] = self._seen.get(layer, 0) + output.shape[0]
            query = self._queries.pop(layer, None)
            if rows is None or query is None:
                return
            self._parts.setdefault(layer, []).append(_word_attention(query, output[rows].detach(), heads, self.positions))
        return hook

    @property
    def maps(self) -> list[torch.Tensor]:
        """Per layer that ran, in the order the forward ran them: [stop - start, N]."""
        return [torch.cat(parts) for parts in self._parts.values()]

    @contextlib.contextmanager
    def hooked(self) -> Iterator[AttentionCapture]:
        handles = []
        try:
            for i, layer in enumerate(self.layers):
                handles.append(layer.to_q.register_forward_hook(self._on_query(i)))
                handles.append(layer.to_k.register_forward_hook(self._on_key(i, int(layer.heads))))
            yield self
        finally:
            for handle in handles:
                handle.remove()
            self._queries.clear()


def _word_attention(query: torch.Tensor, key: torch.Tensor, heads: int, positions: Sequence[int]) -> torch.Tensor:
    """[b, N]: the attention mass of the word's tokens, mean over heads (softmax over the whole context)."""
    b, n, inner = query.shape
    d = inner // heads
    q = query.float().reshape(b, n, heads, d).transpose(1, 2)
    k = key.float().reshape(b, key.shape[1], heads, d).transpose(1, 2)
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return probs[..., list(positions)].sum(-1).mean(1)


def region_mask(maps: Sequence[torch.Tensor], latent_hw: tuple[int, int], region: AttentionRegion) -> torch.Tensor:
    """[b, 1, h, w] in 0..1: every layer's map at the latent size, averaged, scaled to 0..1 per sample (its minimum
    to 0, its peak to 1), then cut at the threshold (0: soft), inverted, grown / shrunk and feathered."""
    if not maps:
        raise RuntimeError("no cross-attention map was captured: the teacher forward did not reach an attn2 layer")
    height, width = latent_hw
    resized = [F.interpolate(_spatial(m, height, width), size=(height, width), mode="bilinear", align_corners=False)
               for m in maps]
    soft = torch.stack(resized).mean(0)
    # Min-max per sample: a word's attention never reaches 0 off the object (softmax), so only its range says where.
    low, high = soft.amin(dim=(2, 3), keepdim=True), soft.amax(dim=(2, 3), keepdim=True)
    soft = (soft - low) / (high - low).clamp_min(1e-12)
    mask = soft if region.threshold == 0 else (soft >= region.threshold).float()
    if region.invert:
        mask = 1.0 - mask
    return shape_region(mask, region.grow, region.feather)


def _spatial(flat: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[b, N] -> [b, 1, h_l, w_l], the layer's grid from its token count and the latent's aspect ratio."""
    n = flat.shape[1]
    scale = math.sqrt(height * width / n)
    h_l = max(1, round(height / scale))
    w_l = n // h_l
    if h_l * w_l != n:
        raise RuntimeError(f"a cross-attention layer has {n} queries, not a grid of the latent's {height}x{width} shape")
    return flat.reshape(flat.shape[0], 1, h_l, w_l)


def shape_region(mask: torch.Tensor, grow: int, feather: float) -> torch.Tensor:
    """[b, 1, h, w]: grown (grow > 0) or shrunk (< 0) by |grow| latent pixels, blurred with sigma = feather (kornia,
    as the Mask node does on images), clamped to 0..1."""
    if grow:
        import kornia

        kernel = torch.ones(2 * abs(grow) + 1, 2 * abs(grow) + 1, device=mask.device)
        mask = kornia.morphology.dilation(mask, kernel) if grow > 0 else kornia.morphology.erosion(mask, kernel)
    if feather > 0:
        import kornia

        size = 2 * int(3 * feather + 0.5) + 1
        mask = kornia.filters.gaussian_blur2d(mask, (size, size), (float(feather), float(feather)), border_type="replicate")
    return mask.clamp(0.0, 1.0)
