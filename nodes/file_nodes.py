"""Save Slider / Load Slider: kohya-format files in ComfyUI's loras folder (the stock Load LoRA lists them)."""

from __future__ import annotations

import json

import folder_paths
from comfy_api.latest import io

from ..loba.dtypes import SAVE_PRECISIONS
from ..loba.errors import AdapterFileError
from ..loba.sliders.kohya import SliderFile
from ..loba.sliders.trained import save_slider_file
from ..loba.sliders.validate import validate_tensors
from .node_errors import fail
from .slider_io import load_lora_by_name, new_slider_path
from .types import SliderSocket

CATEGORY = "LOBA/files"


def check_slider(value, node: str, field: str = "slider") -> SliderFile:
    """A SliderFile whose tensors are usable (shapes, rank, dtype, finite values), whichever node made it."""
    if not isinstance(value, SliderFile):
        raise fail(node, field, f"expected a LOBA slider (Train, Load or Merge Slider), got {type(value).__name__}")
    try:
        validate_tensors(value.tensors, value.path or "the slider")
    except AdapterFileError as exc:
        raise fail(node, field, str(exc)) from None
    return value


class SaveSliderNode(io.ComfyNode):
    DISPLAY = "LOBA Save Slider"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_SaveSlider", display_name=cls.DISPLAY, category=CATEGORY, is_output_node=True,
            description="Writes the slider into the loras folder as a kohya-format LoRA (loads in ComfyUI, A1111/Forge, "
                        "kohya, diffusers), with the LOBA settings and this workflow in its metadata. Never overwrites.",
            inputs=[SliderSocket.Input("slider", tooltip="The slider to save."),
                    io.String.Input("filename_prefix", default="loba/slider",
                                    tooltip="Name inside the loras folder; a counter is appended."),
                    io.Combo.Input("precision", options=list(SAVE_PRECISIONS), default="fp16", tooltip="dtype of the saved tensors.")],
            outputs=[io.String.Output(display_name="path", tooltip="The written file.")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    def execute(cls, slider, filename_prefix, precision) -> io.NodeOutput:
        slider = check_slider(slider, cls.DISPLAY)
        path = new_slider_path(filename_prefix, cls.DISPLAY)
        metadata = dict(slider.metadata)
        if cls.hidden.prompt is not None:
            metadata["prompt"] = json.dumps(cls.hidden.prompt)
        workflow = (cls.hidden.extra_pnginfo or {}).get("workflow")
        if workflow is not None:
            metadata["workflow"] = json.dumps(workflow)
        save_slider_file(SliderFile(slider.tensors, metadata, str(path)), path, precision)
        return io.NodeOutput(str(path), ui={"text": [str(path)]})


class LoadSliderNode(io.ComfyNode):
    DISPLAY = "LOBA Load Slider"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_LoadSlider", display_name=cls.DISPLAY, category=CATEGORY,
            description="Loads a slider or any kohya LoRA/LoCon from the loras folder, for Apply, Preview Grid or Merge.",
            inputs=[io.Combo.Input("lora_name", options=folder_paths.get_filename_list("loras"),
                                   tooltip="A file in the loras folder.")],
            outputs=[SliderSocket.Output(display_name="slider", tooltip="The loaded slider.")],
        )

    @classmethod
    def execute(cls, lora_name) -> io.NodeOutput:
        return io.NodeOutput(load_lora_by_name(lora_name, cls.DISPLAY))

    @classmethod
    def fingerprint_inputs(cls, lora_name):
        # A file rewritten under the same name must be read again.
        path = folder_paths.get_full_path("loras", lora_name)
        if path is None:
            return lora_name
        import os

        stat = os.stat(path)
        return f"{lora_name}:{stat.st_mtime_ns}:{stat.st_size}"
