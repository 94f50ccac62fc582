"""The memory benchmark builds SDXL's real architecture and reports every figure the memory issue asks for
(no figure is asserted against a target here: these machines are shared; the numbers come from
`python -m benchmarks.memory`)."""

import json
import math
import subprocess
import sys

import pytest
import torch
from support.comfy import REPO_ROOT

from benchmarks import peer_sdscripts_xl
from benchmarks.memory import parse_args, run_peer, run_sd_scripts_peer, runs, table, with_totals
from benchmarks.sdxl_architecture import comfy_unet_config, diffusers_unet_config, text_encoder_bytes


def test_the_comfy_config_is_the_one_comfyui_detects_for_the_diffusers_sdxl_unet(comfy):
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**diffusers_unet_config("full"))
    params = sum(p.numel() for p in unet.parameters())
    assert 2.5e9 < params < 2.7e9, "SDXL's UNet has 2.57 B parameters"
    detected = comfy.model_detection.unet_config_from_diffusers_unet(unet.state_dict(), torch.bfloat16)
    assert detected == comfy_unet_config("full", torch.bfloat16)


def test_the_real_text_encoders_are_counted():
    assert 1.6e9 < text_encoder_bytes(torch.bfloat16) < 1.7e9  # CLIP-L 123 M + bigG 695 M parameters, 2 bytes each


def test_checkpointed_runs_come_with_the_same_runs_without_it():
    made = runs(parse_args(["--gradient-checkpointing", "--baseline-resolution", "512", "--out", "x"]))
    assert [(r["backend"], r["gradient_checkpointing"], r["resolution"]) for r in made] == [
        ("comfy", True, 1024), ("diffusers", True, 1024), ("comfy", False, 512), ("diffusers", False, 512)]
    assert all(not r["gradient_checkpointing"] for r in runs(parse_args(["--out", "x"])))


def test_totals_add_the_text_encoders_and_check_the_targets():
    run = {"backend": "comfy", "gradient_checkpointing": True, "resolution": 1024, "trajectory_cache": 1, "weights_bytes": 5e9,
           "peak_bytes": 8e9, "peak_over_weights_bytes": 3e9, "rss_after_build_bytes": 6e9, "seconds": 1.0}
    total = with_totals(run, int(1.6e9))
    assert total["whole_run_bytes"] == 9.6e9 and total["peak_over_loaded_bytes"] == 2e9
    assert total["targets_met"] == {"peak_over_weights_bytes": True, "whole_run_bytes": True}
    traced = with_totals({**run, "allocator_peak_bytes": 11e9, "allocator_peak_over_weights_bytes": 6e9}, int(1.6e9))
    assert traced["allocator_whole_run_bytes"] == 12.6e9
    assert traced["targets_met"] == {"peak_over_weights_bytes": True, "whole_run_bytes": True,
                                     "allocator_peak_over_weights_bytes": False, "allocator_whole_run_bytes": False}
    assert "6.00" in table([traced]) and "12.60" in table([traced])
    assert "9.60" in table([total]) and "failed: boom" in table([{**run, "error": "boom"}])


@pytest.mark.usefixtures("comfy")
def test_a_tiny_run_through_both_backends_reports_peaks(tmp_path):
    out = tmp_path / "memory.json"
    subprocess.run([sys.executable, "-m", "benchmarks.memory", "--size", "tiny", "--resolution", "64", "--steps", "1",
                    "--gradient-checkpointing", "--no-baseline", "--out", str(out)], cwd=REPO_ROOT, check=True,
                   capture_output=True)
    report = json.loads(out.read_text())
    assert [r["backend"] for r in report["runs"]] == ["comfy", "diffusers"]
    for run in report["runs"]:
        assert "error" not in run, run
        assert run["steps_done"] == 1 and run["gradient_checkpointing"] and run["trajectory_cache"] == 1
        assert run["peak_bytes"] >= run["rss_after_build_bytes"] > run["weights_bytes"] > 0
        assert run["peak_over_weights_bytes"] == run["peak_bytes"] - run["weights_bytes"]
        # The allocator counts the weights (built inside the trace) and what training adds, never less.
        assert run["allocator_peak_bytes"] >= run["allocator_loaded_bytes"] >= run["weights_bytes"]
        assert run["allocator_peak_over_weights_bytes"] == run["allocator_peak_bytes"] - run["weights_bytes"]
        assert set(run["allocator_phase_peaks_bytes"]) >= {"denoise", "teachers", "student_forward", "backward", "optimizer"}
        assert run["traced_seconds"] > 0, "the allocator's figures come from a second, traced run"
    assert "comfy" in report["table"] and "diffusers" in report["table"]


