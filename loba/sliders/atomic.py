"""Write files so that readers (ComfyUI's LoRA loader, a resuming run) never see half a file, and clean up the
temp files a killed writer leaves.

A write goes to `.NAME.loba-<pid>-<random>.tmp` beside NAME, is fsynced, then renamed onto NAME. A process killed
mid-write (kill -9, power loss) leaves that temp file behind; sweep_temp_files() removes such files once their
writer is gone (its pid is not running, or the file has not changed for STALE_SECONDS), never one this process is
still writing. atomic_write sweeps the folder it writes to, so the next save cleans up after a killed one.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

_DEFAULT_MODE = 0o644  # mkstemp makes 0600 files; other users of the model folder (a ComfyUI server) must read it
STALE_SECONDS = 15 * 60  # no writer leaves its temp file untouched this long (a write keeps changing it)
_TEMP = re.compile(r"^\..+\.loba-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")
# Temp files of LOBA before the pid was in the name (mkstemp's 8 characters), for the kinds of file LOBA writes.
_OLD_TEMP = re.compile(r"^\..+\.(safetensors|pt|csv|png|json|toml)\.[a-z0-9_]{8}\.tmp$")
_ACTIVE: set[str] = set()  # temp files this process is writing right now


def atomic_write(path: str | os.PathLike, write_fn: Callable[[BinaryIO], object]) -> Path:
    """Call write_fn(binary_file) on a temp file beside `path`, fsync it, then os.replace it onto `path`.

    On any exception (including KeyboardInterrupt) the temp file is removed and an existing `path`
    is left untouched. Stale temp files of killed writers in the same folder are removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(target.parent)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.loba-{os.getpid()}-", suffix=".tmp", dir=target.parent)
    _ACTIVE.add(os.path.abspath(temp_name))
    try:
        with os.fdopen(fd, "wb") as handle:
            write_fn(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, _mode_for(target))
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    finally:
        _ACTIVE.discard(os.path.abspath(temp_name))
    _fsync_folder(target.parent)
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def is_temp_file(path: str | os.PathLike) -> bool:
    """Whether `path` is named like one of LOBA's atomic-write temp files (never a slider or checkpoint)."""
    name = Path(path).name
    return bool(_TEMP.match(name) or _OLD_TEMP.match(name))


def sweep_temp_files(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Remove the stale LOBA temp files in `folder` (and its subfolders when recursive); returns what was removed."""
    removed = []
    for path in _candidates(Path(folder), recursive):
        if _is_stale(path):
            with contextlib.suppress(OSError):  # gone already, or not ours to remove: leave it
                path.unlink()
                removed.append(path)
    return removed


def _candidates(folder: Path, recursive: bool) -> Iterable[Path]:
    if not folder.is_dir():
        return []
    if not recursive:
        with contextlib.suppress(OSError):
            return [folder / name for name in os.listdir(folder) if is_temp_file(name)]
        return []
    return [Path(root) / name for root, _, names in os.walk(folder) for name in names if is_temp_file(name)]


def _is_stale(path: Path) -> bool:
    if os.path.abspath(path) in _ACTIVE:
        return False
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    match = _TEMP.match(path.name)
    if age > STALE_SECONDS:
        return True
    if match is None:  # an older LOBA's temp file: only its age tells
        return False
    pid = int(match["pid"])
    return pid == os.getpid() or not _process_running(pid)  # our own pid: not active, so left by a killed namesake


def _process_running(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate it on Windows: only the age rule applies there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: running, as another user
        return True
    return True


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)  # keep the permissions of the file being replaced
    except OSError:
        return _DEFAULT_MODE


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; folders cannot be opened this way on Windows.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
