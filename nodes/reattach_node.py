"""LOBA Re-attach Prompt: U-LOBA's entry (caption, redirect, explicit anchors, schedule) in the prompt chain."""

from __future__ import annotations

from comfy_api.latest import io

from ..loba.config.prompt_bounds import PromptEntryBounds, entry_limit
from ..loba.errors import SpecError
from ..loba.models.buckets import SQUARE
from ..loba.objectives.redirect_schedules import DEFAULT_REDIRECT_SCHEDULE, REDIRECT_SCHEDULES
from ..loba.prompts.reattach import AUTO, ReattachEntry
from ..loba.prompts.spec import MASK_OUTSIDE
from .node_errors import reported_as
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
from .region_node import region_input, region_value
from .timestep_node import schedule_fields, timesteps_input
from .widgets import config_input

REDIRECT_TIP = ("The prompts that describe the distribution the caption should produce, one per line, e.g. 'a blue "
                "triangle' / 'a green triangle' (on a real model: '1girl, general'). A share after a bar weighs a line: "
                "'a blue triangle | 2'. Lines without one weigh 1.")
EXPLICIT_TIP = ("Prompts whose output must not move, one per line: 'auto' = the redirect prompts (each the explicit "
                "form of one value, e.g. 'a red triangle' still draws red); empty = none.")
SCHEDULE_TIP = ("How the target moves from the frozen model's own prediction for the caption to the redirect's: "
                + "; ".join(f"{name}: {(fn.__doc__ or '').strip()}" for name, fn in REDIRECT_SCHEDULES.items()))
# Engine fields of a redirect / explicit line ("redirect[2].weight") are reported under their widget.
REATTACH_WIDGETS = {**WIDGET_NAMES, "redirect": "redirect", "explicit": "explicit"}
MASK_OUTSIDE_TIP = "; ".join(f"{name}: {text}" for name, text in MASK_OUTSIDE.items())


def parse_redirect(text: str, node: str) -> tuple[tuple[str, float], ...]:
    """'prompt' or 'prompt | share' per non-empty line."""
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        prompt, bar, share = line.rpartition("|") if "|" in line else (line, "", "")
        try:
            weight = float(share) if bar else 1.0
        except ValueError:
            raise SpecError(node, "redirect", f"line {number}: {share.strip()!r} after '|' is not a number; write "
                                              "e.g. 'a blue triangle | 2'") from None
        items.append((prompt.strip(), weight))
    return tuple(items)


def parse_explicit(text: str):
    lines = tuple(line.strip() for line in text.splitlines() if line.strip())
    return AUTO if lines == (AUTO,) else lines


class ReattachPromptNode(io.ComfyNode):
    DISPLAY = "LOBA Re-attach Prompt (U-LOBA)"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_ReattachPrompt", display_name=cls.DISPLAY, category=CATEGORY,
            description="Unlearning without lobotomy: what an under-specified caption draws moves onto the redirect "
                        "distribution (e.g. 'a triangle' that is nearly always red -> any color), while the explicit "
                        "prompts keep their output and the rest of the model stays where it was.",
            inputs=[
                io.String.Input("caption", default="", tooltip="The under-specified caption to re-attach, e.g. '1girl' or 'a triangle'."),
                io.String.Input("redirect", default="", multiline=True, tooltip=REDIRECT_TIP),
                io.String.Input("explicit", default=AUTO, multiline=True, tooltip=EXPLICIT_TIP),
                io.Combo.Input("schedule", options=REDIRECT_SCHEDULES.names(), default=DEFAULT_REDIRECT_SCHEDULE,
                               tooltip=SCHEDULE_TIP),
                config_input(PromptEntryBounds, "ramp", step=0.05),
                io.Int.Input("resolution", default=0, min=0, max=entry_limit("resolution", "max"),
                             step=8, tooltip=RESOLUTION_TIP),
                config_input(PromptEntryBounds, "batch_size"),
                config_input(PromptEntryBounds, "weight", step=0.05),
                io.Mask.Input("mask", optional=True, tooltip="Optional region mask (white = re-attach here)."),
                chain_input(),
                io.Combo.Input("mask_outside", options=list(MASK_OUTSIDE), default="ignore", optional=True,
                               tooltip=MASK_OUTSIDE_TIP),
                bucket_input(),
                timesteps_input(),
                region_input(),
            ],
            outputs=[prompts_output()],
        )

    @classmethod
    def execute(cls, caption, redirect, explicit, schedule, ramp, resolution, batch_size, weight, mask=None, prompts=None,
                mask_outside="ignore", bucket=SQUARE, timesteps=None, region=None) -> io.NodeOutput:
        name, mask = f"{cls.DISPLAY} '{caption[:40]}'", single_mask(mask, cls.DISPLAY)
        with reported_as(cls.DISPLAY, widget_names=REATTACH_WIDGETS):
            entry = ReattachEntry(caption=caption, redirect=parse_redirect(redirect, cls.DISPLAY),
                                  explicit=parse_explicit(explicit), schedule=schedule, ramp=ramp,
                                  resolutions=resolutions(resolution, bucket, mask, name), batch_size=batch_size,
                                  weight=weight, mask=mask, mask_outside=mask_outside, name=name,
                                  region=region_value(region, cls.DISPLAY), **schedule_fields(timesteps, cls.DISPLAY))
            return io.NodeOutput(extend(prompts, entry, node=cls.DISPLAY))
