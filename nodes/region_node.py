"""LOBA Attention Region: a prompt entry's training region from the frozen model's own attention to a word."""

from __future__ import annotations

from typing import Optional

from comfy_api.latest import io

from ..loba.prompts.region import MAX_GROW, AttentionRegion
from ..loba.prompts.spec import MASK_OUTSIDE
from .node_errors import fail, reported_as
from .types import RegionSocket

REGION_TIP = ("Optional attention region from LOBA Attention Region: this entry trains where the frozen model attends "
              "to the region's word of the target prompt (or everywhere else, inverted), per sample and step. Use "
              "instead of a mask; mask_outside = hold keeps the rest of the image as the model draws it.")
MASK_OUTSIDE_TIP = "; ".join(f"{name}: {text}" for name, text in MASK_OUTSIDE.items())
# Engine fields of a region ("region.word") are this node's widgets.
REGION_WIDGETS = {f"region.{name}": name for name in ("word", "invert", "threshold", "grow", "feather")}


def region_input() -> io.Input:
    return RegionSocket.Input("region", optional=True, tooltip=REGION_TIP)


def mask_outside_input() -> io.Input:
    return io.Combo.Input("mask_outside", options=list(MASK_OUTSIDE), default="ignore", optional=True,
                          tooltip=MASK_OUTSIDE_TIP)


def region_value(region: Optional[AttentionRegion], node: str) -> Optional[AttentionRegion]:
    if region is not None and not isinstance(region, AttentionRegion):
        raise fail(node, "region", f"expected a LOBA Attention Region, got {type(region).__name__}")
    return region


class AttentionRegionNode(io.ComfyNode):
    DISPLAY = "LOBA Attention Region"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_AttentionRegion", display_name=cls.DISPLAY, category="LOBA/prompts",
            description="Region control from the prompt alone: at every step the frozen model's cross-attention to "
                        "`word` in the entry's target prompt says where the object is; the entry trains there "
                        "(or, inverted, everywhere else: the background). No mask to paint; it follows the object "
                        "in every sample.",
            inputs=[
                io.String.Input("word", default="", tooltip="A word of the target prompt, e.g. 'circle' (its object) "
                                                           "or, inverted, the background around it."),
                io.Boolean.Input("invert", default=False, tooltip="Train everywhere except where the word is attended."),
                io.Float.Input("threshold", default=0.5, min=0.0, max=0.99, step=0.05,
                               tooltip="Cut on the per-sample attention map scaled to 0..1; 0 = use the soft map."),
                io.Int.Input("grow", default=0, min=-MAX_GROW, max=MAX_GROW,
                             tooltip="Grow (> 0) or shrink (< 0) the region by this many latent pixels (8 image px)."),
                io.Float.Input("feather", default=0.0, min=0.0, max=float(MAX_GROW), step=0.5,
                               tooltip="Soften the region's edge: Gaussian sigma in latent pixels."),
            ],
            outputs=[RegionSocket.Output(display_name="region",
                                         tooltip="Connect to a prompt node's region input (Prompt Pair, Slider Target, "
                                                 "Re-attach Prompt).")],
        )

    @classmethod
    def execute(cls, word, invert, threshold, grow, feather) -> io.NodeOutput:
        with reported_as(cls.DISPLAY, widget_names=REGION_WIDGETS):
            return io.NodeOutput(AttentionRegion(word=word, invert=invert, threshold=threshold, grow=grow, feather=feather,
                                                 entry=cls.DISPLAY))
