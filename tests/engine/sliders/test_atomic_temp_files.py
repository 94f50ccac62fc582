"""Temp files of atomic writes: LOBA's own naming, swept once their writer is gone, never one still being written."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from loba.sliders import atomic
from loba.sliders.atomic import atomic_write, atomic_write_bytes, is_temp_file, sweep_temp_files


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_write_leaves_no_temp_file_and_its_temp_names_carry_the_pid(tmp_path):
    seen = []

    def write(handle):
        seen.extend(os.listdir(tmp_path))
        handle.write(b"data")

    atomic_write(tmp_path / "slider.safetensors", write)
    (temp,) = seen
    assert temp.startswith(f".slider.safetensors.loba-{os.getpid()}-") and temp.endswith(".tmp") and is_temp_file(temp)
    assert os.listdir(tmp_path) == ["slider.safetensors"]


def test_stale_temp_files_of_dead_writers_are_swept_by_the_next_write(tmp_path):
    orphans = [tmp_path / f".step-000002.pt.loba-{dead_pid()}-abc123.tmp", tmp_path / f".x.safetensors.loba-{os.getpid()}-q.tmp"]
    old = tmp_path / ".slider_00001_.safetensors.k2j4h5g6.tmp"  # an older LOBA's mkstemp name
    for path in (*orphans, old):
        path.write_bytes(b"half a file")
    os.utime(old, (time.time() - atomic.STALE_SECONDS - 5,) * 2)
    kept = [tmp_path / "notes.tmp", tmp_path / ".other-tool.tmp", tmp_path / f".live.pt.loba-{os.getppid()}-z.tmp"]
    for path in kept:
        path.write_bytes(b"not ours, or its writer runs")
    atomic_write_bytes(tmp_path / "step-000004.pt", b"ok")
    assert sorted(os.listdir(tmp_path)) == sorted(["step-000004.pt", *(p.name for p in kept)])


def test_a_temp_file_this_process_is_writing_is_never_swept(tmp_path):
    swept = []
    atomic_write(tmp_path / "a.pt", lambda handle: swept.extend(sweep_temp_files(tmp_path)) or handle.write(b"1"))
    assert swept == [] and (tmp_path / "a.pt").read_bytes() == b"1"


def test_recursive_sweep_reaches_every_run_folder(tmp_path):
    deep = tmp_path / "a" / "x" / "same_00001_" / "checkpoints"
    deep.mkdir(parents=True)
    orphan = deep / f".step-000001.pt.loba-{dead_pid()}-r.tmp"
    orphan.write_bytes(b"")
    assert sweep_temp_files(tmp_path) == [] and orphan.exists()
    assert sweep_temp_files(tmp_path, recursive=True) == [orphan] and not orphan.exists()


@pytest.mark.parametrize("name", ["step-000001.pt", "slider_00001_.safetensors", "loss.csv", ".hidden", "x.tmp"])
def test_real_files_are_not_temp_files(name):
    assert not is_temp_file(name)
