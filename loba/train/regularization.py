"""The run's adapter dropout and EMA, set on the network from the config, and their part of a checkpoint."""

from __future__ import annotations

from typing import Any

from ..adapters import AdapterNetwork
from ..adapters.dropout import AdapterDropout
from ..adapters.ema import AdapterEMA
from ..config import TrainConfig


def configure_regularization(network: AdapterNetwork, config: TrainConfig) -> None:
    """Dropout from the [network] options (seeded by the run's seed), an EMA when ema_decay > 0."""
    net = config.network
    network.dropout = AdapterDropout(net.dropout, net.rank_dropout, net.module_dropout, seed=config.seed)
    decay = config.optimizer.ema_decay
    network.ema = AdapterEMA(network, decay) if decay else None


def regularization_state(network: AdapterNetwork) -> dict[str, Any]:
    """Only what is in use: checkpoints of runs without dropout or EMA stay as they were."""
    state: dict[str, Any] = {}
    if network.dropout.enabled:
        state["dropout_rng"] = network.dropout.state_dict()
    if network.ema is not None:
        state["ema"] = network.ema.state_dict()
    return state


def load_regularization_state(network: AdapterNetwork, state: dict[str, Any]) -> None:
    if network.dropout.enabled and "dropout_rng" in state:
        network.dropout.load_state_dict(state["dropout_rng"])
    if network.ema is not None and "ema" in state:
        network.ema.load_state_dict(state["ema"])
