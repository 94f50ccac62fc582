"""What the nodes may read: ComfyUI's input folder (and the user folder where ComfyUI serves it anyway), and
checkpoints only from LOBA's checkpoint folder. A graph may come from anyone who reaches the server, and what
it reads can come back over HTTP (slider metadata), so every node read goes through these policies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import folder_paths

from ..loba.read_policy import PathRefused, ReadPolicy
from ..loba.train.checkpoint import latest_checkpoint
from .node_errors import fail

CHECKPOINT_FOLDER = "loba_checkpoints"


def input_folder() -> Path:
    return Path(folder_paths.get_input_directory())


def input_read_policy() -> ReadPolicy:
    """The input folder; with one user (ComfyUI's default), also that user's folder, which ComfyUI serves to
    them over /userdata. With --multi-user a node cannot know who queued it, so no user folder."""
    from comfy.cli_args import args

    roots = [folder_paths.get_input_directory()]
    where = "ComfyUI's input folder"
    if not getattr(args, "multi_user", False):
        roots.append(os.path.join(folder_paths.get_user_directory(), "default"))
        where += " or the user folder (user/default)"
    return ReadPolicy.inside(roots, where)


def checkpoint_root() -> Path:
    """Every run's checkpoint folder lies under this one (output/loba_checkpoints)."""
    return Path(folder_paths.get_output_directory()) / CHECKPOINT_FOLDER


def resume_checkpoint(text: str, node: str, field: str = "resume_file") -> Optional[Path]:
    """A checkpoint file or run folder to resume from: relative to the output folder or absolute, and inside LOBA's
    checkpoint folder (a checkpoint is unpickled, restricted to tensors, but still nothing a graph should point
    anywhere). A folder stands for its newest checkpoint."""
    if not text.strip():
        return None
    path = Path(text.strip()).expanduser()
    path = path if path.is_absolute() else Path(folder_paths.get_output_directory()) / path
    policy = ReadPolicy.inside([checkpoint_root()], f"LOBA's checkpoint folder (output/{CHECKPOINT_FOLDER})")
    try:
        real = policy.resolve(path)
    except PathRefused as error:
        raise fail(node, field, str(error)) from None
    if real.is_dir() and latest_checkpoint(real) is not None:
        return latest_checkpoint(real)
    if not real.is_file():
        raise fail(node, field, f"{path} does not exist; give 'auto' (this filename_prefix's latest checkpoint) or a "
                                f"checkpoint written by Train Slider (output/{CHECKPOINT_FOLDER}/<prefix>_NNNNN_/"
                                "checkpoints/step-NNNNNN.pt), absolute or relative to the output folder")
    return real
