"""LOBA Train Slider: MODEL + CLIP + prompts -> a slider, with progress, previews, live loss and cancel.

It only adapts: ComfyBackend fits ComfyUI's objects to the engine, the seam turns callbacks into UI
feedback, and loba.train.loop.train does the training (and restores the model whatever happens).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import comfy.model_management
import folder_paths
import torch
from comfy_api.latest import io
from PIL import Image

from ..loba.config import NetworkConfig, OptimizerConfig, SamplingConfig, TrainConfig, config_from_widgets
from ..loba.dtypes import dtype_named
from ..loba.images import labelled_grid, loss_curve_image, parse_weights
from ..loba.pixels import pil_to_pixels, pixels_to_pil
from ..loba.prompts import PromptSet
from ..loba.sliders.kohya import SliderFile, network_metadata, slider_tensors
from ..loba.sliders.metadata import slider_metadata
from ..loba.train.loop import train
from ..loba.train.preview import preview_latents
from .comfy_backend import ComfyBackend
from .node_errors import fail, reported_as
from .seam import ComfySeam
from .slider_io import new_slider_path, save_slider_file
from .types import ConfigPart, LossSocket, OptimizerSocket, PromptsSocket, SamplingSocket, SliderSocket, TargetingSocket
from .widgets import config_input

NATIVE_RESOLUTION = {"sd1": 512, "sd2": 512, "sdxl": 1024}


def native_resolution(backend: ComfyBackend) -> int:
    config = backend.model.model_config
    own = getattr(config, "loba_native_resolution", None)
    if own:
        return int(own)
    if backend.family == "sd2" and backend.prediction_type == "v_prediction":
        return 768
    return NATIVE_RESOLUTION[backend.family]


def checkpoint_folder(prefix: str) -> Path:
    return Path(folder_paths.get_output_directory()) / "loba_checkpoints" / Path(prefix).name


def resolve_resume(text: str, node: str) -> Optional[Path]:
    if not text.strip():
        return None
    path = Path(text.strip()).expanduser()
    path = path if path.is_absolute() else Path(folder_paths.get_output_directory()) / path
    if not path.is_file():
        raise fail(node, "resume_file", f"{path} does not exist; give a checkpoint written by Train Slider "
                                        "(output/loba_checkpoints/...), absolute or relative to the output folder")
    return path


def latents_to_images(latents: torch.Tensor, backend: ComfyBackend, vae) -> list[Image.Image]:
    """Decode with the VAE when one is connected, else a quick look at the latent's first three channels."""
    latent_format = backend.model.latent_format
    if vae is not None:
        pixels = vae.decode(latent_format.process_out(latents.float()).to("cpu"))
        pixels = pixels.reshape(-1, *pixels.shape[-3:])
    else:
        x = latents.float().cpu()[:, :3]
        low, high = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
        pixels = ((x - low) / (high - low).clamp_min(1e-6)).permute(0, 2, 3, 1)
    return pixels_to_pil(pixels)


class PreviewMaker:
    """Samples the first pair's target at a few slider weights from one seed (the progress-bar preview)."""

    def __init__(self, backend: ComfyBackend, prompts: PromptSet, config: TrainConfig, weights: list[float], vae):
        pair = prompts.pairs()[0]
        self.backend, self.weights, self.vae, self.config = backend, weights, vae, config
        self.prompt = pair.target
        self.height, self.width = pair.resolutions[0]
        with torch.inference_mode(False):
            encoded = backend.encode_prompts([pair.target, pair.unconditional])
        self.cond, self.uncond = encoded[pair.target], encoded[pair.unconditional]

    @torch.no_grad()  # the trainer runs with grad enabled; the VAE's weights are inference tensors
    def __call__(self, network, step: int) -> Image.Image:
        sampling = self.config.sampling
        latents = preview_latents(self.backend, network, self.cond, self.uncond, self.weights, self.height, self.width,
                                  steps=min(20, sampling.max_denoising_steps), cfg=sampling.leco_denoise_guidance_scale,
                                  seed=self.config.seed)
        images = latents_to_images(latents, self.backend, self.vae)
        return labelled_grid([images], [f"step {step}: {self.prompt}"], [f"w = {w:g}" for w in self.weights], min_tile=96)


def merged_config(node: str, widgets: dict, parts: list[Optional[ConfigPart]]) -> TrainConfig:
    values = dict(widgets)
    for part in parts:
        if part is None:
            continue
        if not isinstance(part, ConfigPart):
            raise fail(node, "settings", f"expected a LOBA settings node output, got {type(part).__name__}")
        values.update(part.values)
    with reported_as(node):
        return config_from_widgets(values)


