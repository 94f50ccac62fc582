"""`loba eval --model CKPT_OR_FOLDER --slider FILE --spec SPEC.toml --out DIR`: a slider measured on any SD1 / SD2 /
SDXL model (or the embedded 'toyworld'). Order: spec (evaluators and their weight files), slider file, model,
slider-vs-model family; only then sampling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import AdapterFileError, ConfigError


def run_model_eval(model: str, slider: str | os.PathLike, spec_path: str | os.PathLike, out: str | os.PathLike, *,
                   device: str = "cpu", dtype: str = "float32", model_config: Optional[str] = None, quiet: bool = False) -> dict:
    from ..models.sources import ModelSource, load_backend
    from ..sliders.kohya import SliderFile, load_slider, network_from_file
    from .diffusers_render import DiffusersRenderer, check_sampling
    from .run import build_evaluators, evaluate_slider
    from .slider_check import check_family
    from .spec import load_spec

    spec = load_spec(spec_path)
    check_sampling(spec)
    evaluators = build_evaluators(spec)
    if not Path(slider).is_file():
        raise ConfigError("slider", f"file {slider} does not exist")
    try:
        slider_file = load_slider(slider)
    except AdapterFileError as exc:
        raise ConfigError("slider", str(exc)) from None
    backend = load_backend(ModelSource(str(model), dtype=dtype, model_config=model_config, device=device, with_vae=True))
    check_family(slider_file, backend.family)
    try:  # a model whose files fuse layers (Flux in diffusers) reads them in its own module layout first
        slider_file = SliderFile(backend.model_tensors(slider_file.tensors), slider_file.metadata, slider_file.path)
        network = network_from_file(slider_file, backend.denoiser(), backend.module_name_from_kohya)
    except AdapterFileError as exc:
        raise ConfigError("slider", str(exc)) from None
    renderer = DiffusersRenderer(backend, network, spec)
    info = {"model": str(model), "slider": str(slider), "host": "diffusers (loba eval)", "family": backend.family,
            "sampling": {"sampler": "cfg_ddim", "grid": renderer.grid, "width": renderer.width, "height": renderer.height}}

    def progress(done: int, total: int, image) -> None:
        if not quiet and (done == total or done % max(1, total // 10) == 0):
            print(f"sample {done}/{total}", flush=True)

    with renderer.attached():
        result = evaluate_slider(spec, renderer, info, out_dir=out, progress=progress, evaluators=evaluators)
    return result.metrics
