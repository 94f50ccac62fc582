"""The shell scripts that find and fetch ComfyUI for the tests. CI runs offline, so only these tests reach
the paths CI cannot: a fetch that succeeds (from a local stand-in for the ComfyUI repository), one that
hangs, and a COMFYUI_PATH that is set wrong."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TAG = (ROOT / "scripts" / "comfyui-version").read_text().strip()


def run_script(name: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"} | {"HOME": str(home)} | env
    return subprocess.run(["bash", str(ROOT / "scripts" / name)], capture_output=True, text=True, env=environ, timeout=60)


def fake_comfyui_repo(folder: Path, tag: str) -> str:
    """A git repository with the two files that make a ComfyUI work tree, tagged `tag`; returns its URL."""
    (folder / "comfy").mkdir(parents=True)
    (folder / "comfy" / "sd.py").write_text("")
    (folder / "main.py").write_text("")
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "c"], ["tag", tag]):
        subprocess.run(git + args, check=True)
    return f"file://{folder}"


def test_the_comfyui_tag_is_pinned_in_one_place():
    assert re.fullmatch(r"v\d+\.\d+\.\d+", TAG), TAG
    for script in ("test.sh", "fetch-comfyui.sh"):
        assert TAG not in (ROOT / "scripts" / script).read_text()  # they read scripts/comfyui-version


def test_fetch_clones_the_pinned_tag_into_the_default_workspace(tmp_path):
    url = fake_comfyui_repo(tmp_path / "upstream", TAG)
    done = run_script("fetch-comfyui.sh", tmp_path / "home", LOBA_COMFYUI_URL=url)
    dest = tmp_path / "home" / "comfy" / "ComfyUI"
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(dest) and (dest / "comfy" / "sd.py").is_file()
    found = run_script("find-comfyui.sh", tmp_path / "home")
    assert found.stdout.strip() == str(dest)


def test_a_hanging_fetch_gives_up_within_its_timeout_and_leaves_nothing(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text("#!/bin/sh\nexec sleep 30\n")  # a clone that never answers
    (bin_dir / "git").chmod(0o755)
    done = run_script("fetch-comfyui.sh", tmp_path / "home", PATH=f"{bin_dir}:{os.environ['PATH']}", LOBA_COMFYUI_FETCH_TIMEOUT="1")
    assert done.returncode == 1 and "at most 1s" in done.stderr
    assert list((tmp_path / "home" / "comfy").iterdir()) == []  # no half tree where find-comfyui.sh looks


def test_fetch_never_touches_an_existing_folder(tmp_path):
    dest = tmp_path / "home" / "comfy" / "ComfyUI"
    dest.mkdir(parents=True)
    (dest / "mine.txt").write_text("keep")
    done = run_script("fetch-comfyui.sh", tmp_path / "home", LOBA_COMFYUI_URL="file:///nonexistent")
    assert done.returncode == 1 and "not touching it" in done.stderr
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("setting", ["wrong", "right"])
def test_a_set_comfyui_path_is_the_only_candidate(tmp_path, setting):
    default = tmp_path / "home" / "comfy" / "ComfyUI"
    for tree in (default, tmp_path / "other"):
        (tree / "comfy").mkdir(parents=True)
        (tree / "comfy" / "sd.py").write_text("")
        (tree / "main.py").write_text("")
    path = tmp_path / ("nowhere" if setting == "wrong" else "other")
    found = run_script("find-comfyui.sh", tmp_path / "home", COMFYUI_PATH=str(path))
    # A wrong COMFYUI_PATH is reported (exit 1), never silently replaced by ~/comfy/ComfyUI.
    assert (found.returncode, found.stdout.strip()) == ((1, "") if setting == "wrong" else (0, str(path)))
