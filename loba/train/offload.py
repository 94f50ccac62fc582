"""Low-VRAM training on one GPU: the frozen denoiser lives on the CPU and comes to the device piece by piece, only
for the forward that needs it (the partial denoise, the teachers, the student, previews and canaries alike).

- blocks: block swap. Each top-level block of the denoiser (every entry of a ModuleList such as down_blocks /
  up_blocks, and every other top-level child) keeps a CPU copy of its frozen weights; a forward pre-hook brings it
  to the device, a forward hook drops the device copy (the weights are frozen, so nothing is copied back).
- sequential: accelerate's cpu_offload (the hooks behind diffusers' enable_sequential_cpu_offload): leaf by leaf,
  weights on the meta device between forwards. Slowest, smallest peak.

Either way the model ends where and as it started, bit for bit, and no hook is left behind (restore in finally).
The adapters are not touched: they are forward hooks outside the denoiser's module tree, and stay on the device.
For the student pass autograd keeps the device weights it saved until backward, so offload lowers the peak of
the no-grad passes most. Gradient checkpointing recomputes inside a block during backward, after blocks mode has
moved it out, so that combination is refused (sequential's per-leaf hooks recompute fine).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Optional

import torch
from torch import nn

from ..errors import ConfigError
from ..models.backend import ModelBackend
from ..registry import Registry

OFFLOAD_MODES: Registry[Callable[..., contextlib.AbstractContextManager]] = Registry("offload mode", field="offload")


class TensorMover:
    """How a frozen tensor goes to the offload store and back: a CPU copy (pinned when CUDA is there, for fast
    copies) and a copy on the compute device. Tests replace it with a counting fake."""

    def __init__(self, device: torch.device):
        self.device = device

    def store(self, tensor: torch.Tensor) -> torch.Tensor:
        copy = tensor.detach().to("cpu", copy=True)
        return copy.pin_memory() if torch.cuda.is_available() and self.device.type == "cuda" else copy

    def bring(self, stored: torch.Tensor) -> torch.Tensor:
        return stored.to(self.device, non_blocking=True)

    def placeholder(self, stored: torch.Tensor) -> torch.Tensor:
        """What the module holds while offloaded: the CPU copy itself (no device memory)."""
        return stored


def swap_blocks(root: nn.Module) -> list[nn.Module]:
    """The swap units: each entry of a top-level ModuleList, every other top-level child."""
    blocks = []
    for child in root.children():
        blocks.extend(child if isinstance(child, nn.ModuleList) else [child])
    return blocks


def _tensors(value) -> Iterator[torch.Tensor]:
    """Every tensor in a forward's args / kwargs / output (tuples, lists, dicts, diffusers' output dataclasses)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _frozen_tensors(block: nn.Module) -> list[tuple[nn.Module, str, torch.Tensor]]:
    found = []
    for module in block.modules():
        found += [(module, name, p) for name, p in module._parameters.items() if p is not None and not p.requires_grad]
        found += [(module, name, b) for name, b in module._buffers.items() if b is not None]
    return found


