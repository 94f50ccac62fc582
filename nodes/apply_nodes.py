"""Apply Slider and Bake Slider: a slider on a MODEL at a strength, through the stock LoRA path."""

from __future__ import annotations

from comfy_api.latest import io

from .file_nodes import check_slider
from .node_errors import finite_number
from .slider_io import apply_slider
from .types import SliderSocket

STRENGTH_TIP = "Slider weight: 1 = as trained, negative values go the other way (e.g. -1 = the opposite pole)."


class ApplySliderNode(io.ComfyNode):
    DISPLAY = "LOBA Apply Slider"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_ApplySlider", display_name=cls.DISPLAY, category="LOBA",
            description="The MODEL with the slider at a strength, exactly as the stock LoraLoaderModelOnly applies it.",
            inputs=[io.Model.Input("model", tooltip="The model the slider was trained for."),
                    SliderSocket.Input("slider", tooltip="A trained, loaded or merged slider."),
                    io.Float.Input("strength", default=1.0, min=-20.0, max=20.0, step=0.05, tooltip=STRENGTH_TIP)],
            outputs=[io.Model.Output(display_name="MODEL", tooltip="A patched clone; the input MODEL is unchanged.")],
        )

    @classmethod
    def execute(cls, model, slider, strength) -> io.NodeOutput:
        strength = finite_number(strength, cls.DISPLAY, "strength")
        return io.NodeOutput(apply_slider(model, check_slider(slider, cls.DISPLAY), strength, cls.DISPLAY))


class BakeSliderNode(io.ComfyNode):
    DISPLAY = "LOBA Bake Slider into Model"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_BakeSlider", display_name=cls.DISPLAY, category="LOBA/merge",
            description="Bakes one or two sliders into the MODEL's weights at their strengths; connect the result to the "
                        "stock Save Checkpoint to write a checkpoint with the sliders merged in.",
            inputs=[io.Model.Input("model", tooltip="The base model."),
                    SliderSocket.Input("slider", tooltip="The slider to bake in."),
                    io.Float.Input("strength", default=1.0, min=-20.0, max=20.0, step=0.05, tooltip=STRENGTH_TIP),
                    SliderSocket.Input("slider_2", optional=True, tooltip="Optional second slider."),
                    io.Float.Input("strength_2", default=1.0, min=-20.0, max=20.0, step=0.05, tooltip=STRENGTH_TIP)],
            outputs=[io.Model.Output(display_name="MODEL", tooltip="The model with the sliders merged into its weights "
                                                                  "when saved or sampled; the input MODEL is unchanged.")],
        )

    @classmethod
    def execute(cls, model, slider, strength, strength_2, slider_2=None) -> io.NodeOutput:
        first = check_slider(slider, cls.DISPLAY)
        second = None if slider_2 is None else check_slider(slider_2, cls.DISPLAY, "slider_2")
        strength = finite_number(strength, cls.DISPLAY, "strength")
        strength_2 = finite_number(strength_2, cls.DISPLAY, "strength_2")
        out = apply_slider(model, first, strength, cls.DISPLAY)
        if second is not None:
            out = apply_slider(out, second, strength_2, cls.DISPLAY)
        return io.NodeOutput(out)
