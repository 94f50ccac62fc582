"""Trainable LoRA/LoCon (and LyCORIS LoHa/LoKr/DoRA) adapters attached to a frozen UNet with forward hooks.

Why not peft's layers: peft injects by replacing modules (`to_k` becomes `to_k.base_layer`), which
renames state-dict keys and mutates the one nn.Module that every ComfyUI ModelPatcher clone shares;
removing it does not give back "the model exactly as it was"; and its multiplier is a per-adapter
scaling, not a value read on each call. A forward hook never replaces or modifies the base module,
detaching only removes the hook handles, the slider multiplier is read at call time (0 skips the
adapter entirely), and the same code works on diffusers modules and on ComfyUI's comfy.ops modules
(subclasses of nn.Linear / nn.Conv2d). The lycoris-lora package is not used for the same reason (its
modules take over the base module's forward) and because the saved files must reproduce what ComfyUI's
and A1111's patchers compute, which fixes the formulas (see weight_delta.py).
"""

from . import dora, loha, lokr  # noqa: F401  (register the LyCORIS adapters)
from .lora import ADAPTERS, LoRAModule, adapter_kind
from .network import AdapterNetwork

__all__ = ["ADAPTERS", "AdapterNetwork", "LoRAModule", "adapter_kind"]
