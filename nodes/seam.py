"""The one place engine callbacks become ComfyUI feedback: the progress bar with preview images, live loss
events on the websocket, and cancel.

Cancel: ComfyUI raises InterruptProcessingException from whatever checks its interrupt flag first, and that
clears the flag: the progress hook inside a bar update (a step's or a preview's), a VAE decode, a prompt
encode. The seam catches it in its own bar updates and remembers it; the engine ends the run as stopped when
one escapes a step (stop_exceptions) and polls should_stop() between steps and inside every denoise. Either
way the trainer returns the partial slider, the Train node saves it, and then raise_if_stopped() hands
ComfyUI its interruption (clearing the flag, so the next prompt does not start interrupted).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Optional

import comfy.model_management
import comfy.utils

from ..loba.train.callbacks import StepReport, TrainCallbacks, TrainStart

LOSS_EVENT, DONE_EVENT = "loba.loss", "loba.done"
PREVIEW_MAX_PX = 512
# Latest state of each Train node's run, so a browser that reloads mid-run can catch up (served by the web routes).
RUNS: dict[str, dict[str, Any]] = {}
Interrupt = comfy.model_management.InterruptProcessingException


def websocket_sender() -> Callable[[str, dict], None]:
    """PromptServer's send_sync when a server runs (thread safe); a no-op in-process."""
    try:
        from server import PromptServer

        server = getattr(PromptServer, "instance", None)
    except Exception:  # no server module (engine tests) or one without an instance
        server = None
    if server is None:
        return lambda event, data: None
    return lambda event, data: server.send_sync(event, data)


def raise_interrupt() -> None:
    """ComfyUI's interruption, with its flag cleared (it may already be: the exception that stopped the run did)."""
    comfy.model_management.throw_exception_if_processing_interrupted()
    raise Interrupt()


class ComfySeam(TrainCallbacks):
    stop_exceptions = (Interrupt,)

    def __init__(self, node_id: Optional[str], send: Optional[Callable[[str, dict], None]] = None):
        self.node_id = None if node_id is None else str(node_id)
        self.send = send or websocket_sender()
        self.bar: Optional[comfy.utils.ProgressBar] = None
        self.losses: list[float] = []
        self.previews = 0
        self.interrupted = False  # an interrupt raised (and its flag cleared) inside one of our bar updates
        self.started = time.perf_counter()

    def _state(self) -> dict[str, Any]:
        return RUNS.setdefault(self.node_id or "", {"node": self.node_id, "losses": [], "learning_rates": []})

    def _update_bar(self, step: int, total: int, preview=None) -> None:
        if self.bar is None or self.should_stop():
            return
        try:
            self.bar.update_absolute(step, total, preview)
        except Interrupt:
            self.interrupted = True  # the run stops before its next step; the node re-raises after the save

    def on_start(self, start: TrainStart) -> None:
        self.bar = comfy.utils.ProgressBar(start.total_steps, node_id=self.node_id)
        RUNS[self.node_id or ""] = {"node": self.node_id, "total": start.total_steps, "start": start.start_step,
                                    "losses": [], "learning_rates": [], "running": True}
        if start.start_step:
            self._update_bar(start.start_step, start.total_steps)

    def on_step(self, report: StepReport, network) -> None:
        self.losses.append(report.loss)
        state = self._state()
        state["losses"].append(report.loss)
        state["learning_rates"].append(report.learning_rate)
        state["step"] = report.step
        if report.canary_drift is not None:
            state.setdefault("canary_drifts", []).append([report.step, report.canary_drift])
        self.send(LOSS_EVENT, {"node": self.node_id, "step": report.step, "total": report.total_steps, "loss": report.loss,
                               "main_loss": report.main_loss, "preservation_loss": report.preservation_loss,
                               "lr": report.learning_rate, "timestep": report.timestep, "seconds": report.seconds,
                               "canary_drift": report.canary_drift})
        self._update_bar(report.step, report.total_steps)

    def on_preview(self, image, step: int) -> None:
        """The engine's preview grid (its policy says when) onto the progress bar."""
        self.previews += 1
        if self.bar is not None:
            self._update_bar(step, self.bar.total, ("JPEG", image, PREVIEW_MAX_PX))

    def should_stop(self) -> bool:
        return self.interrupted or comfy.model_management.processing_interrupted()

    def on_end(self, steps_done: int, stopped: bool, error: Optional[BaseException]) -> None:
        state = self._state()
        state.update(running=False, steps_done=steps_done, stopped=stopped, error=None if error is None else str(error))
        self.send(DONE_EVENT, {"node": self.node_id, "steps_done": steps_done, "stopped": stopped,
                               "error": None if error is None else f"{type(error).__name__}: {error}",
                               "seconds": time.perf_counter() - self.started})
