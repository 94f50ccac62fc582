"""Data-parallel `loba train` on the CPU: 2 processes (gloo, through accelerate's launcher) train what one process
with the same batch trains, checkpoints resume across process counts, rank 0 alone writes, and a failure on one
rank ends them all. Each launch starts two Python processes: the runs are 2 steps of a tiny pipeline."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from support.dp_crash import CRASH
from support.tiny_models import tiny_pipeline

from loba.cli.launch import free_port
from loba.cli.main import main
from loba.errors import SpecError
from loba.train.distributed import World, check_world

RUN = """
pretrained_model_name_or_path = "{model}"
network_dim = 2
learning_rate = 1e-2
max_train_steps = 2
save_every_n_steps = 1
max_denoising_steps = 4
gradient_accumulation_steps = 2
canary_every = 0
seed = 5

[[prompts]]
target = "a circle"
positive = "a red circle"
unconditional = ""
action = "enhance"
resolution = 64
batch_size = 2
"""
# The losses agree to float precision; the weights to 1e-4 of their 2e-2 scale: AdamW's first updates are
# lr * g / (|g| + eps), so a gradient element near eps turns its float-level difference into an update difference.
TOLERANCE = dict(rtol=1e-3, atol=1e-4)


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dp")
    tiny_pipeline(folder / "model", "sd1")
    path = folder / "run.toml"
    path.write_text(RUN.format(model=(folder / "model").as_posix()))
    return path


@pytest.fixture(autouse=True)
def _one_thread_per_worker(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def alone(run_file, tmp_path_factory):
    """The one-process run every multi-process run is held against."""
    out = tmp_path_factory.mktemp("alone")
    assert train(run_file, out) == 0
    return out


def train(run_file, out, *more):
    return main(["train", str(run_file), "--out", str(out), "--quiet", *more])


def assert_same_slider(a: Path, b: Path):
    first, second = load_file(str(a)), load_file(str(b))
    assert set(first) == set(second)
    for key in first:
        torch.testing.assert_close(first[key], second[key], **TOLERANCE, msg=key)
    assert any(t.abs().max() > 0 for t in first.values())  # trained, not the zero start


def test_two_processes_train_what_one_does_and_resume_across_process_counts(run_file, alone, tmp_path):
    pair = tmp_path / "pair"
    assert train(run_file, pair, "--num-processes", "2") == 0
    assert_same_slider(alone / "slider.safetensors", pair / "slider.safetensors")
    # Rank 0's folder is a one-process run's folder: the same files, one copy of each, the same losses.
    listing = lambda folder: sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))  # noqa: E731
    assert listing(pair) == listing(alone)
    losses = lambda folder: [float(r.split(",")[1]) for r in (folder / "loss.csv").read_text().splitlines()[1:]]  # noqa: E731
    assert losses(pair) == pytest.approx(losses(alone), rel=1e-4)
    assert len((pair / "loss.jsonl").read_text().splitlines()) == 2
    # 2 -> 1: the two-process checkpoint at step 1 finished by one process ends where the uninterrupted run ends.
    resumed = tmp_path / "resumed-alone"
    assert train(run_file, resumed, "--resume", str(pair / "checkpoints" / "step-000001.pt")) == 0
    assert_same_slider(resumed / "slider.safetensors", alone / "slider.safetensors")
    # 1 -> 2
    resumed = tmp_path / "resumed-pair"
    assert train(run_file, resumed, "--resume", str(alone / "checkpoints" / "step-000001.pt"), "--num-processes", "2") == 0
    assert_same_slider(resumed / "slider.safetensors", alone / "slider.safetensors")


def launch(*arguments, env=None):
    """`accelerate launch` itself, 2 CPU processes."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
               "--main_process_port", str(free_port()), "--dynamo_backend", "no", "--quiet", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_fsdp_of_the_frozen_base_through_accelerate_launch_trains_what_one_process_does(run_file, alone, tmp_path):
    out = tmp_path / "fsdp"
    done = launch("--use_fsdp", "--fsdp_version", "2", "--mixed_precision", "no", "-m", "loba.cli", "train",
                  str(run_file), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    held = re.findall(r"rank (\d): frozen base sharded over 2 processes \((\d+) blocks\): ([\d.]+) MiB of ([\d.]+) MiB",
                      done.stdout)
    assert sorted(rank for rank, *_ in held) == ["0", "1"]
    for _, blocks, mine, whole in held:  # each process holds about half the base (blocks split unevenly)
        assert int(blocks) > 0 and 0.3 < float(mine) / float(whole) < 0.7
    assert_same_slider(out / "slider.safetensors", alone / "slider.safetensors")


def test_fsdp_with_a_precision_it_cannot_run_is_refused_before_model_work(run_file, tmp_path):
    out = tmp_path / "fsdp"
    done = launch("--use_fsdp", "--fsdp_version", "2", "--mixed_precision", "bf16", "-m", "loba.cli", "train",
                  str(run_file), "--out", str(out), "--quiet")
    assert done.returncode != 0
    assert "mixed_precision: accelerate was launched with --mixed_precision bf16 but the run file says" in done.stderr
    assert not (out / "slider.safetensors").exists() and "frozen base sharded" not in done.stdout


def test_a_failure_on_one_rank_ends_every_rank_with_the_error_and_no_final_slider(run_file, tmp_path):
    out = tmp_path / "out"
    worker = Path(__file__).parents[2] / "support" / "dp_crash.py"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--main_process_port", str(free_port()), "--mixed_precision", "no",
               "--dynamo_backend", "no", "--quiet", str(worker),
               "train", str(run_file), "--out", str(out), "--quiet"]
    # The checkout right after the worker, and never its parent: in a clone named `loba` (CI's) a test that put the
    # clone's parent on sys.path makes `import loba` find the pack's own __init__.py instead of the engine.
    checkout = Path(__file__).resolve().parents[3]
    rest = [p for p in sys.path if p and Path(p).resolve() != checkout.parent]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(worker.parent), str(checkout), *rest])}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode != 0
    assert CRASH in done.stderr, done.stderr[-6000:]
    assert not (out / "slider.safetensors").exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_a_batch_that_does_not_split_over_the_processes_is_refused_before_model_work(run_file):
    from loba.config.runfile import load_run_file

    run = load_run_file(run_file)
    check_world(run.prompts, run.config, World(0, 2))
    with pytest.raises(SpecError, match="batch_size 2 does not split over 3 processes") as error:
        check_world(run.prompts, run.config, World(0, 3))
    assert error.value.field == "batch_size"
    assert main(["train", str(run_file), "--out", "unused", "--num-processes", "0"]) == 2
