"""Headless Debian Chromium driven by Playwright against a real ComfyUI server with the pack and its frontend.

scripts/test.sh installs Chromium with apt-get when it is missing (scripts/browser-deps.sh) and the venv gets
playwright from requirements-test.txt. Playwright's own browser downloads are never used: the system Chromium
is launched by path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from support.comfy import REPO_ROOT

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("LOBA_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts")) / "browser"
# Errors the stock frontend logs on an offline machine whatever the pack does (remote fonts, release notes, ...).
BASELINE_ERROR_MARKERS = ("ERR_NAME_NOT_RESOLVED", "ERR_INTERNET_DISCONNECTED", "status of 404")


def chromium_path() -> Optional[str]:
    for candidate in (os.environ.get("LOBA_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def browser_skip_reason() -> Optional[str]:
    """None when a browser test can run; else the one loud reason line."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "NO playwright in this venv (requirements-test.txt installs it): browser tests skipped"
    if chromium_path() is None:
        return "NO Chromium (/usr/bin/chromium; scripts/browser-deps.sh installs it with apt-get): browser tests skipped"
    return None


def is_baseline_error(text: str) -> bool:
    return any(marker in text for marker in BASELINE_ERROR_MARKERS)


APP_READY = "() => !!(window.app && window.app.graph && window.LiteGraph && LiteGraph.registered_node_types['LOBA_TrainSlider'])"
