"""Finding the ComfyUI the tests, benchmarks and the example-workflow builder use (no pytest, no ComfyUI import)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout (devtools/ sits at its root)
COMFYUI_PATH_ENV = "COMFYUI_PATH"
DEFAULT_COMFYUI = Path("~/comfy/ComfyUI")  # comfy-cli's default workspace


def is_comfyui(path: Path) -> bool:
    """True for a ComfyUI work tree (comfy/sd.py and main.py)."""
    return (path / "comfy" / "sd.py").is_file() and (path / "main.py").is_file()


def find_comfyui(repo_root: Path = REPO_ROOT) -> Optional[Path]:
    """$COMFYUI_PATH when set (None if it is not a ComfyUI); else the ComfyUI that encloses this repo
    (repo at ComfyUI/custom_nodes/<pack>, or one folder deeper); else ~/comfy/ComfyUI; else None."""
    env = os.environ.get(COMFYUI_PATH_ENV)
    if env:
        path = Path(env).expanduser()
        return path.resolve() if is_comfyui(path) else None
    candidates = [parent for index, parent in enumerate(repo_root.resolve().parents) if index in (1, 2)]
    candidates.append(DEFAULT_COMFYUI.expanduser())
    return next((path.resolve() for path in candidates if is_comfyui(path)), None)
