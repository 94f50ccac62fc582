"""LOBA Timestep Schedule: the timesteps a prompt entry trains at (a window and a curve), with its plot."""

from __future__ import annotations

from typing import Optional

from comfy_api.latest import io

from ..loba.objectives.timestep_curves import TIMESTEP_CURVES, TIMESTEP_RANGE, curve_help, schedule_plot
from ..loba.pixels import pil_to_pixels
from ..loba.prompts.spec import check_timestep_window
from .node_errors import fail, reported_as
from .types import TimestepSchedule, TimestepsSocket

TIMESTEPS_TIP = ("Optional timestep schedule from LOBA Timestep Schedule: this entry trains only at those timesteps "
                 "(e.g. t >= 600 for layout, t < 400 for texture and detail), as often as its curve says.")


def timesteps_input() -> io.Input:
    return TimestepsSocket.Input("timesteps", optional=True, tooltip=TIMESTEPS_TIP)


def schedule_fields(timesteps: Optional[TimestepSchedule], node: str) -> dict:
    """The entry fields of a connected schedule; {} when none (the entry trains at every timestep)."""
    if timesteps is None:
        return {}
    if not isinstance(timesteps, TimestepSchedule):
        raise fail(node, "timesteps", f"expected a LOBA Timestep Schedule, got {type(timesteps).__name__}")
    return timesteps.fields()


class TimestepScheduleNode(io.ComfyNode):
    DISPLAY = "LOBA Timestep Schedule"

    @classmethod
    def define_schema(cls) -> io.Schema:
        low, high = TIMESTEP_RANGE
        return io.Schema(
            node_id="LOBA_TimestepSchedule", display_name=cls.DISPLAY, category="LOBA/prompts",
            description="Which timesteps a prompt entry trains at: diffusion decides layout at high t and texture and "
                        "detail at low t, so a change that lives in one of them can train only there. Connect to a "
                        "prompt node's `timesteps` input; the plot shows the schedule (t = 1000 on the left).",
            inputs=[
                io.Int.Input("start", default=low, min=low, max=high - 1,
                             tooltip="First timestep of the window (inclusive); 0 = the cleanest."),
                io.Int.Input("end", default=high, min=low + 1, max=high,
                             tooltip=f"End of the window (exclusive); {high} = up to pure noise."),
                io.Combo.Input("curve", options=TIMESTEP_CURVES.names(), default="flat",
                               tooltip="How often each timestep of the window trains: " + curve_help()),
            ],
            outputs=[TimestepsSocket.Output(display_name="timesteps", tooltip="Connect to a prompt node's timesteps input."),
                     io.Image.Output(display_name="plot", tooltip="The schedule over t (t = 1000 on the left).")],
        )

    @classmethod
    def execute(cls, start, end, curve) -> io.NodeOutput:
        if int(end) <= int(start):
            raise fail(cls.DISPLAY, "end", f"must be above start ({start}): the window is [start, end), e.g. start 600, end 1000")
        with reported_as(cls.DISPLAY, widget_names={"timestep_window": "start", "timestep_curve": "curve"}):
            window = check_timestep_window((start, end), cls.DISPLAY)
            TIMESTEP_CURVES.get(curve)
        return io.NodeOutput(TimestepSchedule(window, curve), pil_to_pixels(schedule_plot(window, curve)))
