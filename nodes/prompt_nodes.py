"""Prompt nodes: each adds to a chainable prompt set (the optional input is copied, never changed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from comfy_api.latest import io

from ..loba.config.prompt_bounds import PromptEntryBounds, entry_limit
from ..loba.models.buckets import BUCKET_CHOICES, SQUARE, sizes_for_choice
from ..loba.objectives.actions import pair_actions
from ..loba.prompts import AnchorPrompt, PromptPair, PromptSet
from ..loba.prompts.loader import load_prompt_file, parse_toml, prompt_set_from_dict
from ..loba.prompts.slider import SliderTarget
from .host_files import input_folder, input_read_policy
from .node_errors import fail, reported_as
from .region_node import mask_outside_input, region_input, region_value
from .timestep_node import schedule_fields, timesteps_input
from .types import PromptsSocket
from .widgets import config_input

CATEGORY = "LOBA/prompts"
# Engine fields these nodes show under another name, so that errors name the widget the user sees.
WIDGET_NAMES = {"resolutions": "resolution", "region.word": "region"}
CHAIN_TIP = "Optional prompt set to extend (from another prompt node); it is copied, never changed."
OUT_TIP = "The prompt set: the input's entries plus this node's. Connect to Train Slider or another prompt node."
RESOLUTION_TIP = ("Square training resolution of this entry in pixels (a multiple of 8; 64 for SDXL). 0 = the bucket's "
                  "size, or with bucket square the Train Slider node's resolution (whose 0 means the model's native size).")
BUCKET_TIP = ("Training size, width x height: square = resolution x resolution; a bucket (SDXL's trained aspect "
              "buckets, or the same shapes at SD1/SD2 size) trains at that size with SDXL size conditioning of that "
              "size; 'all buckets' draws one per step (with a mask: the buckets of the mask's aspect ratio). Set "
              "resolution to 0 with a bucket. Other sizes: Load Prompt TOML with resolution = [height, width].")
MASK_TIP = "Optional region mask (white = train, black = ignore): the loss counts only the white area. From LOBA Mask or Load Image."


def chain_input() -> io.Input:
    return PromptsSocket.Input("prompts", optional=True, tooltip=CHAIN_TIP)


def prompts_output() -> io.Output:
    return PromptsSocket.Output(display_name="prompts", tooltip=OUT_TIP)


def common_inputs(guidance_tip: str) -> list[io.Input]:
    # Bounds from loba.config.prompt_bounds: the same limits prompt files get.
    return [
        config_input(PromptEntryBounds, "guidance_scale", step=0.1, tooltip=guidance_tip),
        io.Int.Input("resolution", default=0, min=0, max=entry_limit("resolution", "max"), step=8, tooltip=RESOLUTION_TIP),
        config_input(PromptEntryBounds, "batch_size"),
        config_input(PromptEntryBounds, "weight", step=0.05),
        io.Mask.Input("mask", optional=True, tooltip=MASK_TIP),
    ]


def bucket_input() -> io.Input:
    # Optional and last among the widgets, so saved workflows and API prompts without it still load as square.
    return io.Combo.Input("bucket", options=list(BUCKET_CHOICES), default=SQUARE, optional=True, tooltip=BUCKET_TIP)


def single_mask(mask: Optional[torch.Tensor], node: str) -> Optional[torch.Tensor]:
    """ComfyUI MASK [B, H, W] (or [H, W]) -> the engine's [H, W] float mask."""
    if mask is None:
        return None
    if mask.dim() == 3:
        if mask.shape[0] != 1:
            raise fail(node, "mask", f"got a batch of {mask.shape[0]} masks; connect one mask per prompt node")
        mask = mask[0]
    if mask.dim() != 2:
        raise fail(node, "mask", f"must be a [height, width] mask, got shape {list(mask.shape)}")
    return mask.detach().to("cpu", torch.float32).clone()


def resolutions(value: int, bucket: str, mask: Optional[torch.Tensor], entry: str) -> tuple:
    """The entry's sizes from the resolution and bucket widgets (the engine's rules: loba.models.buckets)."""
    return sizes_for_choice(bucket, int(value), None if mask is None else tuple(mask.shape[-2:]), entry)


