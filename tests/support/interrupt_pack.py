"""A test-only ComfyUI custom node pack that makes an interrupt land exactly where a test asks: inside the Nth
progress-bar update that carries a preview image ("preview") or none ("progress").

`install(base)` copies this file as base/custom_nodes/loba_test_interrupts/__init__.py before the server starts.
The pack wraps the progress hook ComfyUI installs (comfy.utils.set_progress_bar_global_hook is called after custom
nodes load) and, on the planned update, raises the interrupt flag just before ComfyUI's own hook runs, so the hook's
throw_exception_if_processing_interrupted() raises InterruptProcessingException from inside the update, as a user's
cancel does when it arrives at that moment. The plan is base/interrupt_plan.json ({"kind": ..., "at": N}), read on
every update; the pack deletes it once used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

NODE_CLASS_MAPPINGS: dict = {}
PLAN_NAME = "interrupt_plan.json"


def install(base: Path) -> None:
    folder = Path(base) / "custom_nodes" / "loba_test_interrupts"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(__file__, folder / "__init__.py")


def plan(base: Path, kind: str, at: int) -> None:
    (Path(base) / PLAN_NAME).write_text(json.dumps({"kind": kind, "at": at, "seen": 0}))


def _wrap(hook):
    import comfy.model_management
    import folder_paths

    def planned_interrupt(value, total, preview_image, prompt_id=None, node_id=None):
        path = Path(folder_paths.base_path) / PLAN_NAME
        if path.is_file():
            wanted = json.loads(path.read_text())
            if wanted["kind"] == ("preview" if preview_image is not None else "progress"):
                wanted["seen"] += 1
                if wanted["seen"] >= wanted["at"]:
                    path.unlink()
                    comfy.model_management.interrupt_current_processing(True)
                else:
                    path.write_text(json.dumps(wanted))
        return hook(value, total, preview_image, prompt_id=prompt_id, node_id=node_id)

    return planned_interrupt


def _patch() -> None:
    import comfy.utils

    original = comfy.utils.set_progress_bar_global_hook
    if getattr(original, "loba_test", False):
        return

    def set_hook(function):
        original(_wrap(function) if function is not None else None)

    set_hook.loba_test = True
    comfy.utils.set_progress_bar_global_hook = set_hook


if __name__ != "support.interrupt_pack":  # imported by ComfyUI as a custom node pack, not by the tests
    _patch()
