"""What the benchmark scripts share: the repository root, the toy model folder, and the two trainers' command lines."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_model() -> Path:
    folder = Path.home() / ".cache" / "loba" / "toyworld-diffusers"
    if not (folder / "model_index.json").is_file():
        subprocess.run([sys.executable, "-m", "loba.cli", "toyworld", "export-diffusers", str(folder)], cwd=REPO, check=True)
    return folder


def run_json(command: list[str], out: Path, env: dict) -> dict:
    subprocess.run(command, cwd=REPO, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def settings_args(s: argparse.Namespace) -> list[str]:
    return ["--rank", str(s.rank), "--alpha", str(s.alpha), "--lr", str(s.lr), "--denoise-steps", str(s.denoise_steps),
            "--seed", str(s.seed), "--threads", str(s.threads)]


def loba_command(s, model: Path, out: Path, steps: int, cache: int, extra: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", "benchmarks.loba_run", "--model", str(model), "--out", str(out), "--steps", str(steps),
            "--cache", str(cache), "--refresh", str(s.refresh), "--denoise-cfg", "3", "--preset", s.preset,
            *settings_args(s), *extra]


def peer_command(s, model: Path, out: Path, steps: int, prompts: Path, extra: list[str] = ()) -> list[str]:
    return [s.peer_python, str(REPO / "benchmarks" / "peer_leco.py"), "--leco", str(s.peer), "--model", str(model),
            "--out", str(out), "--steps", str(steps), "--prompt-yaml", str(prompts), "--method", s.peer_method,
            *settings_args(s), *extra]
