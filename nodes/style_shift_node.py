"""LOBA Region Layer and LOBA Style Shift (ST-LOBA): a render style migrated across content prompts, with regions
stacked in layers of their own weights."""

from __future__ import annotations

from typing import Optional

from comfy_api.latest import io

from ..loba.config.prompt_bounds import PromptEntryBounds, entry_limit
from ..loba.errors import SpecError
from ..loba.models.buckets import SQUARE
from ..loba.objectives.redirect_schedules import DEFAULT_REDIRECT_SCHEDULE, REDIRECT_SCHEDULES
from ..loba.prompts.layers import MAX_LAYERS, RegionLayer
from ..loba.prompts.reattach import AUTO
from ..loba.prompts.region import AttentionRegion
from ..loba.prompts.style_shift import DEFAULT_TEMPLATE, StyleShiftEntry
from .node_errors import fail, reported_as
from .prompt_nodes import (
    CATEGORY,
    RESOLUTION_TIP,
    WIDGET_NAMES,
    bucket_input,
    chain_input,
    extend,
    prompts_output,
    resolutions,
    single_mask,
)
from .reattach_node import SCHEDULE_TIP, parse_explicit
from .region_node import MASK_OUTSIDE_TIP, REGION_WIDGETS, region_value
from .timestep_node import schedule_fields, timesteps_input
from .types import LayersSocket, RegionSocket
from .widgets import config_input

CONTENT_TIP = ("The prompts whose style moves, one per line (everything the slider should redraw in the new style). "
               "A line 'prompt => styled prompt' gives the styled form itself (e.g. 'a red circle => a red outlined "
               "circle'); other lines are styled by the template.")
LAYER_WIDGETS = {**REGION_WIDGETS, "region.word": "words", "weight": "weight", "box": "box", "mask": "mask"}
STYLE_WIDGETS = {**WIDGET_NAMES, "content": "content", "explicit": "explicit", "layers": "layers"}


def parse_content(text: str) -> tuple:
    """'prompt' or 'prompt => styled' per non-empty line."""
    items = []
    for line in text.splitlines():
        if not line.strip():
            continue
        prompt, arrow, styled = line.partition("=>")
        items.append((prompt.strip(), styled.strip()) if arrow else prompt.strip())
    return tuple(items)


def parse_box(text: str, node: str) -> Optional[tuple[float, ...]]:
    if not text.strip():
        return None
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise fail(node, "box", f"{text!r} is not four numbers 'top, left, bottom, right' (fractions 0..1)") from None


class RegionLayerNode(io.ComfyNode):
    DISPLAY = "LOBA Region Layer"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_RegionLayer", display_name=cls.DISPLAY, category=CATEGORY,
            description="One layer of an over-layered region: an attention region, a box or a mask with the share of "
                        "the change it takes. Chain layers bottom to top; where they overlap the later one wins "
                        "(strong on the shape, weak on the background: a style moves the lines, not the fill).",
            inputs=[
                io.Float.Input("weight", default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="Share of the change this region takes: 1 = all of it, 0 = held to the frozen model."),
                RegionSocket.Input("region", optional=True, tooltip="An attention region (LOBA Attention Region)."),
                io.String.Input("words", default="", optional=True,
                                tooltip="With a region: its word alternatives, comma-separated (e.g. 'circle, square, "
                                        "triangle'); each prompt uses the first it contains. Empty = the region's word."),
                io.String.Input("box", default="", optional=True,
                                tooltip="Instead of a region: 'top, left, bottom, right' as fractions 0..1 of the image "
                                        "('0, 0, 1, 1' = the whole image, a base layer)."),
                io.Mask.Input("mask", optional=True, tooltip="Instead of a region: a mask (white = this layer)."),
                LayersSocket.Input("layers", optional=True, tooltip="Layers below this one (copied, never changed)."),
            ],
            outputs=[LayersSocket.Output(display_name="layers", tooltip="Connect to LOBA Style Shift's layers input.")],
        )

    @classmethod
    def execute(cls, weight, region=None, words="", box="", mask=None, layers=None) -> io.NodeOutput:
        below = tuple(layers or ())
        if len(below) >= MAX_LAYERS:
            raise fail(cls.DISPLAY, "layers", f"already has {len(below)} layers; at most {MAX_LAYERS}")
        region = region_value(region, cls.DISPLAY)
        alternatives = tuple(w.strip() for w in words.split(",") if w.strip())
        with reported_as(cls.DISPLAY, widget_names=LAYER_WIDGETS):
            if region is not None and alternatives:
                region = AttentionRegion(word=alternatives[0], invert=region.invert, threshold=region.threshold,
                                         grow=region.grow, feather=region.feather, entry=cls.DISPLAY)
            layer = RegionLayer(weight=weight, region=region, words=alternatives if region is not None else (),
                                box=parse_box(box, cls.DISPLAY), mask=single_mask(mask, cls.DISPLAY), name=cls.DISPLAY)
        return io.NodeOutput((*below, layer))