def extend(prompts: Optional[PromptSet], *items, node: str) -> PromptSet:
    if prompts is not None and not isinstance(prompts, PromptSet):
        raise fail(node, "prompts", f"expected a LOBA prompt set, got {type(prompts).__name__}")
    return (prompts or PromptSet()).extended(*items)


class PromptPairNode(io.ComfyNode):
    DISPLAY = "LOBA Prompt Pair (erase / enhance)"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_PromptPair", display_name=cls.DISPLAY, category=CATEGORY,
            description="One erase or enhance pair, LECO-style: the slider moves `target` away from (erase) or "
                        "toward (enhance) what `positive` adds over `unconditional`.",
            inputs=[
                io.String.Input("target", default="", multiline=True,
                                tooltip="The prompt whose output the slider changes, e.g. 'van gogh'."),
                io.Combo.Input("action", options=pair_actions(), default="erase",
                               tooltip="erase: remove the concept; enhance: strengthen it; repair: the target learns the "
                                       "prediction for `positive` (its fixed or augmented version; with a region and "
                                       "mask_outside = hold, only inside); preserve: hold the target where it is drawn."),
                io.String.Input("positive", default="", multiline=True,
                                tooltip="The concept's direction; empty = the same as target."),
                io.String.Input("unconditional", default="",
                                tooltip="What the concept is measured against (also the CFG negative of the partial "
                                        "denoise); usually empty, or the class, e.g. 'a painting'."),
                io.String.Input("neutral", default="",
                                tooltip="Prompt that anchors the erase/enhance target output; empty = unconditional."),
                *common_inputs("How far past the concept to push; 1 = exactly its strength."),
                config_input(PromptEntryBounds, "multiplier", step=0.1,
                             tooltip="Slider weight this pair trains at (negative for the opposite direction)."),
                chain_input(),
                bucket_input(),
                timesteps_input(),
                region_input(),
                mask_outside_input(),
            ],
            outputs=[prompts_output()],
        )

    @classmethod
    def execute(cls, target, action, positive, unconditional, neutral, guidance_scale, resolution, batch_size, weight,
                multiplier, mask=None, prompts=None, bucket=SQUARE, timesteps=None, region=None,
                mask_outside="ignore") -> io.NodeOutput:
        name, mask = f"{cls.DISPLAY} '{target[:40]}'", single_mask(mask, cls.DISPLAY)
        with reported_as(cls.DISPLAY, widget_names=WIDGET_NAMES):
            pair = PromptPair(target=target, positive=positive or None, unconditional=unconditional, neutral=neutral or None,
                              action=action, guidance_scale=guidance_scale,
                              resolutions=resolutions(resolution, bucket, mask, name),
                              batch_size=batch_size, multiplier=multiplier, weight=weight, mask=mask, name=name,
                              region=region_value(region, cls.DISPLAY), mask_outside=mask_outside,
                              **schedule_fields(timesteps, cls.DISPLAY))
            return io.NodeOutput(extend(prompts, pair, node=cls.DISPLAY))


