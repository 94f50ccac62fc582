"""The `loba train` file: model, training options and prompts in one TOML (or JSON).

Model keys use sd-scripts' argument names; training options are TrainConfig fields (flat or in
[network]/[optimizer]/[loss]/[noise]/[sampling] tables); everything else is the prompt spec, in
sd-scripts' LECO format or LOBA's own. `prompts_file` may point to a separate prompt file instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError
from ..models.hub_location import HubLocation
from ..prompts import PromptSet
from ..prompts.loader import load_prompt_file, prompt_set_from_dict, read_prompt_table, training_option_keys
from .leco_yaml import from_leco_config
from .migrations import migrate
from .sdscripts import from_sdscripts
from .train_config import SECTIONS, TrainConfig, config_from_dict

MODEL_KEYS = {
    "pretrained_model_name_or_path": "diffusers folder, hub id or single checkpoint file of the base model",
    "v_parameterization": "force v-prediction (SD2 768-v style models whose scheduler config says epsilon)",
    "sdxl": "the single checkpoint file is SDXL (detected from its keys when unset)",
    "model_config": "for a single checkpoint file: a diffusers folder (or hub id) holding the component configs, for offline loading",
    "zero_terminal_snr": "rescale the noise schedule to zero terminal SNR as diffusers does (v-prediction models only; "
                         "pair it with timestep_spacing = trailing so that training reaches t = 999)",
    "model_dtype": "dtype of the frozen model: float32, fp16 or bf16",
    "fp8_base": "store the frozen UNet / Flux transformer's weights as float8 (e4m3), computed in model_dtype: half a "
                "bf16 base's memory (sd-scripts' name; headless only; loba/models/fp8_base.py)",
    "device": "cpu, cuda, cuda:1, mps ...",
    "clip_skip": "text encoder layer counted from the end, as ComfyUI's CLIPSetLastLayer(-N): 1 last, 2 penultimate "
                 "(unset: the model's default, 1 for SD1, 2 for SD2 and SDXL)",
    "prompts_file": "a separate prompt TOML/JSON/YAML (sd-scripts LECO format, p1atdev LECO's YAML list, or LOBA's)",
    "v2": "sd-scripts' SD2 switch: accepted, the family is detected from the model's weights",
    "output_name": "the final slider's file name in the output folder (sd-scripts' output_name; default slider)",
    "output_dir": "the output folder when `loba train` gets no --out (sd-scripts' output_dir)",
    "network_weights": "LoRA file (or list of files) to start the slider from, relative to the run file (sd-scripts' name)",
    "network_weights_multipliers": "one weight per network_weights file for their merge (default 1 each)",
    "network_weights_merge": "how several network_weights files merge: sum (exact), concat or svd (to network_dim)",
    "revision": "a Hub model: the branch, tag or commit to load (default main)",
    "variant": "a Hub model or diffusers folder: the weight variant to load, e.g. fp16 (diffusion_pytorch_model.fp16.safetensors)",
    "subfolder": "a Hub model or diffusers folder: the folder inside it that holds the pipeline (model_index.json)",
    "local_files_only": "load the model from the local Hugging Face cache only, never download (HF_HUB_OFFLINE=1 does the same)",
    "push_to_hub": "after a successful run, upload the slider, its model card and this run file to this Hub repo (USER/NAME)",
    "hub_private": "with push_to_hub: create the repo private",
    "log_with": "accelerate trackers beside loss.csv and loss.jsonl: tensorboard, wandb, or a list (optional packages; "
                "sd-scripts' name)",
    "logging_dir": "the trackers' folder, relative to the run file (default OUT/logs; sd-scripts' name)",
}


@dataclass(frozen=True)
class RunFile:
    model: str
    prompts: PromptSet
    config: TrainConfig
    prediction_type: Optional[str] = None
    sdxl: Optional[bool] = None
    model_dtype: str = "float32"
    fp8_base: bool = False
    model_config: Optional[str] = None
    device: str = "cpu"
    clip_skip: Optional[int] = None
    zero_terminal_snr: bool = False
    output_name: str = "slider"
    output_dir: Optional[str] = None
    network_weights: tuple[Path, ...] = ()  # read (and checked) by the caller before the model loads
    network_weights_multipliers: tuple[float, ...] = ()
    network_weights_merge: str = "sum"
    hub: HubLocation = HubLocation()
    push_to_hub: Optional[str] = None
    hub_private: bool = False
    log_with: tuple[str, ...] = ()
    logging_dir: Optional[Path] = None


def split_run_table(data: dict[str, Any], base_dir: Path, source: str,
                    overrides: Optional[dict[str, Any]] = None) -> tuple[dict[str, Any], TrainConfig, PromptSet]:
    """(model keys, training config, prompt set) of a parsed run table of any config version, with `overrides`
    (current-version option names, e.g. `--set`) laid over it after its migration."""
    # Migrated whole, before it is split: a renamed option is only a training key under its new name.
    data = from_sdscripts({**migrate(from_leco_config(data, base_dir)), **(overrides or {})})
    model_values = {key: data.pop(key) for key in list(data) if key in MODEL_KEYS}
    training_keys = training_option_keys() | set(SECTIONS)
    training = {key: data.pop(key) for key in list(data) if key in training_keys}
    config = config_from_dict(training, where=source)
    prompts_file = model_values.get("prompts_file")
    if prompts_file:
        if data:
            raise ConfigError(next(iter(data)), "prompts are given both inline and by prompts_file; keep one")
        return model_values, config, load_prompt_file(base_dir / prompts_file)
    return model_values, config, prompt_set_from_dict(data, base_dir, source)


def load_run_file(path: Path, overrides: Optional[dict[str, Any]] = None) -> RunFile:
    path = Path(path)
    model_values, config, prompts = split_run_table(read_prompt_table(path), path.parent, path.name, overrides)
    model = model_values.get("pretrained_model_name_or_path")
    if not model:
        raise ConfigError("pretrained_model_name_or_path", f"{path.name} names no base model; set it or pass --model")
    return RunFile(
        model=str(model), prompts=prompts, config=config,
        prediction_type="v_prediction" if model_values.get("v_parameterization") else None,
        sdxl=None if "sdxl" not in model_values else bool(model_values["sdxl"]),
        model_dtype=str(model_values.get("model_dtype", "float32")),
        fp8_base=_flag(model_values, "fp8_base"),
        model_config=model_values.get("model_config"),
        device=str(model_values.get("device", "cpu")),
        clip_skip=_clip_skip(model_values.get("clip_skip")),
        zero_terminal_snr=_flag(model_values, "zero_terminal_snr"),
        output_name=_output_name(model_values.get("output_name", "slider")),
        output_dir=None if model_values.get("output_dir") is None else str(model_values["output_dir"]),
        **_start_weights(model_values, path.parent),
        hub=_hub_location(model_values),
        push_to_hub=_push_repo(model_values.get("push_to_hub")),
        hub_private=_flag(model_values, "hub_private"),
        **_logging(model_values, path.parent),
    )


def _hub_location(values: dict[str, Any]) -> HubLocation:
    texts = {}
    for key in ("revision", "variant", "subfolder"):
        value = values.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(key, f"expected a non-empty string, got {value!r}")
        texts[key] = value
    return HubLocation(**texts, local_files_only=_flag(values, "local_files_only"))


def _push_repo(value: Any) -> Optional[str]:
    if value is None:
        return None
    from ..hub.push import check_repo_id

    return check_repo_id(value, "push_to_hub")


def _logging(values: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    kinds = values.get("log_with", ())
    kinds = () if kinds in ("", "none", None) else [kinds] if isinstance(kinds, str) else kinds
    if not isinstance(kinds, (list, tuple)) or not all(isinstance(k, str) and k for k in kinds):
        raise ConfigError("log_with", f"expected a tracker name or a list of them (tensorboard, wandb), got {kinds!r}")
    kinds = ("tensorboard", "wandb") if list(kinds) == ["all"] else tuple(kinds)
    folder = values.get("logging_dir")
    if folder is not None and not isinstance(folder, str):
        raise ConfigError("logging_dir", f"expected a folder path, got {folder!r}")
    return {"log_with": kinds, "logging_dir": None if folder is None else base_dir / folder}


def _output_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or Path(value).name != value or value in (".", ".."):
        raise ConfigError("output_name", f"{value!r} must be a plain file name (no folders), e.g. my_slider")
    return value.removesuffix(".safetensors")


def _start_weights(values: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    paths = values.get("network_weights", ())
    paths = [paths] if isinstance(paths, str) else paths
    if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError("network_weights", f"expected a LoRA file path or a list of them, got {paths!r}")
    weights = values.get("network_weights_multipliers", ())
    weights = [weights] if isinstance(weights, (int, float)) and not isinstance(weights, bool) else weights
    if not isinstance(weights, (list, tuple)) or any(isinstance(w, bool) or not isinstance(w, (int, float)) for w in weights):
        raise ConfigError("network_weights_multipliers", f"expected a number or a list of numbers, got {weights!r}")
    merge = values.get("network_weights_merge", "sum")
    if not isinstance(merge, str):
        raise ConfigError("network_weights_merge", f"expected sum, concat or svd, got {merge!r}")
    return {"network_weights": tuple(base_dir / p for p in paths), "network_weights_multipliers": tuple(map(float, weights)),
            "network_weights_merge": merge}


def _clip_skip(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError("clip_skip", f"{value!r} is not a layer count: 1 is the last layer, 2 the penultimate")
    return value


def _flag(values: dict[str, Any], key: str) -> bool:
    value = values.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    return value
