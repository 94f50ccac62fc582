"""Reading a checkpoint handed to resume: any file may arrive here, so every way it can be wrong gets a message
that names the file and the fix, and never PyTorch's advice to retry with weights_only=False (that would let a
crafted file run code)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError

FIX = "give a step-*.pt checkpoint written by save_every_n_steps (checkpoint_every)"
# What Trainer.load_state_dict reads, and the type each must have.
REQUIRED = {"step": int, "network": dict, "optimizer": dict, "scheduler": dict, "scaler": dict,
            "generator": torch.Tensor, "config": dict, "prompts_fingerprint": str}


def read_state(path: Path, expected_format: str, newest_version: int) -> dict[str, Any]:
    """The checkpoint's dict, checked to hold what resuming needs; ConfigError('resume', ...) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("resume", f"{path} does not exist or is not a file; {FIX}")
    if path.stat().st_size == 0:
        raise ConfigError("resume", f"{path} is empty (0 bytes; an interrupted copy?); {FIX}")
    state = _load(path)
    if not isinstance(state, dict) or state.get("format") != expected_format:
        raise ConfigError("resume", f"{path} is not a LOBA checkpoint; {FIX}")
    version = state.get("format_version")
    if not isinstance(version, int) or version > newest_version:
        raise ConfigError("resume", f"{path} has checkpoint format {version!r}, newer than this LOBA reads "
                                    f"({newest_version}); update LOBA")
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise ConfigError("resume", f"{path} is an incomplete LOBA checkpoint (no {', '.join(missing)}); {FIX}")
    wrong = [key for key, kind in REQUIRED.items() if not isinstance(state[key], kind) or isinstance(state[key], bool)]
    if wrong:
        raise ConfigError("resume", f"{path} is a damaged LOBA checkpoint ({', '.join(wrong)} of the wrong type); {FIX}")
    return state


def _load(path: Path) -> Any:
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files: the error says enough
            warnings.simplefilter("ignore")
            # weights_only: tensors and plain containers only; a checkpoint must not be able to run code.
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        reason = "it holds Python objects other than tensors, numbers and containers, which LOBA never loads"
    except EOFError:
        reason = "it is truncated"
    except OSError as error:
        reason = f"it cannot be read ({error.strerror or type(error).__name__})"
    except Exception:  # torch raises RuntimeError, KeyError, ValueError... for what is not a torch file
        reason = "it is not a PyTorch checkpoint file"
    # `from None` above and here: torch's own message (advice to set weights_only=False) must not be shown.
    raise ConfigError("resume", f"{path} is not a LOBA checkpoint: {reason}; {FIX}")
