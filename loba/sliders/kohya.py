"""kohya-format LoRA/LoCon (and LyCORIS LoHa/LoKr/DoRA) slider files: the format ComfyUI, A1111/Forge, kohya and diffusers load."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..adapters import AdapterNetwork
from ..config.migrations import config_from_slider_metadata
from ..config.train_config import TrainConfig
from ..errors import AdapterFileError
from .atomic import atomic_write
from .validate import ALPHA, DOWN, UP, validate_tensors  # noqa: F401  (re-exported: merge, family)

_TEXT_ENCODER_STEM = re.compile(r"^lora_te\d?_")


def network_metadata(network: AdapterNetwork) -> dict[str, str]:
    """kohya's ss_* fields: dim/alpha of the linear layers, conv dim/alpha in ss_network_args for LoCon;
    LyCORIS adapters as LyCORIS's kohya wrapper records them (lycoris.kohya, algo in the args)."""
    by_kind: dict[str, Counter] = {}
    algos = Counter()
    for _, lora in network.items():
        by_kind.setdefault(lora.kind, Counter())[(lora.rank, float(lora.alpha))] += 1
        algos[lora.algo] += 1
    main = by_kind.get("lora") or by_kind.get("locon") or Counter({(0, 0.0): 1})
    (dim, alpha), _ = main.most_common(1)[0]
    metadata = {"ss_network_module": "networks.lora", "ss_network_dim": str(dim), "ss_network_alpha": str(alpha)}
    args: dict[str, str] = {}
    if "locon" in by_kind:
        (conv_dim, conv_alpha), _ = by_kind["locon"].most_common(1)[0]
        args.update(conv_dim=str(conv_dim), conv_alpha=str(conv_alpha))
    algo = algos.most_common(1)[0][0] if algos else "lora"
    if algo != "lora":
        metadata["ss_network_module"] = "lycoris.kohya"
        args["algo"] = "lora" if algo == "dora" else algo
        if algo == "dora":
            args.update(dora_wd="True", wd_on_output="False")
    if args:
        metadata["ss_network_args"] = json.dumps(args)
    return metadata


def slider_tensors(network: AdapterNetwork, kohya_name: Callable[[str], str], dtype: torch.dtype = torch.float32,
                   state: Mapping[str, Mapping[str, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
    """The file's tensors: <stem>.lora_down.weight, <stem>.lora_up.weight, <stem>.alpha (0-d), all in `dtype`
    (LyCORIS adapters: their own keys, lycoris_keys.py). `state`: other tensors of the same layout (the EMA)."""
    tensors: dict[str, torch.Tensor] = {}
    stems: set[str] = set()
    for name, module in (network.module_state() if state is None else state).items():
        stem = kohya_name(name)
        if stem in stems:
            raise ValueError(f"two modules share the kohya name '{stem}' (second: '{name}')")
        stems.add(stem)
        for key, tensor in module.items():
            tensors[f"{stem}.{key}"] = tensor.detach().to(device="cpu", dtype=dtype).contiguous()
    return tensors


def write_slider_file(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
                      dtype: torch.dtype = torch.float32) -> Path:
    """Write already-named kohya tensors (a merged or loaded slider) atomically, checked like a loaded file."""
    from safetensors.torch import save

    _validate(tensors, path)
    data = save({key: t.detach().to("cpu", dtype).contiguous() for key, t in tensors.items()},
                metadata={str(k): str(v) for k, v in metadata.items()})
    return atomic_write(path, lambda handle: handle.write(data))


@dataclass
class SliderFile:
    """A loaded kohya LoRA file: tensors by key, the string metadata, and where it came from."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    path: str = ""

    def module_stems(self) -> set[str]:
        return {key.rsplit(".", 2)[0] if key.endswith(".weight") else key.rsplit(".", 1)[0] for key in self.tensors}

    def training_config(self) -> TrainConfig | None:
        """The config LOBA trained this slider with (migrated to the current version); None for other trainers' files."""
        return config_from_slider_metadata(self.metadata)

    def module_state(self, stem: str) -> dict[str, torch.Tensor]:
        """{lora_down.weight, lora_up.weight[, alpha]} of one stem (alpha absent means alpha = rank), or the stem's
        LyCORIS keys (lycoris_keys.py)."""
        prefix = f"{stem}."
        return {key[len(prefix):]: tensor for key, tensor in self.tensors.items()
                if key.startswith(prefix) and "." not in key[len(prefix):].removesuffix(".weight")}


def load_slider(path: str | os.PathLike) -> SliderFile:
    """Read and validate a kohya LoRA/LoCon file (any LoRA trainer's, not only LOBA's)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises several types for missing, truncated or foreign files
        raise AdapterFileError(f"cannot read LoRA file {path}: {exc}") from exc
    _validate(tensors, path)
    return SliderFile(tensors, metadata, str(path))


def _validate(tensors: Mapping[str, torch.Tensor], path) -> None:
    validate_tensors(tensors, path)


def network_from_file(slider_file: SliderFile, root: torch.nn.Module,
                      module_name_from_kohya: Callable[[str], str | None]) -> AdapterNetwork:
    """Rebuild the AdapterNetwork of a file for `root` (not attached; multiplier 1)."""
    stems = sorted(slider_file.module_stems())
    # A text-encoder-aware namer (loba.adapters.text_encoder.module_namer, with an AdapterRoot) resolves lora_te stems.
    names = {stem: module_name_from_kohya(stem) for stem in stems}
    foreign = [stem for stem, name in names.items() if name is None]
    if foreign:
        text = any(_TEXT_ENCODER_STEM.match(stem) for stem in foreign)
        raise AdapterFileError(f"{slider_file.path or 'LoRA file'}: {len(foreign)} of {len(stems)} modules do not "
                               f"match this model, e.g. {', '.join(foreign[:5])}; the file was made for another model "
                               f"family{', or holds text-encoder layers, which this use of it does not apply' if text else ''}")
    if not stems:
        raise AdapterFileError(f"{slider_file.path or 'LoRA file'}: holds no LoRA modules")
    return AdapterNetwork.from_state(root, {names[stem]: slider_file.module_state(stem) for stem in stems})
