"""LOBA Slider Preview Grid: the slider at several weights x several prompts, sampled with ComfyUI's own sampler.

Cancel: every sampler step goes through ComfyUI's progress bar (whose hook raises the interrupt) and checks the
interrupt flag itself (in-process there is no hook), so a cancel ends the grid within one sampler step.
"""

from __future__ import annotations

from typing import Optional

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import torch
from comfy_api.latest import io
from PIL import Image

from ..loba.config.bounds import MAX_GRID_PROMPTS, MAX_PREVIEW_WEIGHTS, check_count
from ..loba.errors import ConfigError
from ..loba.images import labelled_grid, parse_weights
from ..loba.pixels import pil_to_pixels, pixels_to_pil
from .file_nodes import check_slider
from .node_errors import fail
from .slider_io import apply_slider, check_model_clip
from .types import SliderSocket


def encode(clip, text: str):
    tokens = clip.tokenize(text)
    return clip.encode_from_tokens_scheduled(tokens)


def step_callback(bar: Optional[comfy.utils.ProgressBar]):
    """ComfyUI's sampler callback: one bar tick per sampler step, and the interrupt checked at each."""
    def callback(step, x0, x, total_steps):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if bar is not None:
            bar.update(1)
    return callback


def sample_latent(model, positive, negative, seed: int, steps: int, cfg: float, sampler: str, scheduler: str,
                  width: int, height: int, bar: Optional[comfy.utils.ProgressBar] = None) -> torch.Tensor:
    """The sampler's final latent [1, C, h, w] from an empty latent, as KSampler makes it."""
    channels = model.get_model_object("latent_format").latent_channels
    latent = torch.zeros(1, channels, height // 8, width // 8)
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, positive, negative, latent,
                               denoise=1.0, disable_pbar=True, seed=seed, callback=step_callback(bar))


def decode_image(vae, samples: torch.Tensor) -> Image.Image:
    pixels = vae.decode(samples)
    pixels = pixels.reshape(-1, *pixels.shape[-3:])[0]
    return pixels_to_pil(pixels)[0]


def sample_image(model, vae, positive, negative, seed: int, steps: int, cfg: float, sampler: str, scheduler: str,
                 width: int, height: int, bar: Optional[comfy.utils.ProgressBar] = None) -> Image.Image:
    samples = sample_latent(model, positive, negative, seed, steps, cfg, sampler, scheduler, width, height, bar)
    return decode_image(vae, samples)


class SliderPreviewGridNode(io.ComfyNode):
    DISPLAY = "LOBA Slider Preview Grid"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_SliderPreviewGrid", display_name=cls.DISPLAY, category="LOBA", is_output_node=True,
            description="Samples each prompt at each slider weight from the same seed with ComfyUI's own sampler and "
                        "VAE (the slider applied as the stock LoRA loader does), as one labelled grid: rows = prompts, "
                        "columns = weights.",
            inputs=[
                io.Model.Input("model", tooltip="The base model (without the slider)."),
                io.Clip.Input("clip", tooltip="Text encoder for the prompts."),
                io.Vae.Input("vae", tooltip="Decodes the samples."),
                SliderSocket.Input("slider", tooltip="The slider to preview."),
                io.String.Input("prompts", default="", multiline=True,
                                tooltip=f"One prompt per line; each is a row (at most {MAX_GRID_PROMPTS})."),
                io.String.Input("negative", default="", tooltip="Negative prompt for every cell."),
                io.String.Input("weights", default="-2, -1, 0, 1, 2",
                                tooltip=f"Slider weights, comma-separated; each is a column (at most {MAX_PREVIEW_WEIGHTS})."),
                io.Int.Input("seed", default=0, min=0, max=2**63 - 1, tooltip="One seed for every cell, so columns differ only by weight."),
                io.Int.Input("steps", default=20, min=1, max=200, tooltip="Sampler steps."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=50.0, step=0.5, tooltip="Classifier-free guidance scale."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler", tooltip="Sampler."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="normal", tooltip="Noise schedule."),
                io.Int.Input("width", default=512, min=8, max=8192, step=8, tooltip="Image width (64 for the toy world)."),
                io.Int.Input("height", default=512, min=8, max=8192, step=8, tooltip="Image height (64 for the toy world)."),
            ],
            outputs=[io.Image.Output(display_name="grid", tooltip="The labelled grid.")],
        )

    @classmethod
    def execute(cls, model, clip, vae, slider, prompts, negative, weights, seed, steps, cfg, sampler_name, scheduler,
                width, height) -> io.NodeOutput:
        node = cls.DISPLAY
        slider = check_slider(slider, node)
        rows = [line.strip() for line in prompts.splitlines() if line.strip()]
        if not rows:
            raise fail(node, "prompts", "is empty; give one prompt per line")
        if width % 8 or height % 8:
            raise fail(node, "width", f"{width}x{height}: width and height must be multiples of 8")
        try:
            columns = parse_weights(weights)
            check_count(columns, "weights", MAX_PREVIEW_WEIGHTS, "weights")
            check_count(rows, "prompts", MAX_GRID_PROMPTS, "prompts")
        except ConfigError as exc:
            raise fail(node, exc.field, str(exc).split(": ", 1)[-1]) from None
        check_model_clip(model, clip, node)
        models = {w: apply_slider(model, slider, w, node) for w in columns}
        negative_cond = encode(clip, negative)
        bar = comfy.utils.ProgressBar(len(rows) * len(columns) * steps)
        cells = []
        for text in rows:
            positive = encode(clip, text)
            cells.append([sample_image(models[w], vae, positive, negative_cond, seed, steps, cfg, sampler_name, scheduler,
                                       width, height, bar) for w in columns])
        grid = labelled_grid(cells, rows, [f"w = {w:g}" for w in columns])
        return io.NodeOutput(pil_to_pixels(grid), ui=_preview_ui(grid))


def _preview_ui(grid: Image.Image):
    from comfy_api.latest import ui

    try:
        return ui.PreviewImage(pil_to_pixels(grid))
    except Exception:  # no output folder (in-process tests without a server): the IMAGE output still carries the grid
        return None
