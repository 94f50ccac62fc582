"""The frozen base made usable by autograd for the training's lifetime, without a second copy of it.

ComfyUI's executor runs nodes under torch.inference_mode() and its loaders build weights as inference
tensors. Autograd refuses to save an inference tensor for backward (a Linear's weight is saved to get
the input's gradient, a GroupNorm's weight likewise), and saved_tensors_hooks do not help: the check
comes before any pack hook. Cloning every parameter costs a second UNet (+5 GB for SDXL in fp16).

Instead each inference parameter and buffer is swapped for a normal tensor over the SAME memory (an
alias made with Tensor.set_ on the original storage, outside inference mode): autograd may save it,
nothing is copied, and the originals (same objects) go back afterwards. Nothing writes the base during
training (it has requires_grad=False and no optimizer sees it), so it stays bit-identical.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

Swapped = list[tuple[nn.Module, str, str, torch.Tensor]]  # (module, "_parameters" | "_buffers", name, original)


def alias(tensor: torch.Tensor) -> torch.Tensor:
    """A normal (non-inference) tensor viewing `tensor`'s memory; must be made outside inference mode."""
    if torch.is_inference_mode_enabled():
        raise RuntimeError("an alias made under inference mode would itself be an inference tensor")
    view = torch.empty(0, dtype=tensor.dtype, device=tensor.device)
    return view.set_(tensor.untyped_storage(), tensor.storage_offset(), tensor.size(), tensor.stride())


def swap_inference_tensors(root: nn.Module) -> Swapped:
    """Replace every inference parameter/buffer under `root` by a zero-copy alias; returns what to restore."""
    swapped: Swapped = []
    for module in root.modules():
        for table in ("_parameters", "_buffers"):
            tensors = getattr(module, table)
            for name, tensor in list(tensors.items()):
                if tensor is None or not tensor.is_inference():
                    continue
                same = alias(tensor.data if isinstance(tensor, nn.Parameter) else tensor)
                tensors[name] = nn.Parameter(same, requires_grad=False) if table == "_parameters" else same
                swapped.append((module, table, name, tensor))
    return swapped


def restore(swapped: Swapped) -> None:
    """Put the original tensors (the same objects) back, last swapped first."""
    for module, table, name, original in reversed(swapped):
        getattr(module, table)[name] = original


@contextlib.contextmanager
def usable_for_backward(root: nn.Module) -> Iterator[Swapped]:
    swapped = swap_inference_tensors(root)
    try:
        yield swapped
    finally:
        restore(swapped)