class BlockSwap:
    """Block swap on `root` while active; counts the moves (moves_in / moves_out per block) for tests and logs."""

    def __init__(self, root: nn.Module, mover: TensorMover):
        self.root, self.mover = root, mover
        self.blocks = swap_blocks(root)
        self.moves_in = [0] * len(self.blocks)
        self.moves_out = [0] * len(self.blocks)
        self._originals: list[list[tuple[nn.Module, str, torch.Tensor, torch.Tensor]]] = []
        self._handles: list = []
        self._inside: set[int] = set()  # blocks whose weights are on the device now

    def _set(self, index: int, use: Callable[[torch.Tensor], torch.Tensor]) -> None:
        for module, name, _original, stored in self._originals[index]:
            target = module._parameters if name in module._parameters else module._buffers
            held = target[name]
            if isinstance(held, nn.Parameter):
                held.data = use(stored)
            else:
                target[name] = use(stored)

    def _move_in(self, index: int) -> None:
        if index not in self._inside:
            self._set(index, self.mover.bring)
            self._inside.add(index)
            self.moves_in[index] += 1

    def _move_out(self, index: int) -> None:
        if index in self._inside:
            self._set(index, self.mover.placeholder)
            self._inside.discard(index)
            self.moves_out[index] += 1

    def _before(self, index: int):
        def hook(module, args, kwargs):
            self._move_in(index)
            pending = [t for t in _tensors((args, kwargs)) if t.requires_grad]
            if pending:  # the student pass: once every input's gradient is complete, this block's backward is done
                left = [len(pending)]

                def input_done(grad):
                    left[0] -= 1
                    if left[0] == 0:
                        self._move_out(index)

                for tensor in pending:
                    tensor.register_hook(input_done)
        return hook

    def _after(self, index: int):
        def hook(module, args, kwargs, output):
            self._move_out(index)
            # Autograd saved the parameters themselves: bring the block back when its output's gradient arrives.
            for tensor in _tensors(output):
                if tensor.requires_grad:
                    tensor.register_hook(lambda grad: self._move_in(index))
        return hook

    @contextlib.contextmanager
    def active(self) -> Iterator[BlockSwap]:
        self._originals = [[(m, n, t, self.mover.store(t)) for m, n, t in _frozen_tensors(b)] for b in self.blocks]
        originals = [[(m, n, t.data if isinstance(t, nn.Parameter) else t) for m, n, t, _ in block]
                     for block in self._originals]
        try:
            for index, block in enumerate(self.blocks):
                self._handles.append(block.register_forward_pre_hook(self._before(index), with_kwargs=True))
                self._handles.append(block.register_forward_hook(self._after(index), with_kwargs=True))
                self._set(index, self.mover.placeholder)
            yield self
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles.clear()
            for index in sorted(self._inside):  # a block with no input gradient, brought in for its backward
                self._move_out(index)
            for block, saved in zip(self._originals, originals):  # the very tensors it started with, on their devices
                for (module, name, held, _), (_, _, data) in zip(block, saved):
                    target = module._parameters if name in module._parameters else module._buffers
                    if isinstance(held, nn.Parameter):
                        held.data = data
                        target[name] = held
                    else:
                        target[name] = data
            self._originals = []


@contextlib.contextmanager
def _device_pinned(backend: ModelBackend) -> Iterator[torch.device]:
    """backend.device stays the compute device while the weights are elsewhere (inputs are made there)."""
    device = backend.device
    previous = getattr(backend, "execution_device", None)
    backend.execution_device = device
    try:
        yield device
    finally:
        backend.execution_device = previous


@OFFLOAD_MODES.register("none")
@contextlib.contextmanager
def _no_offload(backend: ModelBackend, mover: Optional[TensorMover] = None) -> Iterator[None]:
    yield None


@OFFLOAD_MODES.register("blocks")
@contextlib.contextmanager
def _blocks(backend: ModelBackend, mover: Optional[TensorMover] = None) -> Iterator[BlockSwap]:
    with _device_pinned(backend) as device, BlockSwap(backend.denoiser(), mover or TensorMover(device)).active() as swap:
        yield swap


@OFFLOAD_MODES.register("sequential")
@contextlib.contextmanager
def _sequential(backend: ModelBackend, mover: Optional[TensorMover] = None) -> Iterator[None]:
    from accelerate import cpu_offload
    from accelerate.hooks import remove_hook_from_submodules

    root = backend.denoiser()
    originals = {name: (module, key, tensor) for name, (module, key, tensor) in _named_tensors(root).items()}
    # Our own CPU state dict (accelerate's default copies every tensor the same way) keeps the originals untouched.
    weights = {name: tensor.detach().to("cpu", copy=True) for name, (_, _, tensor) in originals.items()}
    try:
        with _device_pinned(backend) as device:
            cpu_offload(root, execution_device=device, offload_buffers=True, state_dict=weights)
            yield None
    finally:
        remove_hook_from_submodules(root)
        for module, key, tensor in originals.values():  # accelerate leaves the weights on meta: put the originals back
            (module._parameters if key in module._parameters else module._buffers)[key] = tensor


def _named_tensors(root: nn.Module) -> dict[str, tuple[nn.Module, str, torch.Tensor]]:
    named = {}
    for prefix, module in root.named_modules():
        for key, tensor in (*module._parameters.items(), *module._buffers.items()):
            if tensor is not None:
                named[f"{prefix}.{key}" if prefix else key] = (module, key, tensor)
    return named


def offloaded(backend: ModelBackend, mode: str, mover: Optional[TensorMover] = None):
    """The context manager of `mode` (none | blocks | sequential) around a training session."""
    chosen = OFFLOAD_MODES.get(mode)
    if mode != "none" and getattr(backend, "host_manages_memory", False):
        raise ConfigError("offload", f"offload = {mode} would fight the host's own memory management (ComfyUI offloads "
                                     "models itself: start it with --lowvram for a small card); use offload = none here")
    return chosen(backend, mover)
