"""Gradient checkpointing for ComfyUI's UNetModel and Flux (diffusers models have their own switch).

UNetModel._forward does not call its TimestepEmbedSequential blocks as modules: it hands each block to
forward_timestep_embed, which calls the block's layers (ResBlock, SpatialTransformer, Upsample, ...) one
by one. So every layer of input_blocks, middle_block and output_blocks (every transformer block of a
SpatialTransformer) gets an instance-level forward
that runs the class forward under torch.utils.checkpoint (non-reentrant: kwargs, hooks and the
adapter's forward hooks inside work, and it recomputes in backward what it did not keep). The
instance attribute shadows the class method only on this module tree, and removing it restores the
model exactly (ModelPatcher clones share this one module, so the state lives on the module).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

BLOCKS = ("input_blocks", "middle_block", "output_blocks")
# Flux: each double (img + txt stream) and single (joint stream) block is one checkpoint, as diffusers' Flux does.
FLUX_BLOCKS = ("double_blocks", "single_blocks")


def _copies(values):
    return [v.clone() if isinstance(v, torch.Tensor) else v for v in values]


class CheckpointedForward:
    """A layer's forward that keeps only its inputs for backward and recomputes the rest there.

    Flux's blocks add their residuals into their inputs in place (txt += ..., x += ...), which would change the very
    tensors the checkpoint keeps: with copy_inputs the checkpointed function works on copies of them."""

    def __init__(self, forward, previous=None, copy_inputs: bool = False):
        self.forward = forward
        self.previous = previous  # an instance-level forward someone else set, put back by disable()
        self.copy_inputs = copy_inputs

    def _on_copies(self, *args, **kwargs):
        return self.forward(*_copies(args), **dict(zip(kwargs, _copies(kwargs.values()))))

    def __call__(self, *args, **kwargs):
        if not torch.is_grad_enabled():
            return self.forward(*args, **kwargs)  # teachers and denoise: nothing to save, nothing to recompute
        function = self._on_copies if self.copy_inputs else self.forward
        return checkpoint(function, *args, use_reentrant=False, **kwargs)


def checkpoint_layers(unet: nn.Module) -> Iterator[nn.Module]:
    """The layers of the UNet's input, middle and output blocks, in forward order; a SpatialTransformer
    counts as its transformer blocks (SDXL stacks ten of them: recomputing all ten at once would hold all
    their activations in backward, so each is its own checkpoint, as diffusers does). Flux: its blocks themselves."""
    for name in FLUX_BLOCKS:
        blocks = getattr(unet, name, None)
        if isinstance(blocks, nn.ModuleList):
            yield from blocks
    for name in BLOCKS:
        blocks = getattr(unet, name, None)
        if blocks is None:
            continue
        for block in blocks if isinstance(blocks, nn.ModuleList) else [blocks]:
            for layer in block.children():
                inner = getattr(layer, "transformer_blocks", None)
                yield from inner if isinstance(inner, nn.ModuleList) else [layer]


def is_flux_block(layer: nn.Module) -> bool:
    return type(layer).__name__ in ("DoubleStreamBlock", "SingleStreamBlock")


def is_enabled(unet: nn.Module) -> bool:
    return any(isinstance(layer.__dict__.get("forward"), CheckpointedForward) for layer in checkpoint_layers(unet))


def enable(unet: nn.Module) -> int:
    """Checkpoint every block layer (idempotent); returns how many layers are checkpointed."""
    count = 0
    for layer in checkpoint_layers(unet):
        if not isinstance(layer.__dict__.get("forward"), CheckpointedForward):
            layer.forward = CheckpointedForward(layer.forward, layer.__dict__.get("forward"), is_flux_block(layer))
        count += 1
    return count


def disable(unet: nn.Module) -> None:
    for layer in checkpoint_layers(unet):
        wrapper = layer.__dict__.get("forward")
        if isinstance(wrapper, CheckpointedForward):
            if wrapper.previous is None:
                del layer.forward
            else:
                layer.forward = wrapper.previous



def _copy_input(module, args):
    if not torch.is_grad_enabled():
        return None
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


@contextlib.contextmanager
def copied_flux_inputs(root: nn.Module) -> Iterator[None]:
    """For the training's lifetime: Flux's LayerNorms read copies of their inputs (hooks removed afterwards).

    Flux's blocks add their residuals in place (x += ..., txt += ...) into the very tensor their pre-norm LayerNorm
    saved for backward; ComfyUI never backpropagates through them, training does and autograd refuses the changed
    tensor. With a copy the norm keeps its own (one activation per norm call; the result is the same)."""
    handles = []
    try:
        for name in FLUX_BLOCKS:
            for block in getattr(root, name, None) or []:
                handles += [m.register_forward_pre_hook(_copy_input) for m in block.modules() if isinstance(m, nn.LayerNorm)]
        yield
    finally:
        for handle in handles:
            handle.remove()
