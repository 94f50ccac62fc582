"""LOBA Evaluate Slider: the slider measured on the user's own model inside the graph, sampled with ComfyUI's own
sampler (one seed per sample, the slider through the stock LoRA path), scored by the engine's evaluators
(loba/eval): report IMAGE (table + plots), metrics STRING (the same JSON `loba eval` writes), and the grid."""

from __future__ import annotations

import json

import comfy.model_management
import comfy.samplers
import comfy.utils
from comfy_api.latest import io

from ..loba.eval.run import Rendered, build_evaluators, evaluate_slider
from ..loba.eval.slider_check import FAMILY_OF_CONTEXT, check_family
from ..loba.eval.spec import parse_spec
from ..loba.pixels import pil_to_pixels
from .eval_spec_fields import spec_from_fields, spec_from_file, with_clip_vision_folder
from .flux_comfy import is_flux
from .node_errors import fail, reported_as
from .preview_node import decode_image, encode, sample_latent
from .slider_io import apply_slider, check_model_clip, load_lora_by_name, unet_tensors


def _lora_names() -> list[str]:
    import folder_paths

    return folder_paths.get_filename_list("loras")


def model_family(model):
    """sd1 / sd2 / sdxl by the UNet's cross-attention width, flux by its class; None for others (the toy world: layer
    names decide)."""
    if is_flux(model.model):
        return "flux"
    return FAMILY_OF_CONTEXT.get(model.model.model_config.unet_config.get("context_dim"))


