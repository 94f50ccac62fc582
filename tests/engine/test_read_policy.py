"""ReadPolicy: real paths (symlinks and '..' resolved) checked against the allowed roots; None roots = anything."""

import pytest

from loba.read_policy import UNRESTRICTED, PathRefused, ReadPolicy


@pytest.fixture
def folders(tmp_path):
    inside, outside = tmp_path / "input", tmp_path / "secret"
    inside.mkdir()
    outside.mkdir()
    (outside / "key.txt").write_text("secret")
    (inside / "ok.txt").write_text("fine")
    return inside, outside


def test_a_file_inside_a_root_resolves(folders):
    inside, _ = folders
    policy = ReadPolicy.inside([inside], "the input folder")
    assert policy.resolve(inside / "sub" / ".." / "ok.txt") == (inside / "ok.txt").resolve()


@pytest.mark.parametrize("name", ["../secret/key.txt", "sub/../../secret/key.txt"])
def test_dot_dot_cannot_leave_the_root(folders, name):
    inside, _ = folders
    with pytest.raises(PathRefused, match="is outside the input folder"):
        ReadPolicy.inside([inside], "the input folder").resolve(inside / name)


def test_absolute_paths_and_symlinks_out_are_refused(folders):
    inside, outside = folders
    (inside / "link.txt").symlink_to(outside / "key.txt")
    (inside / "linked_dir").symlink_to(outside, target_is_directory=True)
    policy = ReadPolicy.inside([inside], "the input folder")
    for path in (outside / "key.txt", inside / "link.txt", inside / "linked_dir" / "key.txt"):
        with pytest.raises(PathRefused):
            policy.resolve(path)


def test_a_sibling_folder_sharing_the_prefix_is_outside(tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "input2").mkdir()
    with pytest.raises(PathRefused):
        ReadPolicy.inside([tmp_path / "input"], "x").resolve(tmp_path / "input2" / "a.txt")


def test_a_symlinked_root_still_admits_its_files(folders, tmp_path):
    inside, _ = folders
    (tmp_path / "alias").symlink_to(inside, target_is_directory=True)
    policy = ReadPolicy.inside([tmp_path / "alias"], "the input folder")
    assert policy.resolve(inside / "ok.txt") == (inside / "ok.txt").resolve()


def test_unrestricted_reads_anything(folders):
    _, outside = folders
    assert UNRESTRICTED.resolve(outside / "key.txt") == (outside / "key.txt").resolve()
