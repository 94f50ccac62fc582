"""Training configuration: frozen dataclasses whose help strings double as node tooltips (and bounds as widget limits).

Field names follow sd-scripts' LECO arguments where they exist (network_dim, network_alpha, learning_rate, max_train_steps,
save_every_n_steps, max_denoising_steps, leco_denoise_guidance_scale) so that users can carry their settings over.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..dtypes import SAVE_PRECISIONS
from ..errors import ConfigError
from .bounds import check_bounds, option, require
from .offload_option import OFFLOAD_HELP, OFFLOAD_MODES, check_offload
from .tables import check_finite_values, check_pattern_table, check_regex

ADAPTER_ALGOS = ("lora", "loha", "lokr", "dora")
# The format version of configs LOBA writes; loba/config/migrations.py brings older ones up to it.
CONFIG_VERSION = 1


class Bounded:
    """Base of the config dataclasses: every field is checked against the bounds in its metadata."""

    def __post_init__(self):
        check_bounds(self)


@dataclass(frozen=True)
class NetworkConfig(Bounded):
    network_dim: int = option(4, "LoRA rank of linear (and 1x1 conv) layers. SD 4-8, SDXL 8-16.", min=1, max=1024)
    network_alpha: float = option(1.0, "LoRA alpha; the update is scaled by alpha/rank.", min=0.0)
    conv_dim: int = option(4, "LoCon rank of 3x3 convolutions, used when the preset targets convolutions.", min=1, max=1024)
    conv_alpha: float = option(1.0, "LoCon alpha of 3x3 convolutions (scale alpha/conv_dim).", min=0.0)
    preset: str = option("all_linear", "Which layers to train: a targeting preset.", choices="targeting_presets")
    include: tuple = option((), "Regexes over module names; matching Linear/Conv layers are added to the preset.")
    exclude: tuple = option((), "Regexes over module names; matching layers are never trained.")
    rank_pattern: dict = option({}, "Per-block rank: {regex: rank}; the first regex that matches a module name wins.")
    alpha_pattern: dict = option({}, "Per-block alpha: {regex: alpha}; the first regex that matches wins.")
    lr_pattern: dict = option({}, "Per-layer learning-rate multipliers: {regex: multiplier}; first match wins.")
    algo: str = option("lora", "Adapter type: lora (LoRA/LoCon), or the LyCORIS loha, lokr or dora; all save in the "
                       "layouts ComfyUI and A1111 load.", choices=ADAPTER_ALGOS)
    dropout: float = option(0.0, "Network dropout on the adapter's rank activations (LoHa/LoKr/DoRA: on its output), "
                            "training only; 0 = off.", min=0.0, max=0.9)
    rank_dropout: float = option(0.0, "Drop whole rank channels (LoHa/LoKr/DoRA: output rows) in training; 0 = off.",
                                 min=0.0, max=0.9)
    module_dropout: float = option(0.0, "Skip each adapted layer with this probability in training; 0 = off.",
                                   min=0.0, max=0.9)
    train_text_encoder: str = option("off", "LoRA on the text encoder(s) too (CLIP-L; SDXL: CLIP-L and CLIP-G): off (UNet "
                                     "only), alongside (UNet and text encoder together) or only (text encoder alone: "
                                     "far cheaper per step). Saved as kohya lora_te_ / lora_te1_ / lora_te2_ keys, "
                                     "loaded with the LoRA loader's CLIP strength.", choices=("off", "alongside", "only"))
    text_encoder_preset: str = option("attention_mlp", "Text-encoder layers to train: attention_mlp (q/k/v/out and "
                                      "fc1/fc2 of every layer, kohya's default), attention or mlp. Same rank and "
                                      "alpha as network_dim / network_alpha.", choices=("attention_mlp", "attention", "mlp"))
    text_encoder_exclude: tuple = option((), "Regexes over the text-encoder layers' kohya names (lora_te_..., lora_te1_..., "
                                         "lora_te2_...): matching layers are not trained, e.g. ^lora_te2_ keeps "
                                         "SDXL's CLIP-G frozen.")
    dim_from_weights: bool = option(False, "With network_weights: take each layer's rank and alpha from the LoRA file "
                                    "(sd-scripts' dim_from_weights) instead of network_dim / conv_dim.")
    init: str = option("default", "How the slider starts: default (kohya's: a no-op slider, trained from zero) or "
                       "closed_form (the UCE-style closed-form cross-attention key/value edit for the prompts, "
                       "factored to the rank; training continues from it).", choices="initializers")
    closed_form_lambda: float = option(0.1, "closed_form: ridge strength (relative to the embeddings' scale); "
                                       "larger keeps the slider closer to a no-op.", min=0.0, min_exclusive=True)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "text_encoder_exclude", tuple(self.text_encoder_exclude))
        for name in ("include", "exclude", "text_encoder_exclude"):
            for pattern in getattr(self, name):
                check_regex(name, pattern)
        for name in ("rank_pattern", "alpha_pattern", "lr_pattern"):
            require(isinstance(getattr(self, name), Mapping), name, "must be a table {regex = value}")
            check_pattern_table(name, getattr(self, name))


@dataclass(frozen=True)
class OptimizerConfig(Bounded):
    optimizer: str = option("adamw", "Optimizer name from the optimizer registry.", choices="optimizers")
    learning_rate: float = option(1e-4, "Base learning rate.", min=0.0, min_exclusive=True, example="1e-4")
    weight_decay: float = option(0.0, "Decoupled weight decay (AdamW, Lion) or L2 (Adam, SGD).", min=0.0)
    optimizer_args: dict = option({}, "Extra keyword arguments for the optimizer, e.g. {betas = [0.9, 0.99]}.")
    lr_scheduler: str = option("constant", "Learning-rate schedule from the schedule registry.", choices="schedules")
    lr_warmup_steps: int = option(0, "Linear warmup steps before the schedule starts.", min=0)
    lr_scheduler_num_cycles: int = option(1, "Restarts for cosine_with_restarts.", min=1)
    max_grad_norm: float = option(1.0, "Clip the gradient norm to this value; 0 disables clipping.", min=0.0)
    ema_decay: float = option(0.0, "Keep an EMA of the adapter weights (e.g. 0.999), saved beside the slider as "
                              "NAME-ema.safetensors; 0 = off.", min=0.0, max=0.99999)
    text_encoder_lr: float = option(0.0, "Learning rate of the text-encoder LoRA (with train_text_encoder); 0 = "
                                    "learning_rate.", min=0.0, example="5e-5")

    def __post_init__(self):
        super().__post_init__()
        require(isinstance(self.optimizer_args, Mapping), "optimizer_args", "must be a table, e.g. {betas = [0.9, 0.99]}")
        check_finite_values("optimizer_args", self.optimizer_args)


@dataclass(frozen=True)
class LossConfig(Bounded):
    loss_type: str = option("mse", "Per-element loss from the loss registry.", choices="losses")
    huber_delta: float = option(1.0, "Delta of the huber loss and beta of smooth_l1.", min=0.0, min_exclusive=True)
    min_snr_gamma: float = option(0.0, "Min-SNR-gamma loss weighting (5 is typical); 0 disables it.", min=0.0)
    preservation_weight: float = option(1.0, "Scale on every preservation prompt's own weight.", min=0.0)


@dataclass(frozen=True)
class NoiseConfig(Bounded):
    noise_offset: float = option(0.0, "Offset noise strength added to the initial noise; 0 disables it.", min=0.0)
    multires_noise_iterations: int = option(0, "Pyramid (multires) noise levels on the initial noise; 0 disables it.", min=0)
    multires_noise_discount: float = option(0.3, "Per-level discount of the pyramid noise.", min=0.0, max=1.0)


@dataclass(frozen=True)
class SamplingConfig(Bounded):
    max_denoising_steps: int = option(40, "DDIM grid of the partial denoise that produces x_t.", min=2)
    timestep_spacing: str = option("leading", "Spacing of the partial denoise's DDIM grid (and the previews'): leading (SD's DDIM "
                                   "and LECO's, tops out near t = 975), trailing or linspace (start at t = 999, "
                                   "so training reaches it: use one with a zero-terminal-SNR model).",
                                   choices="timestep_spacings")
    leco_denoise_guidance_scale: float = option(3.0, "CFG scale of the partial denoise.", min=0.0)
    denoise_with_adapter: bool = option(True, "Apply the slider (at the pair's multiplier) during the partial denoise, as LECO does.")
    trajectory_cache: int = option(0, "Trajectory cache: keep this many partial-denoise trajectories per pair and read "
                                   "x_t from them instead of re-denoising every step (much faster); 0 = off (LECO).", min=0, max=64,
                                   example=4)
    trajectory_refresh_every: int = option(4, "With the trajectory cache: one new trajectory per pair every N uses.", min=1)
    trajectory_cache_mb: int = option(512, "With the trajectory cache: its memory budget in MiB (trajectories are kept in the "
                                      "model's dtype; least recently used pairs/resolutions are evicted past it). 512 fits "
                                      "beside SDXL on a 12 GB card; 0 = no limit.", min=0, max=1 << 20)
    single_step: bool = option(False, "iLECO-style single-step mode: x_t is the pure noise itself at the step's timestep, "
                               "no partial denoise (one frozen + one student pass per step; fastest, x_t less like "
                               "the model's own trajectories). Off = LECO's partial denoise.")
    teacher_batch_size: int = option(0, "Largest batch of each no-grad UNet forward: the teachers (every prompt of the pair "
                                     "and the anchors) and the partial denoise's CFG pair run this many rows at a time. "
                                     "Lowers the peak on small cards at the cost of speed; 0 = all in one batch.",
                                     min=0, max=64)
    guidance: float = option(3.5, "Flux.1 dev's distilled guidance on every model call (schnell has none: keep 3.5).", min=0.0, max=100.0)
    min_timestep: int = option(0, "Train only on timesteps >= this (0-999).", min=0, max=999)
    max_timestep: int = option(1000, "Train only on timesteps < this (1-1000).", min=1, max=1000)
    preserve_from_timestep: int = option(1000, "At timesteps >= this, every pair's target is the frozen model's own "
                                         "prediction for its target prompt: the slider learns to stay off in the early "
                                         "steps that decide layout and background. 1000 disables it.", min=1, max=1000)

    def __post_init__(self):
        super().__post_init__()
        require(int(self.min_timestep) < int(self.max_timestep), "min_timestep", "need 0 <= min_timestep < max_timestep <= 1000")


@dataclass(frozen=True)
class TrainConfig(Bounded):
    version: int = option(CONFIG_VERSION, "Config format version (migrations keep old files loading).", min=1)
    max_train_steps: int = option(500, "Number of optimizer steps.", min=1)
    seed: int = option(42, "Seed of every random draw (pairs, timesteps, noise); same seed -> same slider.")
    save_every_n_steps: int = option(0, "Write a resumable checkpoint every N steps; 0 disables it.", min=0)
    save_precision: str = option("float", "dtype of the saved slider: float, fp16 or bf16.", choices=SAVE_PRECISIONS)
    mixed_precision: str = option("no", "Autocast the model forward: no, fp16, bf16 (adapter stays fp32).", choices=("no", "fp16", "bf16"))
    gradient_checkpointing: bool = option(False, "Recompute activations in backward to save memory.")
    offload: str = option("none", OFFLOAD_HELP, choices=OFFLOAD_MODES, rule=check_offload)
    gradient_accumulation_steps: int = option(1, "Draws (pair, timestep, noise) averaged per optimizer step: a larger "
                                              "effective batch at one draw's memory; 1 = LECO's one.", min=1, max=256)
    canary_prompts: tuple = option((), "Canary prompts whose prediction drift (slider at 1 vs off, fixed noise, no decoding) "
                                   "is logged during training; empty = a default list of generic prompts.")
    canary_every: int = option(10, "Measure the canary drift every N steps (loss.csv canary_drift); 0 turns canaries off.",
                               min=0)
    canary_drift_budget: float = option(0.0, "Stop training (the partial slider is saved) once the canary drift exceeds "
                                        "this (relative L2 of the prediction change, e.g. 0.2); 0 = no budget.", min=0.0)
    calibrate_strength: bool = option(False, "End of training: scale the slider so w = 1 changes the prediction at the target prompts "
                                      "by calibration_effect (comparable strengths); metadata loba_calibration keeps raw effect and scale.")
    calibration_effect: float = option(0.1, "With calibrate_strength: the relative prediction change at w = 1 to scale to.",
                                       min=0.001, max=10.0)
    network: NetworkConfig = field(default_factory=NetworkConfig, metadata={"help": "Adapter and targeting."})
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig, metadata={"help": "Optimizer and schedule."})
    loss: LossConfig = field(default_factory=LossConfig, metadata={"help": "Loss stack."})
    noise: NoiseConfig = field(default_factory=NoiseConfig, metadata={"help": "Initial-noise shaping."})
    sampling: SamplingConfig = field(default_factory=SamplingConfig, metadata={"help": "How x_t is produced."})

    def __post_init__(self):
        super().__post_init__()
        # Read at call time, not bound at import, so that the migration tests can raise the version.
        require(int(self.version) <= CONFIG_VERSION, "version", newer_version_message(self.version))
        net = self.network
        # The recomputed forward of gradient checkpointing would draw other dropout masks than the first one.
        require(not (self.gradient_checkpointing and (net.dropout or net.rank_dropout or net.module_dropout)),
                "gradient_checkpointing", "dropout, rank_dropout and module_dropout cannot be combined with "
                "gradient_checkpointing (the recomputed forward would drop other units); turn one of them off")
        require(bool(self.canary_every) or not self.canary_drift_budget, "canary_drift_budget",
                "a drift budget needs canaries: set canary_every > 0 or the budget to 0")
        require(all(isinstance(p, str) for p in self.canary_prompts), "canary_prompts", "give the canary prompts as text")
        require(not self.calibrate_strength or net.train_text_encoder == "off", "calibrate_strength",  # prompts encoded once
                "calibrates UNet sliders only: set train_text_encoder off, or calibrate_strength off")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=list)

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with flat or nested field changes, e.g. replace(network_dim=8)."""
        return config_from_dict({**flatten_sections(self.to_dict()), **changes})


