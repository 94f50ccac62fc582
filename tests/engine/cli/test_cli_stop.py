"""`loba train` on the embedded toy world: no export step, previews on disk, and Ctrl-C never loses work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors import safe_open

from loba.cli.main import main
from loba.toyworld.demo import recipe_path

REPO_ROOT = Path(__file__).resolve().parents[3]
QUICK = ["--set", "max_denoising_steps=4", "--set", "trajectory_cache=0"]


def metadata(path: Path) -> dict:
    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


def test_train_on_the_toy_world_by_name_with_previews_and_step_sliders(tmp_path):
    out = tmp_path / "out"
    code = main(["train", str(recipe_path("erase-red", "train")), "--out", str(out), "--model", "toyworld", "--quiet",
                 "--set", "max_train_steps=2", "--set", "save_every_n_steps=1", *QUICK, "--preview-every", "1",
                 "--preview-weights", "0, 1"])
    assert code == 0
    assert metadata(out / "slider.safetensors")["ss_steps"] == "2"
    assert (out / "slider-000001.safetensors").is_file() and (out / "checkpoints" / "step-000001.pt").is_file()
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-000001.png", "step-000002.png"]


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert process.poll() is None, f"loba train ended early:\n{process.communicate()[0]}"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_saves_the_partial_slider_and_a_checkpoint_then_exits_non_zero(tmp_path, stop):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "loba.cli", "train", str(recipe_path("erase-red", "train")), "--out", str(out),
               "--model", "toyworld", "--quiet", "--set", "max_train_steps=100000", "--set", "save_every_n_steps=2", *QUICK]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(out / "checkpoints" / "step-000002.pt", process)
        process.send_signal(stop)
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + stop, output
    saved = metadata(out / "slider.safetensors")
    assert saved["loba_stopped_early"] == "true"
    steps = int(saved["ss_steps"])
    assert 2 <= steps < 100000
    assert (out / "checkpoints" / f"step-{steps:06d}.pt").is_file(), "a checkpoint of the stopped state"
    assert "--resume auto" in output
    rows = (out / "loss.csv").read_text().splitlines()[1:]
    assert len(rows) == steps
