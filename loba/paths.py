"""Names a user gives for files LOBA writes (a slider's filename_prefix, a run folder), checked piece by piece
before any work, so a name the file system refuses fails at once instead of after training.

A name is relative, '/'-separated, and every piece is one a file system on Linux, macOS and Windows accepts
with room left for what LOBA appends (the _00001_.safetensors counter and the temp-file suffix of an atomic write).
"""

from __future__ import annotations

import unicodedata

from .errors import ConfigError

# 255 bytes is the usual limit of one name; the slider file adds "_00001_.safetensors" (19) and its temp file a
# dot and ".loba-<pid>-<random>.tmp" (about 30), so a piece keeps well under it.
MAX_PIECE_BYTES = 200
MAX_NAME_CHARS = 1000
FORBIDDEN = set('<>:"|?*\\')  # refused by Windows (and a backslash is no separator on Linux)
RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
EXAMPLE = "e.g. 'loba/my_slider'"


def check_relative_name(text: str, field: str) -> str:
    """The name, stripped, when every piece of it is safe to create; ConfigError(field, fix) otherwise."""
    name = str(text or "").strip()
    if not name:
        raise ConfigError(field, f"is empty; give a relative name, {EXAMPLE}")
    if len(name) > MAX_NAME_CHARS:
        raise ConfigError(field, f"is {len(name)} characters long; keep it under {MAX_NAME_CHARS}, {EXAMPLE}")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ConfigError(field, f"'{name}' is an absolute path; give a name relative to the folder, {EXAMPLE}")
    for piece in name.split("/"):
        problem = piece_problem(piece)
        if problem:
            raise ConfigError(field, f"{problem}; {EXAMPLE}")
    return name


def piece_problem(piece: str) -> str | None:
    """Why one folder or file name cannot be used, or None."""
    shown = repr(piece) if len(piece) <= 40 else repr(piece[:40] + "...")
    if piece in ("", ".", ".."):
        return f"the folder name {shown} is not allowed (no empty, '.' or '..' pieces between the slashes)"
    bad = sorted({c for c in piece if c in FORBIDDEN or unicodedata.category(c) in ("Cc", "Cf", "Cs")})
    if bad:
        return f"{shown} holds the character(s) {', '.join(repr(c) for c in bad)}, which file names cannot hold"
    size = len(piece.encode("utf-8", "surrogatepass"))
    if size > MAX_PIECE_BYTES:
        return f"the name {shown} is {size} bytes long; each name between slashes may be at most {MAX_PIECE_BYTES}"
    if piece.endswith((" ", ".")) or piece.split(".")[0].upper() in RESERVED:
        return f"{shown} is not a portable file name (it ends in a space or dot, or is a reserved device name)"
    return None
