"""Files a prompt file names (masks, neutral_prompt_file, prompt_file) and the file itself are read under the
caller's ReadPolicy; binary, huge and missing files are SpecErrors naming the field."""

import pytest
from PIL import Image
from support.prompt_files import write

from loba.errors import SpecError
from loba.prompts import load_prompt_file, prompt_set_from_dict
from loba.prompts.files import MAX_TEXT_BYTES
from loba.read_policy import ReadPolicy


@pytest.fixture
def folders(tmp_path):
    inside, outside = tmp_path / "input", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("the secret line\n")
    Image.new("L", (8, 8), 255).save(outside / "mask.png")
    (inside / "neutrals.txt").write_text("a photo\n")
    Image.new("L", (8, 8), 255).save(inside / "mask.png")
    return inside, outside, ReadPolicy.inside([inside], "ComfyUI's input folder")


def refused(data, folder, policy, field):
    with pytest.raises(SpecError) as caught:
        prompt_set_from_dict(data, folder, "toml", policy)
    assert caught.value.field == field and "is outside ComfyUI's input folder" in str(caught.value), str(caught.value)
    assert "the secret line" not in str(caught.value)


@pytest.mark.parametrize("key", ["neutral_prompt_file", "prompt_file"])
def test_neutral_files_outside_the_input_folder_are_refused(folders, key):
    inside, outside, policy = folders
    refused({"prompts": [{"target": "cat", key: str(outside / "secret.txt")}]}, inside, policy, key)
    refused({"prompts": [{"target": "cat", key: "../elsewhere/secret.txt"}]}, inside, policy, key)
    refused({key: "../elsewhere/secret.txt", "prompts": [{"target": "cat"}]}, inside, policy, key)  # shared


def test_masks_and_symlinks_out_are_refused(folders):
    inside, outside, policy = folders
    (inside / "link.png").symlink_to(outside / "mask.png")
    for name in (str(outside / "mask.png"), "../elsewhere/mask.png", "link.png"):
        refused({"prompts": [{"target": "cat", "mask": name}]}, inside, policy, "mask")


def test_files_inside_are_read_under_the_policy(folders):
    inside, _, policy = folders
    spec = prompt_set_from_dict({"prompts": [{"target": "cat", "neutral_prompt_file": "neutrals.txt", "mask": "mask.png"}]},
                                inside, "toml", policy)
    assert spec.pairs()[0].neutral == "a photo" and spec.pairs()[0].mask is not None


def test_the_prompt_file_itself_is_checked(folders):
    inside, outside, policy = folders
    path = write(outside, '[[prompts]]\ntarget = "cat"\n')
    with pytest.raises(SpecError, match="field 'file'.*is outside"):
        load_prompt_file(inside / ".." / "elsewhere" / path.name, policy)


def test_the_cli_policy_reads_what_its_user_names(folders):
    inside, outside, _ = folders
    spec = prompt_set_from_dict({"prompts": [{"target": "cat", "prompt_file": str(outside / "secret.txt")}]}, inside)
    assert spec.pairs()[0].neutral == "the secret line"


@pytest.mark.parametrize("content, problem", [(b"\xff\xfe\x00binary", "is not a UTF-8 text file"),
                                              (b"", "has no prompts")])
def test_binary_or_empty_neutral_files(tmp_path, content, problem):
    (tmp_path / "n.txt").write_bytes(content)
    with pytest.raises(SpecError, match=f"field 'prompt_file'.*{problem}"):
        prompt_set_from_dict({"prompts": [{"target": "cat", "prompt_file": "n.txt"}]}, tmp_path)


def test_binary_toml_huge_toml_and_folder(tmp_path):
    (tmp_path / "bin.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(SpecError, match="field 'file'.*not a UTF-8 text file"):
        load_prompt_file(tmp_path / "bin.toml")
    with open(tmp_path / "big.toml", "wb") as handle:
        handle.truncate(MAX_TEXT_BYTES + 1)
    with pytest.raises(SpecError, match="field 'file'.*bytes; a prompt file is text of at most"):
        load_prompt_file(tmp_path / "big.toml")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(SpecError, match="field 'file'.*not a regular file"):
        load_prompt_file(tmp_path / "dir.toml")
