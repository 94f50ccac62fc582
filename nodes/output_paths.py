"""Where the Train node writes: the slider's name checked piece by piece before any work, one checkpoint folder
per run under output/loba_checkpoints/<filename_prefix>_<NNNNN>_/, the checkpoint a resume continues from, and
the sweep of temp files that killed runs left in those folders.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..loba.errors import ConfigError
from ..loba.paths import check_relative_name
from ..loba.sliders.atomic import sweep_temp_files
from ..loba.train.run_folders import latest_run_checkpoint, new_run_folder, run_folder_of
from .host_files import checkpoint_root, resume_checkpoint
from .node_errors import fail

AUTO = "auto"
_COUNTER = re.compile(r"_(\d{5,})_\.safetensors$")


def checked_prefix(prefix: str, node: str, field: str = "filename_prefix") -> str:
    try:
        return check_relative_name(prefix, field)
    except ConfigError as exc:
        raise fail(node, field, str(exc).split(": ", 1)[-1]) from None


@dataclass
class RunPaths:
    resume: Optional[Path]  # the checkpoint to continue from
    out_dir: Optional[Path]  # the run folder (None without checkpoints)
    created: bool = False  # out_dir was made for this run (removed again if the run leaves it empty)

    def discard_if_empty(self) -> None:
        if self.created and self.out_dir is not None:
            with contextlib.suppress(OSError):  # not empty (or gone): keep it
                self.out_dir.rmdir()


def run_paths(prefix: str, resume_text: str, checkpoints: bool, slider_path: Path, node: str) -> RunPaths:
    """The resume checkpoint and run folder of a Train node run; a resumed run continues in its own folder."""
    root = checkpoint_root()
    resume = resolve_resume(resume_text, prefix, node)
    if not checkpoints:
        return RunPaths(resume, None)
    folder = None if resume is None else run_folder_of(resume, root)
    if folder is not None:
        return RunPaths(resume, folder)
    match = _COUNTER.search(slider_path.name)
    return RunPaths(resume, new_run_folder(root, prefix, int(match[1]) if match else 1), created=True)


def resolve_resume(text: str, prefix: str, node: str) -> Optional[Path]:
    """'' = no resume; 'auto' = the latest checkpoint of this prefix's newest run (none yet: a fresh start);
    otherwise a checkpoint file or run folder inside LOBA's checkpoint folder (host_files.resume_checkpoint)."""
    text = (text or "").strip()
    if text.lower() == AUTO:
        return latest_run_checkpoint(checkpoint_root(), prefix)
    return resume_checkpoint(text, node)


def sweep_stale_temp_files(*folders: Path) -> None:
    """Temp files of writers killed mid-write (kill -9), in the slider's folder and every run folder."""
    for folder in (*folders, checkpoint_root()):
        sweep_temp_files(folder, recursive=folder == checkpoint_root())
