"""LOBA Train Slider: MODEL + CLIP + prompts -> a slider, with progress, previews, live loss and cancel.

It only adapts: ComfyBackend fits ComfyUI's objects to the engine, the seam turns callbacks into UI
feedback, and the engine's run facade (loba.train.run) does the rest: native resolution, previews,
training, checkpoints (and it restores the model whatever happens).
"""

from __future__ import annotations

import json
from typing import Optional

from comfy_api.latest import io

from ..loba.adapters.from_weights import StartWeights
from ..loba.config import NetworkConfig, OptimizerConfig, SamplingConfig, TrainConfig, config_from_widgets
from ..loba.config.bounds import MAX_PREVIEW_WEIGHTS
from ..loba.config.prompt_bounds import entry_limit
from ..loba.images import loss_curve_image, parse_weights
from ..loba.pixels import pil_to_pixels
from ..loba.prompts import PromptSet
from ..loba.sliders.trained import save_slider_file
from ..loba.train.preview import PreviewPolicy
from ..loba.train.run import RunRequest, run_training
from .comfy_backend import ComfyBackend
from .file_nodes import check_slider
from .flux_comfy import check_flux_config
from .node_errors import fail, reported_as
from .output_paths import checked_prefix, run_paths, sweep_stale_temp_files
from .seam import ComfySeam, raise_interrupt
from .slider_io import new_slider_path
from .types import ConfigPart, LossSocket, OptimizerSocket, PromptsSocket, SamplingSocket, SliderSocket, TargetingSocket
from .widgets import config_input

# Engine fields this node shows under another name, so that errors name the widget the user sees.
WIDGET_NAMES = {"max_train_steps": "steps", "network_dim": "rank", "network_alpha": "alpha",
                "leco_denoise_guidance_scale": "denoise_cfg", "save_every_n_steps": "checkpoint_every",
                "resolutions": "resolution", "resume": "resume_file",
                "network_weights": "start_from"}

# Optional, like every input added after the first release: graphs saved before it keep validating (and training).
INSTANT_TOOLTIP = ("Save the closed-form start alone, without a training step (seconds, not minutes): the instant slider. "
                   "Needs LOBA Targeting init = closed_form; steps and the sampling settings are then unused.")


def _canary_widgets(every, budget, prompts: str) -> dict:
    """The canary inputs that are set (graphs saved before them leave them unset: the config's defaults)."""
    values = {"canary_every": every, "canary_drift_budget": budget,
              "canary_prompts": tuple(line.strip() for line in (prompts or "").splitlines() if line.strip()) or None}
    return {key: value for key, value in values.items() if value is not None}


def _set_only(values: dict) -> dict:
    """The optional inputs a graph sets (older graphs leave them unset: the config's defaults)."""
    return {key: value for key, value in values.items() if value is not None}


def merged_config(node: str, widgets: dict, parts: list[Optional[ConfigPart]]) -> TrainConfig:
    values = dict(widgets)
    for part in parts:
        if part is None:
            continue
        if not isinstance(part, ConfigPart):
            raise fail(node, "settings", f"expected a LOBA settings node output, got {type(part).__name__}")
        values.update(part.values)
    with reported_as(node, widget_names=WIDGET_NAMES):
        return config_from_widgets(values)


