"""A set of LoRA/LoCon adapters attached to a model with forward hooks."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import AdapterFileError, UnsupportedModelError
from .dropout import AdapterDropout
from .lora import ADAPTERS, LoRAModule, adapter_kind
from .target_spec import TargetSpec

STATE_KEYS = LoRAModule.STATE_KEYS
# The tensor that tells each LyCORIS layout apart in a file (or a stored state); plain LoRA otherwise.
ALGO_MARKERS = (("hada_w1_a", "loha"), ("lokr_w1", "lokr"), ("dora_scale", "dora"))
# The tensor whose first dimension is the rank, per algorithm.
RANK_KEYS = {"loha": ("hada_w1_b", 0), "lokr": ("lokr_w2_b", 0), "dora": ("lora_down.weight", 0)}


def algo_of(tensors: Mapping[str, torch.Tensor]) -> str:
    """'loha', 'lokr', 'dora', or 'lora' (LoRA/LoCon) from the tensor names of one module."""
    return next((algo for marker, algo in ALGO_MARKERS if marker in tensors), "lora")


def _key(name: str) -> str:
    # nn.ModuleDict refuses dots in keys.
    return name.replace(".", "__")


class AdapterNetwork(nn.Module):
    """LoRA modules keyed by the dotted name of the base module they adapt.

    `multiplier` is read by every hook at call time, so one attached network serves the teacher
    passes (multiplier 0: hooks return None and the base output is untouched) and the +/- slider
    passes without re-attaching.
    """

    def __init__(self, targets: Iterable[TargetSpec], root: nn.Module):
        super().__init__()
        self.targets: list[TargetSpec] = []
        self.names: list[str] = []
        self.loras = nn.ModuleDict()
        self.lr_multipliers: dict[str, float] = {}
        for spec in targets:
            if spec.name in self.lr_multipliers:
                raise ValueError(f"module '{spec.name}' is targeted twice")
            base = _find(root, spec.name)
            lora = ADAPTERS.get(spec.kind)(base, spec.rank, spec.alpha)  # initialized on CPU: same seed, same slider
            # Live on the model's device from the start, so an optimizer (or a resumed optimizer state)
            # created before attach() sees the parameters where they will be used.
            self.loras[_key(spec.name)] = lora.to(_device_of(base))
            self.targets.append(spec)
            self.names.append(spec.name)
            self.lr_multipliers[spec.name] = float(spec.lr_multiplier)
        self._handles: list[RemovableHandle] = []
        self._multiplier = 1.0
        self.dropout = AdapterDropout()  # all zero: no draws, the hooks' plain path
        self.ema = None  # an AdapterEMA when the run keeps one (loba/adapters/ema.py)

    # -- multiplier -------------------------------------------------------------------------
    @property
    def multiplier(self) -> float:
        return self._multiplier

    @multiplier.setter
    def multiplier(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"adapter multiplier must be finite, got {value}")
        self._multiplier = value

    def lora(self, name: str) -> LoRAModule:
        return self.loras[_key(name)]

    def items(self) -> Iterator[tuple[str, LoRAModule]]:
        for name in self.names:
            yield name, self.lora(name)

    # -- hooks ------------------------------------------------------------------------------
    @property
    def is_attached(self) -> bool:
        return bool(self._handles)

    def attach(self, root: nn.Module, device: torch.device | str | None = None) -> None:
        """Hook every adapted module of `root`; adapter params move to the module's device (stay float32)."""
        if self._handles:
            raise RuntimeError("this adapter network is already attached; detach() it first")
        bases = {name: _find(root, name) for name in self.names}  # all lookups first: nothing half-attached
        for name, base in bases.items():
            if not self.lora(name).fits(base):
                raise UnsupportedModelError(f"module '{name}' has a different shape than the adapter built for it")
        try:
            for name, base in bases.items():
                lora = self.lora(name)
                lora.to(device=device if device is not None else _device_of(base))
                self._handles.append(base.register_forward_hook(self._hook(lora), with_kwargs=True))
        except BaseException:
            self.detach()
            raise

    def detach(self) -> None:
        """Remove every hook (safe to call twice or when never attached)."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()

    @contextlib.contextmanager
    def attached(self, root: nn.Module, device: torch.device | str | None = None) -> Iterator[AdapterNetwork]:
        self.attach(root, device)
        try:
            yield self
        finally:
            self.detach()

    def _hook(self, lora: LoRAModule):
        def add_delta(module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor):
            multiplier = self._multiplier
            if multiplier == 0:
                return None  # bit-identical base output, and no adapter compute for teacher passes
            x = args[0] if args else next(iter(kwargs.values()))
            drop = self.dropout if self.dropout.enabled and self.training and torch.is_grad_enabled() else None
            if drop is not None and drop.skip_module(output.device):
                return None
            return output + lora.delta_scaled(x, multiplier, module, drop).to(output.dtype)

        return add_delta

    # -- optimizer and state ----------------------------------------------------------------
    def param_groups(self, base_lr: float) -> list[dict]:
        """One optimizer group per distinct lr multiplier; multiplier-0 layers are frozen instead."""
        groups: dict[float, list[nn.Parameter]] = {}
        for name, lora in self.items():
            multiplier = self.lr_multipliers.get(name, 1.0)
            lora.requires_grad_(multiplier != 0)
            if multiplier != 0:
                groups.setdefault(multiplier, []).extend(lora.parameters())
        return [{"params": params, "lr": base_lr * mult, "lr_multiplier": mult} for mult, params in groups.items()]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def module_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """Per dotted module name: copies of the adapter's file tensors (LoRA: lora_down.weight, lora_up.weight
        and alpha), float32."""
        state = {}
        for name, lora in self.items():
            tensors = lora.state_dict()
            state[name] = {key: tensors[key].detach().clone() for key in lora.STATE_KEYS}
        return state

    def load_module_state(self, state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """Copy tensors exactly (cast to float32); the module names must be the same set."""
        missing, extra = set(self.names) - set(state), set(state) - set(self.names)
        if missing or extra:
            raise AdapterFileError(f"adapter state does not match this network: missing {sorted(missing)[:5]}, "
                                   f"unexpected {sorted(extra)[:5]}")
        with torch.no_grad():
            for name, lora in self.items():
                targets = dict(lora.named_parameters()) | dict(lora.named_buffers())
                for key in lora.STATE_KEYS:
                    if key not in state[name]:
                        raise AdapterFileError(f"module '{name}': the {lora.algo} adapter needs '{key}', "
                                               f"the state has {', '.join(sorted(state[name]))}")
                    _copy_into(targets[key], state[name][key], name, key)

    @classmethod
    def from_state(cls, root: nn.Module, state: Mapping[str, Mapping[str, torch.Tensor]]) -> AdapterNetwork:
        """Rebuild a network whose ranks and alphas come from the tensors, then load them."""
        specs = [_spec_from_tensors(root, name, tensors) for name, tensors in state.items()]
        network = cls(specs, root)
        for name, tensors in state.items():
            adopt = getattr(network.lora(name), "adopt_shapes", None)
            if adopt is not None:
                adopt(tensors, name)
        network.load_module_state({name: _with_alpha(tensors, network.lora(name)) for name, tensors in state.items()})
        return network


def _spec_from_tensors(root: nn.Module, name: str, tensors: Mapping[str, torch.Tensor]) -> TargetSpec:
    base = _find(root, name, error=AdapterFileError)
    kind, algo = adapter_kind(base), algo_of(tensors)
    rank_key, dim = RANK_KEYS.get(algo, ("lora_down.weight", 0))
    rank_tensor = tensors.get(rank_key)
    if kind is None or rank_tensor is None or rank_tensor.ndim not in (2, 4):
        raise AdapterFileError(f"module '{name}': cannot build an adapter for {type(base).__name__} "
                               "from these tensors")
    alpha = tensors.get("alpha")
    rank = int(rank_tensor.shape[dim])
    return TargetSpec(name, kind if algo == "lora" else algo, rank, float(alpha) if alpha is not None else float(rank))


def _find(root: nn.Module, name: str, error: type[Exception] = UnsupportedModelError) -> nn.Module:
    try:
        return root.get_submodule(name)
    except AttributeError:
        raise error(f"module '{name}' does not exist in this model; the adapter was made for another model") from None


def _device_of(module: nn.Module) -> torch.device:
    tensor = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _with_alpha(tensors: Mapping[str, torch.Tensor], lora: LoRAModule) -> dict[str, torch.Tensor]:
    # kohya files may omit alpha (meaning alpha = rank); the module already holds that value.
    return {"alpha": lora.alpha, **tensors}


def _copy_into(target: torch.Tensor, source: torch.Tensor, name: str, key: str) -> None:
    if key == "alpha" and source.numel() == 1:
        source = source.reshape(target.shape)  # some writers store alpha as [1] instead of 0-d
    if source.shape != target.shape:
        # Files may store a Linear adapter in 1x1-conv form [r, in, 1, 1] or the reverse: same numbers.
        if _squeeze_1x1(source).shape != _squeeze_1x1(target).shape:
            raise AdapterFileError(f"module '{name}': {key} has shape {tuple(source.shape)}, "
                                   f"the model needs {tuple(target.shape)}")
        source = source.reshape(target.shape)
    target.copy_(source.to(device=target.device, dtype=target.dtype))


def _squeeze_1x1(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.flatten(1) if tensor.ndim == 4 and tuple(tensor.shape[2:]) == (1, 1) else tensor
