"""The benchmark harness runs and reports what the speed issue asks for (no timing is asserted: these
machines are noisy; the figures come from `python -m benchmarks.speed`)."""

import json
import subprocess
import sys

import pytest
from support.comfy import REPO_ROOT

from benchmarks.speed import PHASES, table


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy-diffusers")
    subprocess.run([sys.executable, "-m", "loba.cli", "toyworld", "export-diffusers", str(folder)], cwd=REPO_ROOT, check=True,
                   capture_output=True)
    return folder


def test_loba_run_reports_steps_phases_floor_and_memory(toy_folder, tmp_path):
    out = tmp_path / "run.json"
    subprocess.run([sys.executable, "-m", "benchmarks.loba_run", "--model", str(toy_folder), "--out", str(out), "--steps", "4",
                    "--cache", "2", "--refresh", "2", "--denoise-steps", "6", "--threads", "1", "--save-every", "2",
                    "--save-dir", str(tmp_path / "snaps")], cwd=REPO_ROOT, check=True, capture_output=True)
    data = json.loads(out.read_text())
    assert len(data["step_seconds"]) == len(data["phases"]) == 4
    for seconds, phases in zip(data["step_seconds"], data["phases"]):
        assert set(phases) == set(PHASES) and sum(phases.values()) <= seconds + 1e-3
    assert data["phases"][0]["denoise"] > 0 and data["floor_seconds"] > 0 and data["peak_rss_mb"] >= data["loaded_rss_mb"] > 0
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == ["step-00002.safetensors", "step-00004.safetensors"]


def test_the_table_prints_every_headline_figure():
    phases = {p: 0.01 for p in PHASES}
    result = {"machine": "m", "loba_s_per_step": 0.1, "loba_s_per_step_no_cache": 0.5, "peer_s_per_step": 1.0, "speedup": 10.0,
              "speedup_no_cache": 2.0, "loba_peak_mb": 900, "loba_peak_mb_no_cache": 900, "peer_peak_mb": 500,
              "loba_training_mb": 50, "loba_training_mb_no_cache": 50, "peer_training_mb": 60, "floor_s": 0.08,
              "floor_multiple": 1.25, "floor_multiple_no_cache": 6.25, "loba_breakdown_s": phases, "loba_breakdown_s_no_cache": phases}
    text = table(result)
    assert "10.00" in text and "1.25" in text and "denoise" in text


def test_text_encoder_comparison_runs_and_tabulates(tmp_path):
    from benchmarks.text_encoder import main, table

    assert main(["--out", str(tmp_path), "--quick", "--modes", "only", "--timing-rounds", "1", "--timing-steps", "2"]) == 0
    rows = json.loads((tmp_path / "text_encoder.json").read_text())["rows"]
    assert [row["mode"] for row in rows] == ["only"] and rows[0]["steps"] == 2 and rows[0]["layers"] > 0
    assert "text encoder only" in table(rows) and rows[0]["step_s"] > 0 and "interleaved" in table(rows)
