"""`python -m benchmarks.memory --family flux`: FLUX.1-dev's real architecture (counted on the meta device) and a
tiny run through the diffusers Flux backend reporting its peaks (no figure asserted against the 24 GB target here)."""

import json
import subprocess
import sys

import torch
from support.comfy import REPO_ROOT

from benchmarks.flux_architecture import text_encoder_bytes, transformer_config
from benchmarks.memory import parse_args, runs


def test_the_full_config_is_flux_dev_sized():
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        model = FluxTransformer2DModel(**transformer_config("full"))
    params = sum(p.numel() for p in model.parameters())
    assert 11.8e9 < params < 12.0e9, "FLUX.1-dev's transformer has 11.9 B parameters"
    assert 9.6e9 < text_encoder_bytes(torch.bfloat16) < 10.0e9  # T5-XXL encoder 4.76 B + CLIP-L 123 M, 2 bytes each


def test_flux_runs_use_the_diffusers_backend():
    args = parse_args(["--family", "flux", "--gradient-checkpointing", "--no-baseline", "--out", "x"])
    assert [r["backend"] for r in runs(args)] == ["comfy", "diffusers"]  # main() narrows flux to diffusers


def test_a_tiny_flux_run_reports_peaks(tmp_path):
    out = tmp_path / "memory.json"
    subprocess.run([sys.executable, "-m", "benchmarks.memory", "--family", "flux", "--size", "tiny", "--resolution", "64",
                    "--steps", "1", "--text-tokens", "8", "--gradient-checkpointing", "--no-baseline", "--out", str(out)],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    report = json.loads(out.read_text())
    assert report["family"] == "flux" and [r["backend"] for r in report["runs"]] == ["diffusers"]
    (run,) = report["runs"]
    assert "error" not in run, run
    assert run["steps_done"] == 1 and run["gradient_checkpointing"] and run["text_tokens"] == 8
    assert run["peak_bytes"] >= run["rss_after_build_bytes"] > run["weights_bytes"] > 0
    assert run["seconds_per_step"] > 0 and "targets_met" in run and set(run["targets_met"]) == {"peak_bytes"}
    assert run["allocator_peak_bytes"] >= run["allocator_loaded_bytes"] >= run["weights_bytes"]


def test_an_fp8_base_holds_its_linear_weights_in_one_byte(tmp_path):
    rows = {}
    for fp8 in (False, True):
        out = tmp_path / f"memory-{fp8}.json"
        subprocess.run([sys.executable, "-m", "benchmarks.memory", "--family", "flux", "--size", "tiny", "--resolution", "64",
                        "--steps", "1", "--text-tokens", "8", "--gradient-checkpointing", "--no-baseline",
                        "--no-allocator-trace", *(["--fp8-base"] if fp8 else []), "--out", str(out)],
                       cwd=REPO_ROOT, check=True, capture_output=True)
        (rows[fp8],) = json.loads(out.read_text())["runs"]
    assert rows[True]["fp8_base"] and not rows[False]["fp8_base"] and rows[True]["steps_done"] == 1
    assert rows[True]["weights_bytes"] < 0.6 * rows[False]["weights_bytes"], "bf16 linear weights at one byte each"
