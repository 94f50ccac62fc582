"""Which sampler a toy world's components take: DDIM for the SD1 worlds, flow Euler for the flow world (its own
module, so the two samplers never import each other)."""

from __future__ import annotations

import torch

from .sampling import DEFAULT_SAMPLING, ToySampler


def toy_sampler(components, device: str | torch.device = "cpu"):
    """The sampler of a toy world's components: DDIM for the SD1 worlds, flow Euler for the flow world."""
    from .flow_model import FlowComponents

    if isinstance(components, FlowComponents):
        from .flow_sampling import FlowToySampler

        return FlowToySampler(components, device)
    return ToySampler(components, device)


def sampler_name(components) -> str:
    from .flow_model import FLOW_SAMPLING, FlowComponents

    return FLOW_SAMPLING["sampler"] if isinstance(components, FlowComponents) else DEFAULT_SAMPLING["sampler"]
