"""In-ComfyUI overhead: the Train Slider node's seconds per step against the headless engine driving the
same ComfyUI MODEL/CLIP through the same backend, each measured as (T(long) - T(short)) / extra steps so
that set-up cancels out. Runs in a subprocess that imports the real ComfyUI ($COMFYUI_PATH or ~/comfy/ComfyUI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .common import REPO

SHORT, LONG = 10, 60


def comfy_overhead(s, env: dict) -> dict:
    comfy = Path(os.environ.get("COMFYUI_PATH", Path.home() / "comfy" / "ComfyUI"))
    out = Path(env.get("TMPDIR", "/tmp")) / f"loba-comfy-overhead-{os.getpid()}.json"
    subprocess.run([sys.executable, "-m", "benchmarks.comfy_overhead_run", str(comfy), str(out), str(SHORT), str(LONG),
                    str(s.rounds)], cwd=REPO, env=env, check=True)
    data = json.loads(out.read_text())
    node, engine = data["node_s_per_step"], data["engine_s_per_step"]
    return {"comfy_node_s_per_step": node, "comfy_engine_s_per_step": engine, "comfy_overhead": node / engine - 1,
            "comfy_runs": data["runs"]}
