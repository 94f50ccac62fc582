"""An exponential moving average of the adapter weights, kept beside the trained ones.

ema = decay * ema + (1 - decay) * weights after every optimizer step (float32, on the adapters' device).
Its tensors have the network's own layout (module_state), so the EMA slider is written by the same code as
the raw one, and the trainer's checkpoint holds it, so a resumed run continues the same average.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import ConfigError


class AdapterEMA:
    def __init__(self, network, decay: float):
        if not 0.0 < float(decay) < 1.0:
            raise ConfigError("ema_decay", f"{decay} is not a decay: use a number between 0 and 1, e.g. 0.999 (0 = off)")
        self.decay = float(decay)
        self.state = {name: {key: tensor.detach().clone().float() for key, tensor in tensors.items()}
                      for name, tensors in network.module_state().items()}

    @torch.no_grad()
    def update(self, network) -> None:
        for name, lora in network.items():
            current = dict(lora.named_parameters())
            for key, average in self.state[name].items():
                if key in current:  # alpha is a fixed buffer: nothing to average
                    average.lerp_(current[key].detach().to(average.device, torch.float32), 1.0 - self.decay)

    def module_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """Copies of the averaged tensors, in AdapterNetwork.module_state() form."""
        return {name: {key: tensor.clone() for key, tensor in tensors.items()} for name, tensors in self.state.items()}

    def state_dict(self) -> dict:
        return {"decay": self.decay, "state": self.module_state()}

    def load_state_dict(self, stored: Mapping) -> None:
        missing = set(self.state) - set(stored["state"])
        if missing:
            raise ConfigError("resume", f"the checkpoint's EMA lacks {len(missing)} layers, e.g. {sorted(missing)[:3]}")
        for name, tensors in self.state.items():
            for key, average in tensors.items():
                average.copy_(stored["state"][name][key].to(average.device, torch.float32))
