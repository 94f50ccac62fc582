"""Where a run's model comes from: an embedded model name (`toyworld`), a diffusers folder or hub id, or one
checkpoint file. The one loader behind `loba train`, `loba demo` and the benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..dtypes import dtype_named
from ..errors import ConfigError
from ..registry import Registry
from .backend import ModelBackend
from .hub_location import HubLocation

FIELD = "pretrained_model_name_or_path"


@dataclass(frozen=True)
class ModelSource:
    name_or_path: str
    prediction_type: Optional[str] = None  # None: the model's own scheduler config decides
    sdxl: Optional[bool] = None  # single files: None detects SDXL from the keys
    dtype: str = "float32"
    model_config: Optional[str] = None  # single files: a diffusers folder with the component configs (offline)
    device: str = "cpu"
    with_vae: bool = False  # previews decode through it; training never needs it
    clip_skip: Optional[int] = None  # None: the model's default layer (loba/models/clip_text.py)
    zero_terminal_snr: bool = False  # rescale the schedule to zero terminal SNR (v-prediction models only)
    guidance: Optional[float] = None  # Flux dev's distilled guidance (None: 3.5); schnell has none and ignores it
    hub: HubLocation = HubLocation()  # folders and hub ids: revision, variant, subfolder, local_files_only
    fp8_base: bool = False  # the frozen denoiser's weights stored as float8, computed in dtype (models/fp8_base.py)


# Models a run can name instead of a path: they ship inside the package, so nothing is downloaded.
EMBEDDED_MODELS: Registry[Callable[[ModelSource], ModelBackend]] = Registry("embedded model", field=FIELD)


@EMBEDDED_MODELS.register("toyworld")
def _toyworld(source: ModelSource, world: str = "toyworld") -> ModelBackend:
    from ..toyworld.backend import toy_backend
    from ..toyworld.sampling import load_toy_components
    from ..toyworld.worlds import world_weights

    if source.zero_terminal_snr:
        raise ConfigError("zero_terminal_snr", "the toy world predicts epsilon, which cannot train with zero terminal SNR; "
                                               "remove zero_terminal_snr")
    backend = toy_backend(load_toy_components(world_weights(world)), clip_skip=source.clip_skip)
    dtype = dtype_named(source.dtype, "model_dtype")
    if source.device != "cpu" or dtype != backend.dtype:  # the shipped weights are float32 on the CPU
        for module in (backend.unet, *backend.text_encoders, backend.vae):
            module.to(source.device, dtype)
    return backend


@EMBEDDED_MODELS.register("toyworld-entangled")
def _toyworld_entangled(source: ModelSource) -> ModelBackend:
    return _toyworld(source, world="entangled")


@EMBEDDED_MODELS.register("toyworld-flow")
def _toyworld_flow(source: ModelSource) -> ModelBackend:
    """The flow toy world: a toy Flux transformer (flow matching) as a FluxBackend on its sigma table."""
    from ..toyworld.backend import flow_backend
    from ..toyworld.files import load_toy_components
    from ..toyworld.worlds import world_weights

    if source.zero_terminal_snr:
        raise ConfigError("zero_terminal_snr", "the flow toy world is a flow-matching model (its last sigma is 1 "
                                               "already); remove zero_terminal_snr")
    if source.prediction_type not in (None, "flow"):
        raise ConfigError("prediction_type", f"the flow toy world predicts a flow velocity, not {source.prediction_type}; "
                                             "remove prediction_type")
    import torch

    components = load_toy_components(world_weights("flow"))
    dtype = dtype_named(source.dtype, "model_dtype")
    if source.device != "cpu" or dtype != torch.float32:  # the shipped weights load as float32 on the CPU
        for module in (components.transformer, components.text_encoder, components.vae):
            module.to(source.device, dtype)
    return flow_backend(components, clip_skip=source.clip_skip)


def load_backend(source: ModelSource) -> ModelBackend:
    """The backend of `source` (its denoiser stored in fp8 with fp8_base); a path or id that cannot be loaded is
    a ConfigError naming the key."""
    backend = _load_backend(source)
    if source.fp8_base:
        from .fp8_base import store_base_in_fp8

        store_base_in_fp8(backend)
    return backend


def _load_backend(source: ModelSource) -> ModelBackend:
    dtype = dtype_named(source.dtype, "model_dtype")
    if source.name_or_path in EMBEDDED_MODELS:
        return EMBEDDED_MODELS.get(source.name_or_path)(source)
    try:
        return _load_diffusers(source, dtype)
    except (OSError, ValueError) as exc:  # missing files, bad hub ids (HFValidationError is a ValueError)
        if isinstance(exc, ConfigError):
            raise
        known = ", ".join(EMBEDDED_MODELS.names())
        raise ConfigError(FIELD, f"cannot load '{source.name_or_path}': {' '.join(str(exc).split())} (a diffusers folder, a hub id, a "
                                 f"checkpoint file, or an embedded model: {known})") from exc


def _load_diffusers(source: ModelSource, dtype) -> ModelBackend:
    from .diffusers_backend import DiffusersBackend
    from .flux_loading import is_flux_file, is_flux_folder

    if is_flux_folder(source.name_or_path) or (Path(source.name_or_path).is_file() and is_flux_file(source.name_or_path)):
        return _load_flux(source, dtype)

    common = dict(torch_dtype=dtype, device=source.device, prediction_type=source.prediction_type, with_vae=source.with_vae,
                  clip_skip=source.clip_skip, zero_terminal_snr=source.zero_terminal_snr)
    if Path(source.name_or_path).is_file():
        extra = {"config": source.model_config} if source.model_config else {}
        return DiffusersBackend.from_single_file(source.name_or_path, sdxl=source.sdxl, **common, **extra)
    return DiffusersBackend.from_pretrained(source.name_or_path, hub=source.hub, **common)


def _load_flux(source: ModelSource, dtype) -> ModelBackend:
    """Flux.1 (dev / schnell) through diffusers' FluxTransformer2DModel; a single file takes the rest from
    model_config (a diffusers Flux folder or hub id)."""
    from .flux_backend import FluxBackend

    for field, value in (("v_parameterization", source.prediction_type), ("clip_skip", source.clip_skip),
                         ("zero_terminal_snr", source.zero_terminal_snr)):
        if value:
            raise ConfigError(field, "Flux predicts a flow velocity on its own sigma schedule; remove it for Flux models")
    common = dict(torch_dtype=dtype, device=source.device, with_vae=source.with_vae)
    if Path(source.name_or_path).is_file():
        if not source.model_config:
            raise ConfigError("model_config", "a Flux checkpoint file needs a diffusers Flux folder or hub id for its text "
                                              "encoders, VAE and configs, e.g. black-forest-labs/FLUX.1-dev")
        return FluxBackend.from_single_file(source.name_or_path, config=source.model_config, guidance=source.guidance,
                                            **common)
    return FluxBackend.from_pretrained(source.name_or_path, guidance=source.guidance, **common)
