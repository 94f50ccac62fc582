"""How a run's adapters start: a registry of initializers, chosen by NetworkConfig.init.

An initializer is a function (network, backend, prompts, config) -> report or None that sets the weights of
a freshly built AdapterNetwork (already on the model's device, not attached) in place, without drawing from
any random generator the trainer uses (so a run is still reproduced by its seed and resumes exactly). The loop
calls it once, before the optimizer's first step, and never when resuming (the checkpoint holds the weights).
"default" keeps kohya's init (random down, zero up: the slider starts as a no-op).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from ..registry import Registry
from .closed_form import closed_form_init

Initializer = Callable[[Any, Any, Any, Any], Optional[object]]

INITIALIZERS: Registry[Initializer] = Registry("initializer", field="init")


@INITIALIZERS.register("default")
def default_init(network, backend, prompts, config) -> None:
    """kohya's init, already done when the network was built."""
    return None


INITIALIZERS.register("closed_form", closed_form_init)


def initialize(network, backend, prompts, config) -> Optional[object]:
    """Run the config's initializer on `network`; returns its report (None for the default)."""
    return INITIALIZERS.get(config.network.init)(network, backend, prompts, config)
