"""The time-to-effect and SDXL harnesses run and print what the speed issue asks for (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.comfy import REPO_ROOT

from benchmarks.effect import effect_table
from benchmarks.sdxl_run import parse_variant
from benchmarks.sdxl_speed import sdxl_table


def test_a_closed_form_run_saves_its_start_as_step_0_and_reports_the_truncation(tmp_path):
    out, snaps = tmp_path / "run.json", tmp_path / "snaps"
    override = json.dumps({"init": "closed_form", "max_denoising_steps": 4, "trajectory_cache": 0})
    folder = tmp_path / "toy"
    subprocess.run([sys.executable, "-m", "loba.cli", "toyworld", "export-diffusers", str(folder)], cwd=REPO_ROOT, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "benchmarks.loba_run", "--model", str(folder), "--out", str(out), "--steps", "2",
                    "--threads", "1", "--save-every", "2", "--save-dir", str(snaps), "--recipe", "erase-red",
                    "--override", override], cwd=REPO_ROOT, check=True, capture_output=True)
    data = json.loads(out.read_text())
    assert data["init"]["modules"] > 0 and 0 <= data["init"]["max_truncation_error"] < 1
    assert data["stamps"][0] >= data["init_seconds"] > 0
    assert sorted(p.name for p in snaps.iterdir()) == ["step-00000.safetensors", "step-00002.safetensors"]


def test_the_effect_table_prints_every_row_and_the_ratio():
    rows = [{"name": "closed form alone (instant slider)", "step": 0, "seconds": 0.1, "efficacy": 1.0, "preservation": 1.0,
             "time_to_effect_s": 0.1, "init": {"modules": 14, "seconds": 0.1, "max_truncation_error": 0.12,
                                               "mean_truncation_error": 0.05}},
            {"name": "LECO with LOBA's prompts", "step": 600, "seconds": 900.0, "efficacy": 0.5, "preservation": 0.9,
             "s_per_step": 1.5, "time_to_effect_s": None, "speedup_of_best_loba": 9000.0, "speedup_is_lower_bound": True}]
    text = effect_table({"effect_rows": rows})
    assert "instant slider" in text and "never" in text and "9000.0x (lower bound" in text and "0.120" in text


def test_sdxl_variants_parse_and_unknown_words_are_refused():
    assert parse_variant("bf16+cache+gc") == {"dtype": "bf16", "cache": True, "gc": True, "compile": False,
                                              "channels_last": False, "single_step": False}
    with pytest.raises(SystemExit, match="variant"):
        parse_variant("bf16+turbo")
    text = sdxl_table({"resolution": 256, "reduced": True, "sdxl_rows": {
        "bf16": {"s_per_step": 3.0, "first_step_s": 5.0, "peak_mb": 6000, "loaded_mb": 5000, "device": "cpu"},
        "fp32": {"failed": "exit status 137"}}})
    assert "REDUCED" in text and "failed: exit status 137" in text and "3.00" in text
    assert "not run (--peer-sd-scripts DIR)" in text


def test_sd_scripts_rows_run_its_trainer_at_the_run_s_settings_and_read_like_loba_s():
    from types import SimpleNamespace

    from benchmarks.sdxl_speed import peer_command, peer_row

    s = SimpleNamespace(peer_sd_scripts="/sd-scripts", peer_sd_scripts_python="/py", resolution=256, rank=16, steps=3,
                        denoise_steps=2)
    line = peer_command(s, "sd-scripts+gc", Path("x.json"))
    assert line[2] == "benchmarks.peer_sdscripts_xl" and "--gradient-checkpointing" in line
    assert "--gradient-checkpointing" not in peer_command(s, "sd-scripts", Path("x.json"))
    value = {key: line[i + 1] for i, key in enumerate(line) if key.startswith("--") and i + 1 < len(line)}
    assert value["--resolution"] == "256" and value["--rank"] == "16" and value["--steps"] == "3"
    assert value["--denoising-steps"] == "2" and value["--python"] == "/py"
    row = peer_row({"step_seconds": [2.0, 1.0], "peak_bytes": 7e9, "rss_after_build_bytes": 6e9, "device": "cpu"})
    assert row["peak_mb"] == 7000 and row["loaded_mb"] == 6000
    text = sdxl_table({"resolution": 256, "reduced": True, "sdxl_rows": {"sd-scripts": {
        "s_per_step": 1.0, "first_step_s": 2.0, "peak_mb": 7000, "loaded_mb": 6000, "device": "cpu"}}})
    assert "sd-scripts' sdxl_train_leco.py" in text


def test_an_sdxl_run_reports_steps_and_memory_on_a_shrunk_architecture(tmp_path, monkeypatch):
    import benchmarks.sdxl_arch as arch
    from benchmarks import sdxl_run

    tiny = {**arch.SDXL_UNET, "block_out_channels": (32, 64, 64), "transformer_layers_per_block": (1, 1, 1),
            "attention_head_dim": (2, 4, 4), "norm_num_groups": 8, "layers_per_block": 1}
    monkeypatch.setattr(arch, "SDXL_UNET", tiny)
    out = tmp_path / "sdxl.json"
    monkeypatch.setattr(sys, "argv", ["sdxl_run", "--out", str(out), "--variant", "fp32+cache+gc", "--resolution", "128",
                                      "--steps", "2", "--denoise-steps", "3", "--rank", "2", "--device", "cpu"])
    sdxl_run.main()
    data = json.loads(out.read_text())
    assert len(data["step_seconds"]) == 2 and data["peak_mb"] >= data["loaded_mb"] > 0 and data["modules"] > 0
