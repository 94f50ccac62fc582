"""A host's cancel ends a run as stopped, with its finished steps, wherever it lands: a step's report, a preview,
a checkpoint callback, or inside a preview's sampling (polled before every model call)."""

from __future__ import annotations

import pytest

from loba.config import TrainConfig
from loba.config.bounds import MAX_PREVIEW_WEIGHTS
from loba.errors import ConfigError, StepAborted
from loba.prompts import PromptPair, PromptSet
from loba.train.callbacks import TrainCallbacks
from loba.train.preview import PreviewPolicy, preview_latents
from loba.train.run import RunRequest, run_training

CONFIG = TrainConfig().replace(max_train_steps=5, max_denoising_steps=3, network_dim=2, learning_rate=1e-3, seed=3,
                               save_every_n_steps=2)
PROMPTS = PromptSet((PromptPair(target="a red circle", positive="a red circle", unconditional="a circle",
                                neutral="a circle", action="erase", guidance_scale=1.0, batch_size=1,
                                resolutions=((64, 64),)),), ())


class HostInterrupt(Exception):
    """Stands in for ComfyUI's InterruptProcessingException."""


class Host(TrainCallbacks):
    stop_exceptions = (HostInterrupt,)

    def __init__(self, where: str, at: int):
        self.where, self.at = where, at

    def _maybe(self, where: str, step: int) -> None:
        if where == self.where and step == self.at:
            raise HostInterrupt()

    def on_step(self, report, network):
        self._maybe("step", report.step)

    def on_preview(self, image, step):
        self._maybe("preview", step)

    def on_checkpoint(self, path, step):
        self._maybe("checkpoint", step)


@pytest.mark.parametrize("where, at", [("step", 3), ("preview", 3), ("checkpoint", 2)])
def test_a_host_interrupt_anywhere_in_a_step_returns_the_partial_slider(sd1_backend, tmp_path, where, at):
    slider = run_training(RunRequest(PROMPTS, CONFIG, backend=sd1_backend, callbacks=Host(where, at), out_dir=tmp_path,
                                     preview=PreviewPolicy(1, (0.0, 1.0))))
    assert slider.stopped and slider.steps_done == at, "the step it landed in had its optimizer update: kept"
    assert (tmp_path / "checkpoints" / f"step-{at:06d}.pt").is_file(), "the stop checkpoint"
    assert [int(row["step"]) for row in slider.loss_rows] == list(range(1, at + 1))


def test_without_stop_exceptions_a_host_error_still_fails_the_run(sd1_backend, tmp_path):
    class Broken(Host):
        stop_exceptions = ()

    with pytest.raises(HostInterrupt):
        run_training(RunRequest(PROMPTS, CONFIG, backend=sd1_backend, callbacks=Broken("step", 1), out_dir=tmp_path))


def test_a_preview_polls_stop_before_every_model_call(sd1_backend):
    backend = sd1_backend
    cond = backend.encode_prompts(["a red circle", ""])
    calls = []
    original = backend.predict
    backend.predict = lambda *args, **kw: calls.append(1) or original(*args, **kw)

    class Network:
        multiplier = 1.0

    network = Network()
    with pytest.raises(StepAborted):
        preview_latents(backend, network, cond["a red circle"], cond[""], [0.0] * MAX_PREVIEW_WEIGHTS, 64, 64, steps=20,
                        should_stop=lambda: len(calls) >= 3)
    assert len(calls) == 3, "cancel within one model call, not after 16 weights x 20 steps"
    assert network.multiplier == 1.0


def test_a_stop_during_a_preview_keeps_the_step_it_previews(sd1_backend):
    class StopInPreview(TrainCallbacks):
        def __init__(self):
            self.steps = 0

        def on_step(self, report, network):
            self.steps = report.step

        def should_stop(self):  # the run's loop asks once per step; the preview asks before each model call
            stack = [frame.name for frame in __import__("traceback").extract_stack()]
            return self.steps >= 1 and "cfg_ddim" in stack and "preview_latents" in stack

    slider = run_training(RunRequest(PROMPTS, CONFIG.replace(save_every_n_steps=0), backend=sd1_backend, callbacks=StopInPreview(),
                                     preview=PreviewPolicy(1, (0.0, 1.0))))
    assert slider.stopped and slider.steps_done == 2


def test_preview_weight_lists_are_capped():
    with pytest.raises(ConfigError, match=f"preview_weights: has {MAX_PREVIEW_WEIGHTS + 1} weights; at most"):
        PreviewPolicy(1, tuple(float(i) for i in range(MAX_PREVIEW_WEIGHTS + 1)))
    assert len(PreviewPolicy(1, (0.0,) * MAX_PREVIEW_WEIGHTS).weights) == MAX_PREVIEW_WEIGHTS
