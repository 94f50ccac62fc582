"""loss.jsonl beside loss.csv on every run, log_with trackers (accelerate's) and their missing-package message,
gradient accumulation in one process, and a rank other than 0 writing nothing (in-process, one-member gloo group)."""

from __future__ import annotations

import json

import pytest
import torch

from loba.config import TrainConfig
from loba.errors import ConfigError
from loba.models.sources import ModelSource
from loba.prompts import PromptPair, PromptSet
from loba.train.distributed import World
from loba.train.run import RunRequest, run_training
from loba.train.step_log import TRACKERS, TrackerKind, check_trackers

CONFIG = TrainConfig().replace(max_train_steps=2, max_denoising_steps=4, network_dim=2, learning_rate=1e-3, seed=3,
                               canary_every=0)


def prompts(batch_size=2) -> PromptSet:
    pair = PromptPair(target="a circle", positive="a red circle", unconditional="", action="enhance",
                      resolutions=((64, 64),), batch_size=batch_size)
    return PromptSet((pair,), ())


class FakeTracker:
    """What accelerate's GeneralTracker offers a run: start, store_init_configuration, log, finish."""

    calls: list = []

    def __init__(self, run_name, logging_dir):
        self.calls.append(("init", run_name, str(logging_dir)))

    def start(self):
        self.calls.append(("start",))

    def store_init_configuration(self, values):
        assert all(isinstance(v, (bool, int, float, str)) for v in values.values())
        self.calls.append(("config", values["max_train_steps"]))

    def log(self, values, step):
        self.calls.append(("log", step, values["loss"]))

    def finish(self):
        self.calls.append(("finish",))


@pytest.fixture
def fake_tracker():
    TRACKERS.register("fake", TrackerKind("torch", FakeTracker))
    FakeTracker.calls = []
    try:
        yield FakeTracker
    finally:
        TRACKERS._items.pop("fake")


def test_every_step_goes_to_loss_jsonl_and_to_the_trackers(sd1_backend, tmp_path, fake_tracker):
    run_training(RunRequest(prompts(), CONFIG, backend=sd1_backend, out_dir=tmp_path, log_with=("fake",)))
    lines = [json.loads(line) for line in (tmp_path / "loss.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2] and {"loss", "timestep", "all_reduce_seconds"} <= set(lines[0])
    logged = [call for call in fake_tracker.calls if call[0] == "log"]
    assert logged == [("log", 1, lines[0]["loss"]), ("log", 2, lines[1]["loss"])]
    assert fake_tracker.calls[0] == ("init", tmp_path.name, str(tmp_path / "logs"))
    assert ("config", 2) in fake_tracker.calls and fake_tracker.calls[-1] == ("finish",)


def test_a_tracker_whose_package_is_missing_is_refused_before_model_work(tmp_path):
    TRACKERS.register("absent", TrackerKind("no_such_package_loba", FakeTracker))
    missing_model = ModelSource(str(tmp_path / "no-model-here"))  # loading it would fail: the check comes first
    try:
        with pytest.raises(ConfigError, match="needs the optional package 'no_such_package_loba'.*pip install") as error:
            run_training(RunRequest(prompts(), CONFIG, model=missing_model, out_dir=tmp_path, log_with=("absent",)))
    finally:
        TRACKERS._items.pop("absent")
    assert error.value.field == "log_with" and list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="unknown tracker 'tensorbored'"):
        check_trackers(("tensorbored",))


def test_gradient_accumulation_logs_one_row_per_optimizer_step_from_that_many_draws(sd1_backend, tmp_path):
    # A learning rate of ~0 keeps the adapter still, so two draws per step are the two steps of a plain run.
    still = CONFIG.replace(learning_rate=1e-12, max_train_steps=4)
    plain = run_training(RunRequest(prompts(), still, backend=sd1_backend))
    accumulated = run_training(RunRequest(prompts(), still.replace(max_train_steps=2, gradient_accumulation_steps=2),
                                          backend=sd1_backend))
    assert accumulated.steps_done == 2 and len(accumulated.losses) == 2
    pairs = [sum(plain.losses[i:i + 2]) / 2 for i in (0, 2)]
    assert accumulated.losses == pytest.approx(pairs, rel=1e-4)


def test_a_rank_other_than_0_writes_nothing(sd1_backend, tmp_path):
    store = torch.distributed.HashStore()
    torch.distributed.init_process_group("gloo", rank=0, world_size=1, store=store)
    try:
        slider = run_training(RunRequest(prompts(), CONFIG.replace(save_every_n_steps=1), backend=sd1_backend,
                                         out_dir=tmp_path, world=World(1, 2)))
    finally:
        torch.distributed.destroy_process_group()
    assert slider.steps_done == 2
    assert list(tmp_path.iterdir()) == []


def test_log_with_in_a_run_file_and_its_missing_package_message_at_the_command_line(tmp_path, capsys):
    from loba.cli.main import main
    from loba.config.runfile import load_run_file

    run = tmp_path / "run.toml"
    body = '[[prompts]]\ntarget = "a circle"\npositive = "red"\nunconditional = ""\naction = "enhance"\n'
    run.write_text(f'pretrained_model_name_or_path = "{(tmp_path / "no-model").as_posix()}"\nlog_with = "tensorboard"\n'
                   f'logging_dir = "tb"\n{body}')
    loaded = load_run_file(run)
    assert loaded.log_with == ("tensorboard",) and loaded.logging_dir == tmp_path / "tb"
    code = main(["train", str(run), "--out", str(tmp_path / "out"), "--quiet"])
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:  # this machine: the message, nothing written, no model loaded
        assert code == 2 and "tensorboard logging needs the optional package 'tensorboard'" in capsys.readouterr().err
        assert not (tmp_path / "out").exists()
    run.write_text(f'pretrained_model_name_or_path = "x"\nlog_with = 3\n{body}')
    with pytest.raises(ConfigError, match="log_with: expected a tracker name"):
        load_run_file(run)
