"""Loading the node pack in-process the way ComfyUI's loader does, and running its nodes as the executor does.

ComfyUI imports a pack from its folder's __init__.py under a path-derived module name (so `import loba`
inside the pack would NOT find the engine) and calls comfy_entrypoint(); nodes run under
torch.inference_mode() with their hidden inputs set on a class clone. These helpers do exactly that.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
from support.comfy import REPO_ROOT

PACK_NAME = "loba_pack_under_test"


def import_pack(name: str = PACK_NAME, root: Path = REPO_ROOT) -> ModuleType:
    """The pack as ComfyUI imports it (call after ComfyUI is importable)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, root / "__init__.py", submodule_search_locations=[str(root)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def pack_nodes(pack: ModuleType) -> dict[str, type]:
    """node_id -> node class, through comfy_entrypoint as the loader calls it."""
    extension = asyncio.run(pack.comfy_entrypoint())
    classes = asyncio.run(extension.get_node_list())
    return {cls.GET_SCHEMA().node_id: cls for cls in classes}


def run_node(cls, hidden: dict | None = None, **inputs):
    """Execute like the executor: a class clone with hidden inputs, under inference mode. Returns the NodeOutput."""
    clone = cls.PREPARE_CLASS_CLONE(hidden or {"UNIQUE_ID": "1"})
    with torch.inference_mode():
        return clone.EXECUTE_NORMALIZED(**inputs)

