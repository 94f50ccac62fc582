"""The files a prompt file names (neutral lists, masks), found next to it and read under a ReadPolicy.

Every read of the prompt loaders goes through here, so the policy (ComfyUI: only its input folder; the CLI:
anything) is enforced in one place, and an unreadable, binary or huge file is a SpecError naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..read_policy import UNRESTRICTED, PathRefused, ReadPolicy
from .checks import as_text

# Prompt files and neutral lists are a few KB; a bigger "text" file is a mistake (or /dev/zero), not prompts.
MAX_TEXT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class PromptFolder:
    """The folder relative paths in a prompt file start from, and the policy that limits what may be read."""

    base: Path
    policy: ReadPolicy = UNRESTRICTED

    def path(self, value: Any, entry: str, field: str) -> Path:
        """The real path of a file named in field `field` (relative to `base`), checked against the policy."""
        name = as_text(value, entry, field)
        require_name(name, entry, field)
        try:
            return self.policy.resolve(self.base / name)
        except PathRefused as error:
            raise SpecError(entry, field, str(error)) from None


def require_name(name: str, entry: str, field: str) -> None:
    if not name.strip() or "\x00" in name:
        raise SpecError(entry, field, f"{name!r} is not a file name; give the path of a file, e.g. neutrals.txt")


def read_text_file(path: Path, entry: str, field: str) -> str:
    """A small UTF-8 text file, or a SpecError saying why not (missing, a folder, binary, too big)."""
    try:
        if not path.is_file():
            raise SpecError(entry, field, f"{path} does not exist or is not a regular file")
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise SpecError(entry, field, f"{path} is {size:,} bytes; a prompt file is text of at most "
                                          f"{MAX_TEXT_BYTES:,} bytes")
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(entry, field, f"{path} is not a UTF-8 text file (byte {error.start} is not text); "
                                      "give a .toml/.txt file saved as UTF-8") from None
    except OSError as error:
        raise SpecError(entry, field, f"cannot read {path}: {error.strerror or error}") from None
