"""LoHa / LoKr modules as LoRA factors for merging: the exact update, refactored by SVD at the rank it really
has, so every merge mode (concat, sum, svd) writes a plain LoRA file that any host loads.

A LoHa/LoKr file stores a 3x3 convolution's update flattened ([out, in*9]); the merged LoRA needs the kernel
back (down [rank, in, 3, 3]), which the layer's name tells: the UNet's 3x3 convolutions are the resnet and
sampler convolutions, the same names in both naming schemes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .lycoris_keys import lycoris_update

_CONV3X3 = re.compile(r"_(conv1|conv2|in_layers_2|out_layers_3|downsamplers_\d+_conv|upsamplers_\d+_conv|0_op|[12]_conv)$")
RANK_TOLERANCE = 1e-6


def kernel_of(stem: str, columns: int) -> tuple[int, ...]:
    """The down tensor's shape after the rank: (in, 3, 3) for the UNet's 3x3 convolutions, else (columns,)."""
    if _CONV3X3.search(stem) and columns % 9 == 0:
        return (columns // 9, 3, 3)
    return (columns,)


def lycoris_factor(stem: str, state: Mapping[str, torch.Tensor], weight: float) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """(up [out, k], down [k, in*kh*kw], the file's down shape) of weight * the module's update."""
    update = lycoris_update(state).double() * weight
    u, s, vh = torch.linalg.svd(update, full_matrices=False)
    keep = max(1, int((s > s[0] * RANK_TOLERANCE).sum())) if s.numel() and s[0] > 0 else 1
    root = s[:keep].sqrt()
    up, down = (u[:, :keep] * root).float(), (root[:, None] * vh[:keep]).float()
    return up, down, (keep, *kernel_of(stem, update.shape[1]))
