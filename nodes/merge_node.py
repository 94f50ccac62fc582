"""LOBA Merge Sliders: several sliders/LoRAs with weights into one slider."""

from __future__ import annotations

from comfy_api.latest import io

from ..loba.sliders.family import family_conflict
from ..loba.sliders.merge import MERGE_MODES, merge_sliders
from .file_nodes import check_slider
from .node_errors import fail, finite_number, reported_as
from .types import SliderSocket

WEIGHT_TIP = "Weight of this slider in the merge (negative flips it)."


class MergeSlidersNode(io.ComfyNode):
    DISPLAY = "LOBA Merge Sliders"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_MergeSliders", display_name=cls.DISPLAY, category="LOBA/merge",
            description="Merges up to four sliders or LoRAs with weights. concat: exact, ranks add up. sum: exact, "
                        "refactored to the rank the sum really has. svd: truncated to `rank` (smaller, approximate).",
            inputs=[
                SliderSocket.Input("slider_1", tooltip="First slider."),
                io.Float.Input("weight_1", default=1.0, min=-20.0, max=20.0, step=0.05, tooltip=WEIGHT_TIP),
                SliderSocket.Input("slider_2", tooltip="Second slider."),
                io.Float.Input("weight_2", default=1.0, min=-20.0, max=20.0, step=0.05, tooltip=WEIGHT_TIP),
                io.Combo.Input("mode", options=MERGE_MODES.names(), default="concat", tooltip="How the merged update is stored."),
                io.Int.Input("rank", default=8, min=1, max=1024, tooltip="Rank of the svd mode (ignored by concat and sum)."),
                SliderSocket.Input("slider_3", optional=True, tooltip="Optional third slider."),
                io.Float.Input("weight_3", default=1.0, min=-20.0, max=20.0, step=0.05, tooltip=WEIGHT_TIP),
                SliderSocket.Input("slider_4", optional=True, tooltip="Optional fourth slider."),
                io.Float.Input("weight_4", default=1.0, min=-20.0, max=20.0, step=0.05, tooltip=WEIGHT_TIP),
            ],
            outputs=[SliderSocket.Output(display_name="slider",
                                         tooltip="The merged slider (alpha = rank, so strength 1 = the weighted sum).")],
        )

    @classmethod
    def execute(cls, slider_1, weight_1, slider_2, weight_2, mode, rank, weight_3, weight_4, slider_3=None, slider_4=None) -> io.NodeOutput:
        pairs = [(slider_1, weight_1, "slider_1"), (slider_2, weight_2, "slider_2"),
                 (slider_3, weight_3, "slider_3"), (slider_4, weight_4, "slider_4")]
        sources = [(check_slider(s, cls.DISPLAY, name), w) for s, w, name in pairs if s is not None]
        names = [name for s, _, name in pairs if s is not None]
        for (_, weight), name in zip(sources, names):
            finite_number(weight, cls.DISPLAY, "weight_" + name[-1])
        conflict = family_conflict([s for s, _ in sources], names)
        if conflict is not None:
            raise fail(cls.DISPLAY, conflict[0], conflict[1])
        with reported_as(cls.DISPLAY, "mode"):
            merged, _ = merge_sliders([s for s, _ in sources], [w for _, w in sources], mode, rank)
        return io.NodeOutput(merged)