class StyleShiftNode(io.ComfyNode):
    DISPLAY = "LOBA Style Shift (ST-LOBA)"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_StyleShift", display_name=cls.DISPLAY, category=CATEGORY,
            description="Migrate a render style across everything the content prompts draw: each content prompt learns "
                        "what its styled form draws (on that form's own samples), so at weight 1 it draws the new style "
                        "and keeps what it names; explicit requests of the old style keep their output.",
            inputs=[
                io.String.Input("style", default="", tooltip="The style words to migrate to, e.g. 'outlined', 'watercolor'."),
                io.String.Input("content", default="", multiline=True, tooltip=CONTENT_TIP),
                io.String.Input("replaces", default="", tooltip="The old style's words (e.g. 'filled'): explicit = auto "
                                                                "holds each content prompt asking for it."),
                io.String.Input("template", default=DEFAULT_TEMPLATE,
                                tooltip="How a content line without '=>' becomes its styled form ({content}, {style})."),
                io.String.Input("explicit", default=AUTO, multiline=True,
                                tooltip="Prompts whose output must not move, one per line: 'auto' = the content prompts "
                                        "with the old style (needs replaces); empty = none."),
                io.Combo.Input("schedule", options=REDIRECT_SCHEDULES.names(), default=DEFAULT_REDIRECT_SCHEDULE,
                               tooltip=SCHEDULE_TIP),
                config_input(PromptEntryBounds, "ramp", step=0.05),
                io.Int.Input("resolution", default=0, min=0, max=entry_limit("resolution", "max"), step=8,
                             tooltip=RESOLUTION_TIP),
                config_input(PromptEntryBounds, "batch_size"),
                config_input(PromptEntryBounds, "weight", step=0.05),
                chain_input(),
                LayersSocket.Input("layers", optional=True,
                                   tooltip="Over-layered regions (LOBA Region Layer chain); none = the whole image shifts."),
                io.Combo.Input("mask_outside", options=["hold", "ignore"], default="hold", optional=True,
                               tooltip=MASK_OUTSIDE_TIP),
                bucket_input(),
                timesteps_input(),
            ],
            outputs=[prompts_output()],
        )

    @classmethod
    def execute(cls, style, content, replaces, template, explicit, schedule, ramp, resolution, batch_size, weight,
                prompts=None, layers=None, mask_outside="hold", bucket=SQUARE, timesteps=None) -> io.NodeOutput:
        name = f"{cls.DISPLAY} '{style[:40]}'"
        with reported_as(cls.DISPLAY, widget_names=STYLE_WIDGETS):
            try:
                entry = StyleShiftEntry(style=style, content=parse_content(content), replaces=replaces, template=template,
                                        explicit=parse_explicit(explicit), layers=tuple(layers or ()), schedule=schedule,
                                        ramp=ramp, resolutions=resolutions(resolution, bucket, None, name),
                                        batch_size=batch_size, weight=weight, mask_outside=mask_outside, name=name,
                                        **schedule_fields(timesteps, cls.DISPLAY))
            except SpecError as error:
                if error.entry.startswith(f"{name} layers["):
                    raise fail(cls.DISPLAY, "layers", str(error)) from None
                raise
            return io.NodeOutput(extend(prompts, entry, node=cls.DISPLAY))
