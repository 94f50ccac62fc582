"""`fp8_base` (sd-scripts' name): the frozen denoiser's weights stored as float8 (e4m3) and computed in the
model dtype, which halves a bf16 base's weights (FLUX.1-dev: 23.8 -> 11.9 GB, what lets it train on a 24 GB card).

Every Linear and Conv2d of the denoiser keeps its weight in fp8; its forward casts the weight up to the compute
dtype, and its backward (the gradient to the layer's input, which the adapters' gradients flow through) casts it
up again from the fp8 tensor: autograd saves the one-byte weight, never a compute-dtype copy, so training holds
no second model even without gradient checkpointing. Not diffusers' `enable_layerwise_casting`: its hook casts
the parameter back to fp8 in place after the forward, under the copy autograd saved for the backward (which then
fails: "expected scalar type ... but found Float8_e4m3fn"). The layers diffusers keeps in full precision for
quality (its skip patterns: norms, patch and position embedders, the model's own list) are left as they are. The
adapters keep their float32 masters; only the frozen base is quantized, so the slider learns the fp8 model's
behaviour, which differs from the bf16 model's by its rounding.

Headless only: `loba train` loads the model itself. In ComfyUI the base's dtype is the loader's (UNETLoader's
weight_dtype fp8_e4m3fn), which Train Slider trains through as it comes.
"""

from __future__ import annotations

import re
import types

from ..errors import ConfigError

FIELD = "fp8_base"
STORAGE = "float8_e4m3fn"
# diffusers' DEFAULT_SKIP_MODULES_PATTERN (hooks/layerwise_casting.py): layers it keeps in full precision.
DEFAULT_SKIP = ("pos_embed", "patch_embed", "norm", "^proj_in$", "^proj_out$")


def check_fp8_base(config, sharded: bool = False) -> None:
    """Settings fp8 storage cannot serve, refused before any model work (config: the run's TrainConfig; sharded:
    the run shards its base with FSDP)."""
    import torch

    if not hasattr(torch, STORAGE):
        raise ConfigError(FIELD, f"this PyTorch ({torch.__version__}) has no {STORAGE}; use torch >= 2.1 or remove fp8_base")
    if config.network.algo == "dora":
        raise ConfigError(FIELD, "DoRA reads the frozen weights' norms outside the forward, where they are fp8; use "
                                 "algo = lora (or loha / lokr) with fp8_base, or remove fp8_base")
    if sharded:
        raise ConfigError(FIELD, "FSDP shards and gathers the base's parameters, which fp8 storage casts in place; "
                                 "use one of the two")
    if config.offload != "none":
        raise ConfigError(FIELD, f"offload = {config.offload} moves the layers fp8 storage casts; use one of the two "
                                 "(fp8_base already halves the base's memory)")


def store_base_in_fp8(backend) -> int:
    """Quantize the backend's denoiser to fp8 storage in place; returns the bytes its weights hold afterwards."""
    import torch

    denoiser = backend.denoiser()
    if not hasattr(denoiser, "enable_layerwise_casting"):
        raise ConfigError(FIELD, f"{type(denoiser).__name__} is not a diffusers model; fp8_base needs a diffusers "
                                 "UNet or Flux transformer (in ComfyUI, load the model as fp8 in its loader instead)")
    compute = backend.dtype
    if compute not in (torch.float32, torch.float16, torch.bfloat16):
        raise ConfigError(FIELD, f"the model's dtype {compute} cannot compute an fp8 base; set model_dtype = bf16")
    backend.pin_compute_dtype(compute)  # the parameters' dtype reads fp8 from here on
    skip = [re.compile(p) for p in (*DEFAULT_SKIP, *(getattr(denoiser, "_skip_layerwise_casting_patterns", None) or ()))]
    for name, module in denoiser.named_modules():
        # A conv that pads other than with zeros runs its own padding first: left in full precision.
        plain = isinstance(module, torch.nn.Linear) or (isinstance(module, torch.nn.Conv2d) and module.padding_mode == "zeros")
        if plain and not any(p.search(name) for p in skip):
            _store_layer(module, compute)
    return sum(t.numel() * t.element_size() for t in [*denoiser.parameters(), *denoiser.buffers()])


def _store_layer(module, compute) -> None:
    import torch

    module.weight.requires_grad_(False)
    module.weight.data = module.weight.data.to(getattr(torch, STORAGE))
    if module.bias is not None:
        module.bias.data = module.bias.data.to(compute)
    module.forward = types.MethodType(_linear_forward if isinstance(module, torch.nn.Linear) else _conv_forward, module)
    module.fp8_compute_dtype = compute


def _linear_forward(self, x):
    return _Fp8Layer.apply(x, self.weight, self.bias, self.fp8_compute_dtype, None)


def _conv_forward(self, x):
    return _Fp8Layer.apply(x, self.weight, self.bias, self.fp8_compute_dtype,
                           (self.stride, self.padding, self.dilation, self.groups))


def _fp8_layer_class():
    import torch
    import torch.nn.functional as F

    class Fp8Layer(torch.autograd.Function):
        """y = layer(x, weight cast up); the backward casts up again from the saved fp8 weight (it is frozen:
        only the input gets a gradient)."""

        @staticmethod
        def forward(ctx, x, weight8, bias, compute, conv):
            ctx.save_for_backward(weight8)
            ctx.compute, ctx.conv, ctx.x_dtype, ctx.x_shape = compute, conv, x.dtype, x.shape
            weight = weight8.to(compute)
            bias = None if bias is None else bias.to(compute)
            if conv is None:
                return F.linear(x.to(compute), weight, bias)
            stride, padding, dilation, groups = conv
            return F.conv2d(x.to(compute), weight, bias, stride, padding, dilation, groups)

        @staticmethod
        def backward(ctx, grad):
            (weight8,) = ctx.saved_tensors
            weight = weight8.to(ctx.compute)
            grad = grad.to(ctx.compute)
            if ctx.conv is None:
                grad_x = grad @ weight
            else:
                stride, padding, dilation, groups = ctx.conv
                grad_x = torch.nn.grad.conv2d_input(ctx.x_shape, weight, grad, stride, padding, dilation, groups)
            return grad_x.to(ctx.x_dtype), None, None, None, None

    return Fp8Layer


class _LazyFunction:
    """The autograd function, built at first use (this module is imported before torch is)."""

    def __init__(self):
        self._function = None

    def apply(self, *args):
        if self._function is None:
            self._function = _fp8_layer_class()
        return self._function.apply(*args)


_Fp8Layer = _LazyFunction()