def test_a_peer_that_cannot_run_is_a_failed_row_of_the_table(tmp_path):
    args = parse_args(["--peer", str(tmp_path / "no-leco-here"), "--size", "tiny", "--resolution", "64", "--steps", "1",
                       "--out", "x"])
    row = run_peer(args, tmp_path)
    assert row["backend"] == "LECO" and not row["gradient_checkpointing"] and "error" in row
    assert "LECO" in table([with_totals(row, 0)]) and "failed" in table([row])


def test_an_sd_scripts_peer_that_cannot_run_is_a_failed_row_of_the_table(tmp_path):
    args = parse_args(["--peer-sd-scripts", str(tmp_path / "no-sd-scripts-here"), "--gradient-checkpointing",
                       "--resolution", "64", "--steps", "1", "--out", "x"])
    row = run_sd_scripts_peer(args, tmp_path)
    assert row["backend"] == "sd-scripts" and row["gradient_checkpointing"] and "error" in row
    assert "sd-scripts" in table([with_totals(row, 0)]) and "failed" in table([row])


def test_sd_scripts_is_given_loba_s_settings_in_its_own_arguments(tmp_path):
    args = peer_sdscripts_xl.parse_args(["--sd-scripts", "x", "--resolution", "1024", "--rank", "16", "--steps", "2",
                                         "--denoising-steps", "2", "--gradient-checkpointing", "--out", "y"])
    line = peer_sdscripts_xl.command_line(args, tmp_path)
    value = {key: line[i + 1] for i, key in enumerate(line) if key.startswith("--") and i + 1 < len(line)}
    assert value["--network_dim"] == "16" and value["--network_alpha"] == "1" and value["--mixed_precision"] == "bf16"
    assert value["--max_train_steps"] == "2" and value["--max_denoising_steps"] == "2"
    assert value["--optimizer_type"] == "AdamW" and value["--learning_rate"] == "1e-4"
    assert line[-1] == "--gradient_checkpointing"
    prompts = (tmp_path / "prompts.toml").read_text()
    assert 'action = "enhance"' in prompts and "resolution = 1024" in prompts


@pytest.mark.usefixtures("comfy")
def test_fp8_weights_train_through_both_backends_at_one_byte_per_weight(tmp_path):
    """ComfyUI as its loader's weight_dtype fp8_e4m3fn gives them (manual cast), diffusers through fp8_base."""
    rows = {}
    for fp8 in (False, True):
        out = tmp_path / f"memory-{fp8}.json"
        subprocess.run([sys.executable, "-m", "benchmarks.memory", "--size", "tiny", "--resolution", "64", "--steps", "1",
                        "--gradient-checkpointing", "--no-baseline", "--no-allocator-trace", *(["--fp8-base"] if fp8 else []),
                        "--out", str(out)], cwd=REPO_ROOT, check=True, capture_output=True)
        rows[fp8] = {r["backend"]: r for r in json.loads(out.read_text())["runs"]}
    for backend in ("comfy", "diffusers"):
        plain, fp8 = rows[False][backend], rows[True][backend]
        assert "error" not in fp8, fp8
        assert fp8["fp8_base"] and fp8["steps_done"] == 1 and all(math.isfinite(v) for v in fp8["losses"])
        assert fp8["weights_bytes"] < 0.6 * plain["weights_bytes"], backend
