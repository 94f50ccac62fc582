"""One checkpoint folder per run, found again by resume."""

from __future__ import annotations

import os

from loba.train.checkpoint import latest_checkpoint, list_checkpoints
from loba.train.run_folders import latest_run_checkpoint, new_run_folder, run_folder_of, run_folders


def checkpoint(folder, step):
    path = folder / "checkpoints" / f"step-{step:06d}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_runs_with_the_same_or_alike_prefixes_get_their_own_folders(tmp_path):
    made = [new_run_folder(tmp_path, p) for p in ("a/x/same", "b/y/same", "a/x/same", "same")]
    assert [str(p.relative_to(tmp_path)) for p in made] == ["a/x/same_00001_", "b/y/same_00001_", "a/x/same_00002_",
                                                            "same_00001_"]
    assert new_run_folder(tmp_path, "a/x/same", at_least=7).name == "same_00007_", "follows the slider's counter"
    (tmp_path / "a" / "x" / "same_00008_").mkdir()  # taken meanwhile (another process): the next one
    assert new_run_folder(tmp_path, "a/x/same", at_least=8).name == "same_00009_"
    assert [p.name for p in run_folders(tmp_path, "a/x/same")] == ["same_00001_", "same_00002_", "same_00007_",
                                                                   "same_00008_", "same_00009_"]
    assert run_folders(tmp_path, "a/x/sam") == [] and run_folders(tmp_path, "nothing/here") == []


def test_resume_auto_takes_the_latest_checkpoint_of_the_newest_run_that_has_one(tmp_path):
    first, second, third = (new_run_folder(tmp_path, "loba/s") for _ in range(3))
    checkpoint(first, 2), checkpoint(first, 4)
    checkpoint(second, 2), checkpoint(second, 10), checkpoint(second, 9)
    (second / "checkpoints" / f".step-000012.pt.loba-{os.getpid()}-x.tmp").write_bytes(b"")  # never a checkpoint
    assert latest_run_checkpoint(tmp_path, "loba/s") == second / "checkpoints" / "step-000010.pt"  # third has none
    assert [p.name for p in list_checkpoints(second)] == ["step-000002.pt", "step-000009.pt", "step-000010.pt"]
    assert latest_checkpoint(third) is None and latest_run_checkpoint(tmp_path, "other") is None


def test_a_checkpoint_knows_its_run_folder(tmp_path):
    run = new_run_folder(tmp_path / "root", "loba/s")
    assert run_folder_of(checkpoint(run, 3), tmp_path / "root") == run
    assert run_folder_of(checkpoint(tmp_path / "elsewhere_00001_", 3), tmp_path / "root") is None
