"""Which files LOBA may read on a user's behalf.

Inside ComfyUI a graph comes from whoever can reach the server, and what a prompt file reads ends up in the
slider's metadata, which ComfyUI serves back over HTTP: a node may read only inside the folders its host
shares anyway (ComfyUI's input folder, ...). The headless CLI reads whatever its own user names. The caller
decides by passing a policy; the engine never guesses which host it runs in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .errors import LobaError


class PathRefused(LobaError, ValueError):
    """A file outside the folders the read policy allows; the message names the folders."""


@dataclass(frozen=True)
class ReadPolicy:
    """roots None: any path (the CLI). Else only files whose real path lies inside one of `roots`."""

    roots: Optional[tuple[Path, ...]] = None
    where: str = ""  # the folders in words, for messages, e.g. "ComfyUI's input folder"

    @staticmethod
    def inside(roots: Sequence[Union[str, Path]], where: str) -> ReadPolicy:
        return ReadPolicy(tuple(Path(os.path.realpath(root)) for root in roots), where)

    def resolve(self, path: Union[str, Path]) -> Path:
        """The real path (symlinks and '..' resolved first, so neither can leave a root); raises PathRefused."""
        real = Path(os.path.realpath(Path(path).expanduser()))
        if self.roots is None:
            return real
        if any(real == root or root in real.parents for root in self.roots):
            return real
        folders = ", ".join(str(root) for root in self.roots)
        raise PathRefused(f"{path} is outside {self.where or 'the allowed folders'} ({folders}); "
                          "move or copy the file there")


UNRESTRICTED = ReadPolicy()
