"""FSDP of the frozen base: with `accelerate launch --use_fsdp --fsdp_version 2 ...` (or an `accelerate config` that
says FSDP) every process keeps 1/N of the denoiser's weights and gathers each block's weights for its forward;
the LoRA stays whole in every process (its gradients are all-reduced as in plain data parallel, distributed.py).

The settings are accelerate's own (its FullyShardedDataParallelPlugin, read from the launcher's environment); the
sharding is torch's fully_shard (FSDP2), applied by LOBA per block because accelerate's Accelerator.prepare only
turns FSDP on for GPU-type process groups (its AcceleratorState sets DistributedType.FSDP for MULTI_GPU and the
like, never for MULTI_CPU), while fully_shard itself runs on CPU processes with gloo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..config import TrainConfig
from ..errors import ConfigError
from .distributed import World

MIB = 1 << 20


@dataclass(frozen=True)
class ShardPlan:
    plugin: Any  # accelerate.utils.FullyShardedDataParallelPlugin
    mixed_precision: str  # accelerate's --mixed_precision


def fsdp_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def plan_sharding(world: World, config: TrainConfig, model_dtype: str = "float32") -> Optional[ShardPlan]:
    """Before any model work: None without FSDP (or alone); else accelerate's FSDP settings, checked to work."""
    if not fsdp_requested() or world.size == 1:
        return None
    from accelerate.utils import FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()
    if plugin.fsdp_version != 2:
        raise ConfigError("fsdp_version", f"LOBA shards the frozen base with FSDP2 (fully_shard); launch with "
                                          f"--fsdp_version 2 (got {plugin.fsdp_version})")
    if os.environ.get("FSDP_OFFLOAD_PARAMS", "false").lower() == "true":
        raise ConfigError("fsdp_offload_params", "offloading FSDP shards is not supported; launch without it")
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    _check_precision(launched, config.mixed_precision, model_dtype, world)
    return ShardPlan(plugin, launched)


def _check_precision(launched: str, run: str, model_dtype: str, world: World) -> None:
    """The mixed-precision combinations FSDP of a frozen base cannot run, refused with the fix."""
    if launched not in ("no", run):
        raise ConfigError("mixed_precision", f"accelerate was launched with --mixed_precision {launched} but the run "
                                             f"file says mixed_precision = {run}: LOBA autocasts from the run file; "
                                             "set both the same (or launch with --mixed_precision no)")
    if run == "fp16" and world.device is None:
        raise ConfigError("mixed_precision", "fp16 with FSDP needs GPUs (its loss scaler steps sharded fp16 "
                                             "weights on the device); on CPU processes use bf16 or no")
    if run == "bf16" and model_dtype in ("fp16", "float16"):
        raise ConfigError("mixed_precision", "bf16 autocast over an fp16 base cannot run sharded (FSDP gathers "
                                             "fp16 shards that bf16 kernels do not take); use model_dtype bf16 or "
                                             "float32, or mixed_precision fp16")


def shard_frozen_base(backend, plan: Optional[ShardPlan], world: World) -> Optional[dict]:
    """fully_shard each block of the denoiser, then the whole; the memory each process holds, for the log."""
    if plan is None:
        return None
    from torch.distributed.fsdp import fully_shard

    denoiser = backend.denoiser()
    full = _bytes(denoiser, local=False)
    blocks = [block for child in denoiser.children() if isinstance(child, torch.nn.ModuleList) for block in child]
    for block in blocks:
        fully_shard(block, reshard_after_forward=plan.plugin.reshard_after_forward)
    fully_shard(denoiser, reshard_after_forward=plan.plugin.reshard_after_forward)
    held = {"rank": world.rank, "blocks_sharded": len(blocks), "base_mib": full / MIB,
            "held_mib": _bytes(denoiser, local=True) / MIB}
    print(f"loba: rank {world.rank}: frozen base sharded over {world.size} processes ({len(blocks)} blocks): "
          f"{held['held_mib']:.2f} MiB of {held['base_mib']:.2f} MiB of weights held here", flush=True)
    return held


def _bytes(module: torch.nn.Module, local: bool) -> int:
    total = 0
    for param in module.parameters():
        data = param.to_local() if local and hasattr(param, "to_local") else param
        total += data.numel() * data.element_size()
    return total
