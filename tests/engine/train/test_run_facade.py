"""The run facade: what every host gets from one RunRequest (files, stop handling, phases, previews)."""

from __future__ import annotations

import pytest
import torch

from loba.config import TrainConfig
from loba.errors import ConfigError
from loba.models.sources import ModelSource, load_backend
from loba.prompts import PromptPair, PromptSet
from loba.sliders.kohya import load_slider
from loba.train.callbacks import TrainCallbacks
from loba.train.phases import PHASES
from loba.train.preview import PreviewPolicy
from loba.train.run import RunRequest, run_training

CONFIG = TrainConfig().replace(max_train_steps=3, max_denoising_steps=4, network_dim=2, learning_rate=1e-3, seed=3)


def erase_prompts(resolution=()) -> PromptSet:
    pair = PromptPair(target="a red circle", positive="a red circle", unconditional="a circle", neutral="a circle",
                      action="erase", guidance_scale=1.0, resolutions=resolution, batch_size=1)
    return PromptSet((pair,), ())


@pytest.fixture(scope="module")
def toy():
    return ModelSource("toyworld")


def test_toyworld_is_a_model_name_with_its_native_resolution_and_a_decoder(toy):
    backend = load_backend(toy)
    assert backend.native_resolution == 64
    pixels = backend.decode(torch.zeros(2, 4, 8, 8))
    assert pixels.shape == (2, 64, 64, 3) and 0 <= float(pixels.min()) and float(pixels.max()) <= 1


def test_unknown_model_name_lists_the_embedded_ones(tmp_path):
    with pytest.raises(ConfigError, match="pretrained_model_name_or_path.*toyworld"):
        load_backend(ModelSource(str(tmp_path / "nothing-here")))


def test_a_run_with_an_output_folder_keeps_every_file_current(toy, tmp_path):
    config = CONFIG.replace(save_every_n_steps=2)
    slider = run_training(RunRequest(erase_prompts(), config, model=toy, out_dir=tmp_path, save_samples=True,
                                     preview=PreviewPolicy(2, (0.0, 1.0))))
    assert slider.steps_done == 3 and not slider.stopped
    assert [p.name for p in slider.step_files] == ["slider-000002.safetensors"]
    assert (tmp_path / "checkpoints" / "step-000002.pt").is_file()
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step-000002.png", "step-000003.png"]
    header = (tmp_path / "loss.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["step", "loss"] and {f"{p}_seconds" for p in PHASES} <= set(header)
    saved = load_slider(slider.save(tmp_path / "slider.safetensors"))
    assert saved.metadata["ss_steps"] == "3" and saved.metadata["loba_stopped_early"] == "false"
    # prompts without a resolution trained at the model's native one
    assert slider.prompts.pairs()[0].resolutions == ((64, 64),)


def test_every_step_reports_its_phases(toy):
    reports = []

    class Collect(TrainCallbacks):
        def on_step(self, report, network):
            reports.append(report)

    run_training(RunRequest(erase_prompts(), CONFIG, model=toy, callbacks=Collect()))
    for report in reports:
        assert set(report.phases) == set(PHASES)
        assert all(v >= 0 for v in report.phases.values()) and report.phases["denoise"] > 0
        assert sum(report.phases.values()) <= report.seconds + 1e-3


class StopInsideSecondDenoise(TrainCallbacks):
    """Passes the check before step 2, then asks to stop at the first poll inside its denoise."""

    def __init__(self):
        self.steps, self.polls_after_first = 0, 0

    def on_step(self, report, network):
        self.steps += 1

    def should_stop(self) -> bool:
        if self.steps < 1:
            return False
        self.polls_after_first += 1
        return self.polls_after_first >= 2


def test_a_stop_inside_the_denoise_drops_that_step_and_checkpoints_the_rest(toy, tmp_path):
    stopped = run_training(RunRequest(erase_prompts(), CONFIG, model=toy, callbacks=StopInsideSecondDenoise(),
                                      out_dir=tmp_path))
    assert stopped.stopped and stopped.steps_done == 1
    assert [p.name for p in stopped.checkpoints] == ["step-000001.pt"]
    one_step = run_training(RunRequest(erase_prompts(), CONFIG.replace(max_train_steps=1), model=toy))
    for name, state in one_step.network.module_state().items():
        for key, tensor in state.items():
            assert torch.equal(stopped.network.module_state()[name][key], tensor), f"{name}.{key}"
    assert load_slider(stopped.save(tmp_path / "s.safetensors")).metadata["loba_stopped_early"] == "true"


def test_resume_continues_a_stopped_run_exactly(toy, tmp_path):
    run_training(RunRequest(erase_prompts(), CONFIG, model=toy, callbacks=StopInsideSecondDenoise(), out_dir=tmp_path))
    resumed = run_training(RunRequest(erase_prompts(), CONFIG, model=toy, out_dir=tmp_path, resume="auto"))
    straight = run_training(RunRequest(erase_prompts(), CONFIG, model=toy))
    assert resumed.steps_done == 3 and [int(r["step"]) for r in resumed.loss_rows] == [1, 2, 3]
    for name, state in straight.network.module_state().items():
        for key, tensor in state.items():
            assert torch.equal(resumed.network.module_state()[name][key], tensor), f"{name}.{key}"


@pytest.mark.parametrize(("changes", "field"), [({"config": CONFIG.replace(save_every_n_steps=1)}, "save_every_n_steps"),
                                                ({"resume": "/no/such/checkpoint.pt"}, "resume"),
                                                ({"model": None}, "pretrained_model_name_or_path")])
def test_bad_requests_fail_before_any_model_work(toy, tmp_path, monkeypatch, changes, field):
    def never(source):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("loba.train.run.load_backend", never)
    request = dict(prompts=erase_prompts(), config=CONFIG, model=toy, out_dir=tmp_path if field == "resume" else None)
    with pytest.raises(ConfigError, match=field):
        run_training(RunRequest(**{**request, **changes}))