class EvaluateSliderNode(io.ComfyNode):
    DISPLAY = "LOBA Evaluate Slider"

    @classmethod
    def define_schema(cls) -> io.Schema:
        text = io.String.Input
        return io.Schema(
            node_id="LOBA_EvaluateSlider", display_name=cls.DISPLAY, category="LOBA", is_output_node=True,
            description="Measures a slider on this model: every prompt at every weight from the same seeds, scored by "
                        "LOBA's evaluators (pixel and latent drift, LPIPS, CLIP, NudeNet, the toy-world reader) with 95% bootstrap "
                        "intervals. The same numbers as `loba eval --model` for the same seeds and settings.",
            inputs=[
                io.Model.Input("model", tooltip="The base model (without the slider)."),
                io.Clip.Input("clip", tooltip="Text encoder for the prompts."),
                io.Vae.Input("vae", tooltip="Decodes the samples."),
                io.Combo.Input("slider_name", options=_lora_names(), tooltip="The slider or LoRA file in the loras folder."),
                text("spec_file", default="", tooltip="A spec TOML in ComfyUI's input folder; when set it replaces every field below."),
                text("target_prompts", default="", multiline=True, tooltip="One prompt per line: what the slider should change."),
                text("control_prompts", default="", multiline=True, tooltip="One per line: what it must leave alone."),
                text("canary_prompts", default="", multiline=True, tooltip="One per line: unrelated concepts, where damage shows first."),
                text("negative_prompt", default="", tooltip="Negative prompt for every sample."),
                text("weights", default="-1, 0, 1", tooltip="Slider weights, comma-separated; must include 0."),
                text("seeds", default="0, 1, 2, 3", tooltip="One sample per prompt x weight x seed."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="ddim",
                               tooltip="ComfyUI sampler (ddim + ddim_uniform matches `loba eval`)."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="ddim_uniform", tooltip="Noise schedule."),
                io.Int.Input("steps", default=20, min=1, max=1000, tooltip="Sampler steps."),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.5, tooltip="Classifier-free guidance scale."),
                io.Int.Input("width", default=0, min=0, max=8192, step=8, tooltip="0: the model's native size."),
                io.Int.Input("height", default=0, min=0, max=8192, step=8, tooltip="0: the model's native size."),
                text("evaluators", default="pixel", tooltip="Comma-separated: pixel, latent, lpips, clip, nudenet, reader."),
                text("evaluator_settings", default="", multiline=True,
                     tooltip="TOML tables per evaluator, e.g. [nudenet] threshold = 0.5; [clip] weights = a transformers "
                             "CLIP/SigLIP folder (absolute, or a folder name inside ComfyUI's clip_vision folder)."),
            ],
            outputs=[io.Image.Output(display_name="report", tooltip="Table of means with 95% intervals, and plots vs weight."),
                     io.String.Output(display_name="metrics", tooltip="metrics.json as text."),
                     io.Image.Output(display_name="grid", tooltip="Prompts x weights from the first seeds.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, clip, vae, slider_name, spec_file, **fields) -> io.NodeOutput:
        node = cls.DISPLAY
        with reported_as(node):
            data = spec_from_file(spec_file.strip(), _input_folder()) if spec_file.strip() else spec_from_fields(fields)
            spec = parse_spec(with_clip_vision_folder(data, _clip_vision_folders()))
            check_sampler(spec, node)
            slider = load_lora_by_name(slider_name, node, "slider_name")
            check_family(slider, model_family(model), "slider_name")
            check_model_clip(model, clip, node)
            unet_tensors(slider, model, node, "slider_name")  # every layer exists in this MODEL
            models = {w: apply_slider(model, slider, w, node) for w in spec.weights}  # clones: the MODEL stays as it is
            evaluators = build_evaluators(spec)
        render = ComfyRenderer(models, clip, vae, spec, native_side(model))
        bar = comfy.utils.ProgressBar(spec.samples, node_id=cls.hidden.unique_id if cls.hidden else None)
        info = {"model": "ComfyUI MODEL", "slider": slider_name, "host": "ComfyUI (LOBA Evaluate Slider)",
                "sampling": {"sampler": spec.sampler, "scheduler": spec.scheduler, "width": render.width, "height": render.height}}
        with reported_as(node, "evaluators"):
            result = evaluate_slider(spec, render, info, evaluators=evaluators,
                                     progress=lambda done, total, image: bar.update_absolute(done, total))
        report, text = pil_to_pixels(result.report_image()), json.dumps(result.metrics)
        return io.NodeOutput(report, text, pil_to_pixels(result.grid), ui=_ui(report, text))


def _ui(report, text: str) -> dict:
    """The report on the node, and the metrics JSON in the run's history (what a script or the browser reads back)."""
    shown = {"loba_metrics": [text]}
    try:
        from comfy_api.latest import ui

        shown.update(ui.PreviewImage(report).as_dict())
    except Exception:  # no temp folder (in-process tests without a server): the outputs still carry everything
        pass
    return shown


def check_sampler(spec, node: str) -> None:
    """A spec file may name a sampler this ComfyUI lacks: refused before the first sample."""
    for field, value, known in (("sampler_name", spec.sampler, comfy.samplers.KSampler.SAMPLERS),
                                ("scheduler", spec.scheduler, comfy.samplers.KSampler.SCHEDULERS)):
        if value not in known:
            raise fail(node, field, f"'{value}' is not one of this ComfyUI's: {', '.join(known)}")


def _clip_vision_folders() -> list[str]:
    import folder_paths

    return list(folder_paths.get_folder_paths("clip_vision"))


def _input_folder():
    from pathlib import Path

    import folder_paths

    return Path(folder_paths.get_input_directory())


def native_side(model) -> int:
    side = getattr(model.model.model_config, "loba_native_resolution", None)
    return int(side) if side else (1024 if model_family(model) in ("sdxl", "flux") else 512)


class ComfyRenderer:
    """render(prompt, weight, seed) with ComfyUI's sampler; a cancel lands between samples."""

    gives_latents = True

    def __init__(self, models: dict, clip, vae, spec, side: int):
        self.models, self.vae, self.spec = models, vae, spec
        self.width, self.height = spec.width or side, spec.height or side
        self.negative = encode(clip, spec.negative_prompt)
        self.positive = {prompt: encode(clip, prompt) for prompt in spec.prompts}

    def __call__(self, prompt: str, weight: float, seed: int) -> Rendered:
        import numpy as np

        comfy.model_management.throw_exception_if_processing_interrupted()
        samples = sample_latent(self.models[weight], self.positive[prompt], self.negative, seed, self.spec.steps,
                                self.spec.cfg, self.spec.sampler, self.spec.scheduler, self.width, self.height)
        image = np.asarray(decode_image(self.vae, samples), dtype=np.uint8)
        return Rendered(image, samples[0].float().cpu().numpy())