class TrainSliderNode(io.ComfyNode):
    DISPLAY = "LOBA Train Slider"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_TrainSlider", display_name=cls.DISPLAY, category="LOBA",
            description="Trains a LoRA slider from prompts alone (LECO, carried to SD1/SD2-v/SDXL). The MODEL and CLIP "
                        "you connect are left exactly as they were; the slider is saved into the loras folder.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model to train a slider for (SD1.x, SD2.x, SDXL)."),
                io.Clip.Input("clip", tooltip="Its text encoder, used to encode the prompts once."),
                PromptsSocket.Input("prompts", tooltip="Prompt set from the LOBA prompt nodes."),
                config_input(TrainConfig, "max_train_steps", default=300, display_name="steps"),
                config_input(OptimizerConfig, "learning_rate", step=1e-5),
                config_input(NetworkConfig, "network_dim", display_name="rank"),
                config_input(NetworkConfig, "network_alpha", display_name="alpha"),
                config_input(TrainConfig, "seed"),
                io.Int.Input("resolution", default=0, min=0, max=8192, step=8,
                             tooltip="Training resolution for prompts that set none; 0 = the model's native size "
                                     "(SD1 512, SD2-v 768, SDXL 1024, toy world 64)."),
                config_input(SamplingConfig, "max_denoising_steps"),
                config_input(SamplingConfig, "leco_denoise_guidance_scale", step=0.5, display_name="denoise_cfg"),
                config_input(SamplingConfig, "denoise_with_adapter"),
                config_input(TrainConfig, "mixed_precision"),
                config_input(TrainConfig, "gradient_checkpointing"),
                config_input(TrainConfig, "save_precision"),
                config_input(TrainConfig, "save_every_n_steps", display_name="checkpoint_every",
                             tooltip="Write a resumable checkpoint to output/loba_checkpoints every N steps; 0 = never."),
                io.Int.Input("preview_every", default=50, min=0, max=100000,
                             tooltip="Show the slider at the preview weights on the progress bar every N steps; 0 = never."),
                io.String.Input("preview_weights", default="-1, 0, 1", tooltip="Slider weights of the progress preview, comma-separated."),
                io.String.Input("filename_prefix", default="loba/slider",
                                tooltip="Name of the saved slider inside the loras folder (the stock Load LoRA lists it)."),
                io.String.Input("resume_file", default="", optional=True,
                                tooltip="A checkpoint to continue from (same prompts and settings), relative to the output folder."),
                io.Vae.Input("vae", optional=True, tooltip="Optional: decodes the progress previews (else a latent preview)."),
                TargetingSocket.Input("targeting", optional=True, tooltip="Optional LOBA Targeting settings."),
                LossSocket.Input("loss", optional=True, tooltip="Optional LOBA Loss settings."),
                OptimizerSocket.Input("optimizer", optional=True, tooltip="Optional LOBA Optimizer settings."),
                SamplingSocket.Input("sampling", optional=True, tooltip="Optional LOBA Sampling settings (trajectory cache)."),
            ],
            outputs=[
                SliderSocket.Output(display_name="slider", tooltip="The trained slider: connect to Apply, Preview Grid, Save or Merge."),
                io.Image.Output(display_name="loss_curve", tooltip="Loss per step (light) and its moving average (dark)."),
                io.String.Output(display_name="path", tooltip="Where the slider was saved."),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    def execute(cls, model, clip, prompts, max_train_steps, learning_rate, network_dim, network_alpha, seed, resolution,
                max_denoising_steps, leco_denoise_guidance_scale, denoise_with_adapter, mixed_precision,
                gradient_checkpointing, save_precision, save_every_n_steps, preview_every, preview_weights, filename_prefix,
                resume_file="", vae=None, targeting=None, loss=None, optimizer=None, sampling=None) -> io.NodeOutput:
        node = cls.DISPLAY
        if not isinstance(prompts, PromptSet):
            raise fail(node, "prompts", "connect a LOBA prompt node (Prompt Pair, Slider Target, Load Prompt TOML)")
        widgets = {"max_train_steps": max_train_steps, "learning_rate": learning_rate, "network_dim": network_dim,
                   "network_alpha": network_alpha, "seed": seed, "max_denoising_steps": max_denoising_steps,
                   "leco_denoise_guidance_scale": leco_denoise_guidance_scale, "denoise_with_adapter": denoise_with_adapter,
                   "mixed_precision": mixed_precision, "gradient_checkpointing": gradient_checkpointing,
                   "save_precision": save_precision, "save_every_n_steps": save_every_n_steps}
        config = merged_config(node, widgets, [targeting, loss, optimizer, sampling])
        with reported_as(node):
            weights = parse_weights(preview_weights, "preview_weights") if preview_every else []
        save_path = new_slider_path(filename_prefix, node)
        resume = resolve_resume(resume_file or "", node)
        with reported_as(node, "model"):
            backend = ComfyBackend(model, clip)
            prompts = prompts.with_default_resolution((resolution or native_resolution(backend),) * 2)
            prompts.validate()
        preview = PreviewMaker(backend, prompts, config, weights, vae) if preview_every else None
        seam = ComfySeam(cls.hidden.unique_id, preview, preview_every)
        checkpoints = checkpoint_folder(filename_prefix) if save_every_n_steps else None
        with reported_as(node, "prompts"):
            result = train(backend, prompts, config, callbacks=seam, out_dir=checkpoints, resume=resume)
        slider = cls._slider(result, backend, config, prompts, save_path)
        save_slider_file(slider, save_path, dtype_named(config.save_precision, "save_precision"))
        if result.stopped:
            # Saved above; now let ComfyUI end the run as interrupted, so this partial result is not cached as done.
            comfy.model_management.throw_exception_if_processing_interrupted()
        curve = pil_to_pixels(loss_curve_image(result.losses))
        return io.NodeOutput(slider, curve, str(save_path), ui={"loba_losses": result.losses[-2000:]})

    @classmethod
    def _slider(cls, result, backend, config, prompts, path: Path) -> SliderFile:
        extra = {"loba_stopped_early": str(result.stopped).lower()}
        for key, value in (("prompt", cls.hidden.prompt), ("workflow", (cls.hidden.extra_pnginfo or {}).get("workflow"))):
            if value is not None:
                extra[key] = json.dumps(value)
        metadata = {**network_metadata(result.network), **slider_metadata(config, prompts, backend, result.steps_done, extra)}
        return SliderFile(slider_tensors(result.network, backend.kohya_name), metadata, str(path))
