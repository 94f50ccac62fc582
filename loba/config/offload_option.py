"""The `offload` option (loba/train/offload.py does the moving): its choices, its tooltip and the combinations it
refuses. Kept here so that train_config.py declares it in one line."""

from __future__ import annotations

from typing import Any

from .bounds import require

OFFLOAD_MODES = ("none", "blocks", "sequential")
OFFLOAD_HELP = ("Low VRAM: keep the frozen UNet on the CPU and bring it to the GPU only for each forward. blocks: one "
                "block at a time (block swap; slower per step); sequential: one layer at a time (accelerate's CPU "
                "offload; slowest, smallest peak); none: the whole model stays on the device. Engine runs only "
                "(loba train): inside ComfyUI its own memory management (--lowvram) decides.")


def check_offload(config: Any) -> None:
    """The combinations offload cannot run with (a rule across fields, run by check_bounds)."""
    require(not (config.gradient_checkpointing and config.offload == "blocks"), "offload",
            "offload = blocks moves each block out after its forward, but gradient checkpointing recomputes inside the "
            "block during backward: use offload = sequential, or turn gradient_checkpointing off")
    require(not (config.offload == "sequential" and config.network.algo == "dora"), "offload",
            "offload = sequential puts each layer's weight back on the meta device before DoRA's hook reads it: "
            "use offload = blocks with algo = dora")
