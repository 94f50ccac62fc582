"""One folder per run for its checkpoints, step sliders and loss log: <root>/<prefix>_<NNNNN>_/, the counter
counted like ComfyUI's file counters, so two runs never share files, not even with the same filename_prefix
or with prefixes that end alike (a/x/same and b/y/same keep their folders). Resume finds a run's checkpoints
by its prefix ("auto": the newest run of that prefix that has one) or by a checkpoint or run folder path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from .checkpoint import latest_checkpoint

_RUN = re.compile(r"^(?P<name>.+)_(?P<counter>\d{5,})_$")


def _split(prefix: str) -> tuple[str, str]:
    parent, _, name = prefix.strip("/").rpartition("/")
    return parent, name


def run_folders(root: Path, prefix: str) -> list[Path]:
    """The run folders of `prefix` (a checked relative name) under root, oldest counter first."""
    parent, name = _split(prefix)
    folder = Path(root) / parent
    if not folder.is_dir():
        return []
    runs = [(int(m["counter"]), path) for path in folder.iterdir()
            if path.is_dir() and (m := _RUN.match(path.name)) and m["name"] == name]
    return [path for _, path in sorted(runs)]


def new_run_folder(root: Path, prefix: str, at_least: int = 1) -> Path:
    """Create and return the next free run folder of `prefix`, its counter at least `at_least` (the slider's own
    counter, so slider x_00003_.safetensors and its run folder x_00003_ usually match). The exclusive mkdir is
    what reserves it: two processes never get the same folder."""
    parent, name = _split(prefix)
    existing = [int(_RUN.match(p.name)["counter"]) for p in run_folders(root, prefix)]
    counter = max([at_least, *(c + 1 for c in existing)])
    (Path(root) / parent).mkdir(parents=True, exist_ok=True)
    while True:
        candidate = Path(root) / parent / f"{name}_{counter:05}_"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            counter += 1


def latest_run_checkpoint(root: Path, prefix: str) -> Optional[Path]:
    """The latest checkpoint of the newest run of `prefix` that wrote one, or None."""
    for folder in reversed(run_folders(root, prefix)):
        found = latest_checkpoint(folder)
        if found is not None:
            return found
    return None


def run_folder_of(checkpoint: Path, root: Path) -> Optional[Path]:
    """The run folder under root that holds `checkpoint` (<run>/checkpoints/step-N.pt), or None for a file elsewhere."""
    run = Path(checkpoint).resolve().parent.parent
    try:
        run.relative_to(Path(root).resolve())
    except ValueError:
        return None
    return run if Path(checkpoint).resolve().parent.name == "checkpoints" and _RUN.match(run.name) else None
