"""The node list ComfyUI asks for (comfy_entrypoint in the pack's __init__), and the pack's HTTP routes."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io


def node_classes() -> list[type[io.ComfyNode]]:
    from .apply_nodes import ApplySliderNode, BakeSliderNode
    from .config_nodes import LossNode, OptimizerNode, SamplingNode, TargetingNode
    from .eval_node import EvaluateSliderNode
    from .file_nodes import LoadSliderNode, SaveSliderNode
    from .mask_nodes import MaskNode
    from .merge_node import MergeSlidersNode
    from .preview_node import SliderPreviewGridNode
    from .prompt_nodes import LoadPromptTomlNode, PreservationPromptNode, PromptPairNode, SliderTargetNode
    from .reattach_node import ReattachPromptNode
    from .region_node import AttentionRegionNode
    from .style_shift_node import RegionLayerNode, StyleShiftNode
    from .timestep_node import TimestepScheduleNode
    from .toyworld_node import ToyWorldLoaderNode
    from .train_node import TrainSliderNode

    return [ToyWorldLoaderNode, PromptPairNode, SliderTargetNode, ReattachPromptNode, PreservationPromptNode, LoadPromptTomlNode, MaskNode,
            TimestepScheduleNode, AttentionRegionNode, StyleShiftNode, RegionLayerNode,
            TargetingNode, LossNode, OptimizerNode, SamplingNode, TrainSliderNode, SaveSliderNode, LoadSliderNode, ApplySliderNode,
            SliderPreviewGridNode, MergeSlidersNode, BakeSliderNode, EvaluateSliderNode]


class LobaExtension(ComfyExtension):
    async def on_load(self) -> None:
        from .web_routes import register_routes

        register_routes()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI 0.3.x never calls on_load (newer versions call it first): register here too, once.
        from .web_routes import register_routes

        register_routes()
        return node_classes()