class TrainSliderNode(io.ComfyNode):
    DISPLAY = "LOBA Train Slider"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_TrainSlider", display_name=cls.DISPLAY, category="LOBA",
            description="Trains a LoRA slider from prompts alone (LECO, carried to SD1/SD2-v/SDXL and Flux.1). The MODEL and CLIP "
                        "you connect are left exactly as they were; the slider is saved into the loras folder.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model to train a slider for (SD1.x, SD2.x, SDXL, Flux.1 dev/schnell)."),
                io.Clip.Input("clip", tooltip="Its text encoder, used to encode the prompts (and trained through a LoRA with the "
                                            "Targeting node's train_text_encoder; the CLIP itself is left unchanged)."),
                PromptsSocket.Input("prompts", tooltip="Prompt set from the LOBA prompt nodes."),
                config_input(TrainConfig, "max_train_steps", default=300, display_name="steps"),
                config_input(OptimizerConfig, "learning_rate", step=1e-5),
                config_input(NetworkConfig, "network_dim", display_name="rank"),
                config_input(NetworkConfig, "network_alpha", display_name="alpha"),
                config_input(TrainConfig, "seed"),
                io.Int.Input("resolution", default=0, min=0, max=entry_limit("resolution", "max"), step=8,
                             tooltip="Training resolution for prompts that set none; 0 = the model's native size "
                                     "(SD1 512, SD2-v 768, SDXL 1024, Flux 1024, toy world 64). Flux: sides "
                                     "divisible by 16, any aspect ratio."),
                config_input(SamplingConfig, "max_denoising_steps"),
                config_input(SamplingConfig, "leco_denoise_guidance_scale", step=0.5, display_name="denoise_cfg"),
                config_input(SamplingConfig, "denoise_with_adapter"),
                config_input(TrainConfig, "mixed_precision"),
                config_input(TrainConfig, "gradient_checkpointing"),
                config_input(TrainConfig, "save_precision"),
                config_input(TrainConfig, "save_every_n_steps", display_name="checkpoint_every",
                             tooltip="Write a resumable checkpoint every N steps into this run's own folder, "
                                     "output/loba_checkpoints/<filename_prefix>_NNNNN_/; 0 = never."),
                io.Int.Input("preview_every", default=50, min=0, max=100000,
                             tooltip="Show the slider at the preview weights on the progress bar every N steps; 0 = never."),
                io.String.Input("preview_weights", default="-1, 0, 1",
                                tooltip=f"Slider weights of the progress preview, comma-separated (at most {MAX_PREVIEW_WEIGHTS})."),
                io.String.Input("filename_prefix", default="loba/slider",
                                tooltip="Name of the saved slider inside the loras folder (the stock Load LoRA lists it)."),
                io.String.Input("resume_file", default="", optional=True,
                                tooltip="Continue from a checkpoint (same prompts and settings): 'auto' = the latest one of "
                                        "this filename_prefix's newest run (none yet: start fresh), or a checkpoint file "
                                        "or run folder relative to the output folder."),
                io.Vae.Input("vae", optional=True, tooltip="Optional: decodes the progress previews (else a latent preview)."),
                TargetingSocket.Input("targeting", optional=True, tooltip="Optional LOBA Targeting settings."),
                LossSocket.Input("loss", optional=True, tooltip="Optional LOBA Loss settings."),
                OptimizerSocket.Input("optimizer", optional=True, tooltip="Optional LOBA Optimizer settings."),
                SamplingSocket.Input("sampling", optional=True, tooltip="Optional LOBA Sampling settings (trajectory cache)."),
                SliderSocket.Input("start_from", optional=True,
                                   tooltip="Optional: start from this LoRA instead of a fresh slider (Load Slider from the "
                                           "loras folder, or Merge Sliders of several; svd to the rank when higher)."),
                config_input(NetworkConfig, "dim_from_weights", optional=True),
                # Optional: graphs saved before them keep validating, with the defaults (canaries every 10 steps, no budget).
                config_input(TrainConfig, "canary_every", optional=True),
                config_input(TrainConfig, "canary_drift_budget", optional=True, step=0.01),
                io.String.Input("canary_prompts", default="", multiline=True, optional=True,
                                tooltip="Canary prompts, one per line (empty = LOBA's default list): their prediction drift "
                                        "(slider at 1 vs off) is charted every canary_every steps."),
                # Optional as well: older graphs validate unchanged and train uncalibrated.
                config_input(TrainConfig, "calibrate_strength", optional=True),
                config_input(TrainConfig, "calibration_effect", optional=True, step=0.01),
                io.Boolean.Input("instant", default=False, optional=True, tooltip=INSTANT_TOOLTIP),
                # Optional: older graphs validate unchanged (3.5, Flux dev's default; SD models ignore it).
                config_input(SamplingConfig, "guidance", optional=True, step=0.1),
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
                resume_file="", vae=None, targeting=None, loss=None, optimizer=None, sampling=None, start_from=None,
                dim_from_weights=False, canary_every=None, canary_drift_budget=None, canary_prompts="",
                calibrate_strength=None, calibration_effect=None, instant=False, guidance=None) -> io.NodeOutput:
        node = cls.DISPLAY
        if not isinstance(prompts, PromptSet):
            raise fail(node, "prompts", "connect a LOBA prompt node (Prompt Pair, Slider Target, Load Prompt TOML)")
        widgets = {"max_train_steps": max_train_steps, "learning_rate": learning_rate, "network_dim": network_dim,
                   "network_alpha": network_alpha, "seed": seed, "max_denoising_steps": max_denoising_steps,
                   "leco_denoise_guidance_scale": leco_denoise_guidance_scale, "denoise_with_adapter": denoise_with_adapter,
                   "mixed_precision": mixed_precision, "gradient_checkpointing": gradient_checkpointing,
                   "save_precision": save_precision, "save_every_n_steps": save_every_n_steps,
                   "dim_from_weights": dim_from_weights,
                   **_canary_widgets(canary_every, canary_drift_budget, canary_prompts),
                   **_set_only({"calibrate_strength": calibrate_strength, "calibration_effect": calibration_effect,
                                "guidance": guidance})}
        config = merged_config(node, widgets, [targeting, loss, optimizer, sampling])
        start = None if start_from is None else StartWeights((check_slider(start_from, node, "start_from"),), (1.0,))
        with reported_as(node):
            weights = tuple(parse_weights(preview_weights, "preview_weights")) if preview_every else ()
            policy = PreviewPolicy(preview_every, weights)
        prefix = checked_prefix(filename_prefix, node)  # every piece of the name, before any model work
        save_path = new_slider_path(prefix, node)
        sweep_stale_temp_files(save_path.parent)
        paths = run_paths(prefix, resume_file or "", bool(save_every_n_steps), save_path, node)
        try:
            slider = cls._train(node, prompts, config, paths, policy, resolution, model, clip, vae, start, bool(instant))
        finally:
            paths.discard_if_empty()
        slider_file = slider.slider_file(str(save_path), cls._workflow_metadata())
        save_slider_file(slider_file, save_path, config.save_precision)
        slider.save_ema(save_path, cls._workflow_metadata())  # NAME-ema beside it when ema_decay > 0
        if slider.stopped and not slider.stop_reason:
            # Saved above; now let ComfyUI end the run as interrupted, so this partial result is not cached as done.
            raise_interrupt()
        curve = pil_to_pixels(loss_curve_image(slider.losses))
        return io.NodeOutput(slider_file, curve, str(save_path), ui={"loba_losses": slider.losses[-2000:]})

    @classmethod
    def _train(cls, node, prompts, config, paths, policy, resolution, model, clip, vae, start, instant):
        """The run; a cancel wherever it lands (step, preview, checkpoint, progress update) returns the partial slider."""
        with reported_as(node, "model"):
            backend = ComfyBackend(model, clip, vae, guidance=config.sampling.guidance)
            if backend.family == "flux":
                check_flux_config(config)
        request = RunRequest(prompts, config, backend=backend, callbacks=ComfySeam(cls.hidden.unique_id),
                             out_dir=paths.out_dir, resume=paths.resume, preview=policy, resolution=resolution,
                             network_weights=start, instant=instant)
        with reported_as(node, "prompts", widget_names=WIDGET_NAMES):
            return run_training(request)

    @classmethod
    def _workflow_metadata(cls) -> dict[str, str]:
        """The graph that made the slider, in its metadata (ComfyUI can load a workflow from it)."""
        extra = {}
        for key, value in (("prompt", cls.hidden.prompt), ("workflow", (cls.hidden.extra_pnginfo or {}).get("workflow"))):
            if value is not None:
                extra[key] = json.dumps(value)
        return extra