def newer_version_message(version: Any) -> str:
    return f"config version {version} is newer than this LOBA ({CONFIG_VERSION}); update LOBA"


SECTIONS = {"network": NetworkConfig, "optimizer": OptimizerConfig, "loss": LossConfig, "noise": NoiseConfig, "sampling": SamplingConfig}


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def flatten_sections(nested: Mapping[str, Any]) -> dict[str, Any]:
    """[network] = {...} and the like lifted to the top level (sd-scripts' flat form); other keys as they are."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if key in SECTIONS and isinstance(value, Mapping):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _section_of(name: str) -> str | None:
    for section, cls in SECTIONS.items():
        if name in _field_names(cls):
            return section
    return None


def config_from_dict(data: Mapping[str, Any], where: str = "config") -> TrainConfig:
    """Build a TrainConfig from nested tables ([network] ...) or flat sd-scripts-style keys."""
    top_fields = _field_names(TrainConfig) - set(SECTIONS)
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, Mapping):
            for sub_key, _sub_value in value.items():
                if sub_key not in _field_names(SECTIONS[key]):
                    raise ConfigError(f"{key}.{sub_key}", f"unknown option in [{key}] of {where}; "
                                      f"known: {', '.join(sorted(_field_names(SECTIONS[key])))}")
                sections[key][sub_key] = value[sub_key]
        elif key in top_fields:
            top[key] = value
        elif (section := _section_of(key)) is not None:
            sections[section][key] = value
        else:
            raise ConfigError(key, f"unknown option in {where}; check the spelling (see `loba train --help`)")
    built = {name: _construct(SECTIONS[name], values, name) for name, values in sections.items()}
    return _construct(TrainConfig, {**top, **built}, "config")


def _construct(cls, values: Mapping[str, Any], where: str):
    types = {f.name: f for f in dataclasses.fields(cls)}
    return cls(**{key: coerce_value(value, types[key].default, f"{where}.{key}" if where != "config" else key)
                  for key, value in values.items()})


def coerce_value(value: Any, default: Any, name: str) -> Any:
    """Convert TOML/JSON values to the field's type, naming the field when it cannot."""
    if default is dataclasses.MISSING or isinstance(value, (NetworkConfig, OptimizerConfig, LossConfig,
                                                            NoiseConfig, SamplingConfig)):
        return value
    try:
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(default, int):
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise TypeError
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if isinstance(default, str):
            if not isinstance(value, str):
                raise TypeError
            return value
        if isinstance(default, tuple):
            if isinstance(value, str):
                return (value,)
            return tuple(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise ConfigError(name, f"expected {type(default).__name__}, got {value!r}") from None
    return value


def field_help(cls) -> dict[str, str]:
    """Help strings by field name: the node tooltips."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
