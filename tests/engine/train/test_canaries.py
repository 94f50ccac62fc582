"""Canaries: prediction drift at fixed prompts every N steps, logged, optionally a budget that stops the run."""

import csv

import pytest
import torch

from loba.config import TrainConfig
from loba.errors import ConfigError
from loba.prompts import PromptPair, PromptSet
from loba.train.canaries import CanaryMonitor
from loba.train.loop import build_network, train
from loba.train.phases import PhaseClock
from loba.train.run import RunRequest, run_training
from loba.train.trainer import Trainer

PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="red", guidance_scale=8.0,
                                        resolutions=((64, 64),)),), anchors=())
FAST = TrainConfig().replace(max_denoising_steps=4, max_train_steps=6, learning_rate=3e-3, network_alpha=4.0, seed=5,
                             denoise_with_adapter=False, canary_every=2, canary_prompts=("a cat", "a photo"))


def test_drift_is_zero_for_a_fresh_slider_and_positive_after_training(sd1_backend):
    network = build_network(sd1_backend, FAST)
    monitor = CanaryMonitor(Trainer.build(sd1_backend, network, PROMPTS, FAST))
    with network.attached(sd1_backend.unet):
        assert monitor.measure() == 0.0  # lora_up starts at zero: the slider is exactly off
    result = train(sd1_backend, PROMPTS, FAST)
    drifts = [r.canary_drift for r in result.reports]
    assert drifts[0] is None and drifts[2] is None and drifts[1] > 0 and drifts[5] > 0
    assert all(r.phases["canaries"] > 0 for r in result.reports if r.canary_drift is not None)
    assert all(r.phases["canaries"] == 0 for r in result.reports if r.canary_drift is None)


def test_drift_is_logged_at_the_right_steps_and_blank_between(sd1_backend, tmp_path):
    run_training(RunRequest(PROMPTS, FAST.replace(canary_every=3), backend=sd1_backend, out_dir=tmp_path))
    with open(tmp_path / "loss.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [bool(row["canary_drift"]) for row in rows] == [False, False, True, False, False, True]
    assert float(rows[5]["canary_drift"]) > 0 and "canaries_seconds" in rows[0]


def test_canaries_off_measure_nothing(sd1_backend):
    result = train(sd1_backend, PROMPTS, FAST.replace(canary_every=0, max_train_steps=2))
    assert [r.canary_drift for r in result.reports] == [None, None]


def test_the_budget_stops_the_run_and_the_partial_slider_is_kept(sd1_backend, tmp_path):
    config = FAST.replace(canary_every=1, canary_drift_budget=1e-9)
    slider = run_training(RunRequest(PROMPTS, config, backend=sd1_backend, out_dir=tmp_path))
    assert slider.stopped and slider.steps_done == 1 and "canary drift budget" in slider.stop_reason
    assert (tmp_path / "checkpoints" / "step-000001.pt").is_file()
    assert slider.save(tmp_path / "slider.safetensors").is_file()


def test_resume_stays_exact_with_canaries_on(sd1_backend, tmp_path):
    config = FAST.replace(save_every_n_steps=3)
    full = train(sd1_backend, PROMPTS, config, out_dir=tmp_path / "full")
    resumed = train(sd1_backend, PROMPTS, config, out_dir=tmp_path / "resumed",
                    resume=tmp_path / "full" / "checkpoints" / "step-000003.pt")
    assert resumed.losses == full.losses[3:]
    assert [r.canary_drift for r in resumed.reports] == [r.canary_drift for r in full.reports[3:]]
    full_state, resumed_state = full.network.module_state(), resumed.network.module_state()
    for name in full_state:
        for key in full_state[name]:
            assert torch.equal(full_state[name][key], resumed_state[name][key]), (name, key)


def test_canaries_leave_the_training_itself_unchanged(sd1_backend):
    on = train(sd1_backend, PROMPTS, FAST.replace(canary_every=1, max_train_steps=3))
    off = train(sd1_backend, PROMPTS, FAST.replace(canary_every=0, max_train_steps=3))
    assert on.losses == off.losses


@pytest.mark.parametrize(("change", "field"), [({"canary_drift_budget": -0.1}, "canary_drift_budget"),
                                               ({"canary_every": -1}, "canary_every"),
                                               ({"canary_every": 0, "canary_drift_budget": 0.5}, "canary_drift_budget"),
                                               ({"canary_drift_budget": float("nan")}, "canary_drift_budget")])
def test_bad_canary_options_are_refused_naming_the_field(change, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig().replace(**change)


def test_the_clock_times_the_canaries_phase(sd1_backend):
    network = build_network(sd1_backend, FAST)
    monitor = CanaryMonitor(Trainer.build(sd1_backend, network, PROMPTS, FAST))
    clock = PhaseClock(sd1_backend.device)
    with network.attached(sd1_backend.unet):
        assert monitor.after_step(1, clock) is None and monitor.after_step(2, clock) == 0.0
    assert clock.take()["canaries"] > 0