class SliderTargetNode(io.ComfyNode):
    DISPLAY = "LOBA Slider Target (two poles)"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_SliderTarget", display_name=cls.DISPLAY, category=CATEGORY,
            description="A bidirectional slider: positive weights move `target_class` toward the positive pole, "
                        "negative weights toward the negative pole (sd-scripts' LECO slider expansion).",
            inputs=[
                io.String.Input("target_class", default="", tooltip="The subject the slider acts on, e.g. 'person'."),
                io.String.Input("positive", default="", multiline=True, tooltip="The +1 pole, e.g. 'person with long hair'."),
                io.String.Input("negative", default="", multiline=True, tooltip="The -1 pole, e.g. 'person with short hair'."),
                io.String.Input("neutrals", default="", multiline=True,
                                tooltip="Neutral prompts, one per line (each becomes its own pairs); empty = ''."),
                *common_inputs("Strength of the pole difference to learn; 1 = exactly the prompts' difference."),
                io.Float.Input("multiplier", default=1.0, min=0.01, max=entry_limit("multiplier", "max"), step=0.1,
                               tooltip="Slider weight the poles are trained at (+m and -m)."),
                chain_input(),
                bucket_input(),
                timesteps_input(),
                region_input(),
                mask_outside_input(),
            ],
            outputs=[prompts_output()],
        )

    @classmethod
    def execute(cls, target_class, positive, negative, neutrals, guidance_scale, resolution, batch_size, weight,
                multiplier, mask=None, prompts=None, bucket=SQUARE, timesteps=None, region=None,
                mask_outside="ignore") -> io.NodeOutput:
        lines = tuple(line.strip() for line in neutrals.splitlines() if line.strip()) or ("",)
        name, mask = f"{cls.DISPLAY} '{target_class[:40]}'", single_mask(mask, cls.DISPLAY)
        with reported_as(cls.DISPLAY, widget_names=WIDGET_NAMES):
            target = SliderTarget(target_class=target_class, positive=positive, negative=negative, neutrals=lines,
                                  multiplier=multiplier, weight=weight, guidance_scale=guidance_scale,
                                  resolutions=resolutions(resolution, bucket, mask, name), batch_size=batch_size,
                                  mask=mask, name=name, region=region_value(region, cls.DISPLAY), mask_outside=mask_outside,
                                  **schedule_fields(timesteps, cls.DISPLAY))
            return io.NodeOutput(extend(prompts, target, node=cls.DISPLAY))


class PreservationPromptNode(io.ComfyNode):
    DISPLAY = "LOBA Preservation Prompt"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_PreservationPrompt", display_name=cls.DISPLAY, category=CATEGORY,
            description="A prompt the slider must leave unchanged (e.g. other styles when erasing one).",
            inputs=[
                io.String.Input("prompt", default="", multiline=True,
                                tooltip="Prompt whose output must not move; one prompt per node (empty = the unconditional)."),
                io.Float.Input("weight", default=1.0, min=entry_limit("weight", "min"), max=entry_limit("weight", "max"), step=0.1,
                               tooltip="Loss weight of keeping this prompt still (scaled by the Loss node's preservation_weight)."),
                chain_input(),
            ],
            outputs=[prompts_output()],
        )

    @classmethod
    def execute(cls, prompt, weight, prompts=None) -> io.NodeOutput:
        with reported_as(cls.DISPLAY, widget_names=WIDGET_NAMES):
            return io.NodeOutput(extend(prompts, AnchorPrompt(prompt, weight, name=f"{cls.DISPLAY} '{prompt[:40]}'"),
                                        node=cls.DISPLAY))


class LoadPromptTomlNode(io.ComfyNode):
    DISPLAY = "LOBA Load Prompt TOML"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_LoadPromptToml", display_name=cls.DISPLAY, category=CATEGORY,
            description="Prompts in sd-scripts' LECO TOML format ([[prompts]] or [[targets]]/[slider]), from the text "
                        "box (saved with the workflow) or from a file.",
            inputs=[
                io.String.Input("toml", default="", multiline=True,
                                tooltip="The TOML itself; used when not empty (so a shared workflow carries its prompts)."),
                io.String.Input("file", default="",
                                tooltip="Path of a .toml (or .json) file inside ComfyUI's input folder, relative to it; used "
                                        "when the text box is empty. Mask and prompt-list paths in it are relative to the "
                                        "file and must be inside the input folder too."),
                chain_input(),
            ],
            outputs=[prompts_output()],
        )

    @classmethod
    def execute(cls, toml, file, prompts=None) -> io.NodeOutput:
        policy = input_read_policy()
        with reported_as(cls.DISPLAY, "toml"):
            if toml.strip():
                data = parse_toml(toml, "the toml text", "toml")
                loaded = prompt_set_from_dict(data, input_folder(), "toml", policy)
            elif file.strip():
                path = Path(file.strip()).expanduser()
                loaded = load_prompt_file(path if path.is_absolute() else input_folder() / path, policy)
            else:
                raise fail(cls.DISPLAY, "toml", "both the text box and the file path are empty; paste TOML or name a file")
            return io.NodeOutput(extend(prompts, loaded, node=cls.DISPLAY))
