"""Prompt files: every bad input fails with a message naming the entry and the field."""

import json

import pytest
from support.prompt_files import load_error

from loba.errors import SpecError
from loba.prompts import load_prompt_file

# --- bad input: every message names the entry and the field --------------------------------------

@pytest.mark.parametrize("text, entry, field", [
    ('[[prompts]]\npositive = "x"\n', "prompts[0]", "target"),
    ('[[prompts]]\ntarget = ""\n', "prompts[0]", "target"),
    ('[[targets]]\npositive = "x"\n', "targets[0]", "target_class"),
    ('[[prompts]]\ntarget = "a"\n[[prompts]]\ntarget = "b"\naction = "remove"\n', "prompts[1]", "action"),
    ('[[prompts]]\ntarget = "a"\nresolution = 500\n', "prompts[0]", "resolution"),
    ('[[prompts]]\ntarget = "a"\nresolution = [512, 512, 512]\n', "prompts[0]", "resolution"),
    ('[[prompts]]\ntarget = "a"\nresolution = "512"\n', "prompts[0]", "resolution"),
    ('resolutions = [[512, 512], [500, 500]]\n[[targets]]\ntarget_class = "a"\npositive = "P"\n', "targets[0]", "resolutions[1]"),
    ('[[targets]]\ntarget_class = "a"\n', "targets[0]", "positive"),
    ('[[targets]]\ntarget_class = "a"\npositive = ""\nnegative = " "\n', "targets[0]", "positive"),
    ('[[prompts]]\ntarget = "a"\nbatch_size = 0\n', "prompts[0]", "batch_size"),
    ('[[prompts]]\ntarget = "a"\nguidance_scale = "2"\n', "prompts[0]", "guidance_scale"),
    ('[[prompts]]\ntarget = "a"\nweight = true\n', "prompts[0]", "weight"),
    ('[[targets]]\ntarget_class = "a"\npositive = "P"\nweight = "1"\n', "targets[0]", "weight"),
    ('[[targets]]\ntarget_class = "a"\npositive = "P"\nguidance_scale = [1]\n', "targets[0]", "guidance_scale"),
    ('[[prompts]]\ntarget = "a"\ndynamic_resolution = 1\n', "prompts[0]", "dynamic_resolution"),
    ('[[prompts]]\ntarget = "a"\nneutrals = []\n', "prompts[0]", "neutrals"),
    ('[[prompts]]\ntarget = "a"\nmultiplier = 0\n', "prompts[0]", "multiplier"),
    ('[[anchors]]\nweight = 1.0\n', "anchors[0]", "prompt"),
    ('[[anchors]]\nprompt = "a"\nweight = "x"\n', "anchors[0]", "weight"),
])
def test_bad_values(tmp_path, text, entry, field):
    message = load_error(tmp_path, text, entry, field)
    assert "must" in message or "missing" in message or "empty" in message or "need" in message or "unknown" in message


@pytest.mark.parametrize("text, entry, key", [
    ('[[prompts]]\ntarget = "a"\ntargte = "b"\n', "prompts[0]", "targte"),
    ('[[prompts]]\ntarget = "a"\nnegative = "b"\n', "prompts[0]", "negative"),
    ('[[targets]]\ntarget_class = "a"\npositive = "P"\naction = "erase"\n', "targets[0]", "action"),
    ('[[targets]]\ntarget_class = "a"\npositive = "P"\nnetwork_dim = 8\n', "targets[0]", "network_dim"),
    ('[[anchors]]\nprompt = "a"\nscale = 1\n', "anchors[0]", "scale"),
    ('guidence = 4.0\n[[prompts]]\ntarget = "a"\n', "prompts.toml", "guidence"),
    ('negative = "x"\n[[prompts]]\ntarget = "a"\n', "prompts.toml", "negative"),
    ('unconditional = "x"\n[[targets]]\ntarget_class = "a"\npositive = "P"\n', "prompts.toml", "unconditional"),
    ('guidance_scale = 2.0\n[slider]\n[[slider.targets]]\ntarget_class = "a"\npositive = "P"\n', "prompts.toml", "guidance_scale"),
    ('[slider]\nnetwork_dim = 4\n[[slider.targets]]\ntarget_class = "a"\npositive = "P"\n', "slider", "network_dim"),
    ('[slider]\ntarget_class = "a"\npositive = "P"\npostive = "Q"\n', "slider", "postive"),
    ('[[targets]]\ntarget = "a"\n[[targets]]\ntarget_class = "b"\npositive = "P"\n', "targets[1]", "target_class"),
])
def test_unknown_keys_are_named_with_the_known_ones(tmp_path, text, entry, key):
    message = load_error(tmp_path, text, entry, key)
    assert "unknown key" in message and "known keys:" in message


def test_unknown_key_message_lists_known_keys(tmp_path):
    message = load_error(tmp_path, '[[prompts]]\ntarget = "a"\nguidance = 4\n', "prompts[0]", "guidance")
    assert "guidance_scale" in message and "unconditional" in message


@pytest.mark.parametrize("text, entry, field", [
    ("", "prompts.toml", "prompts"),
    ('network_dim = 8\n', "prompts.toml", "prompts"),
    ("prompts = []\n", "prompts.toml", "prompts"),
    ("targets = []\n", "prompts.toml", "targets"),
    ('[[prompts]]\ntarget = "a"\n[[targets]]\ntarget_class = "b"\npositive = "P"\n', "prompts.toml", "targets"),
    ('prompts = ["cat"]\n', "prompts[0]", "entry"),
    ('anchors = 3\n[[prompts]]\ntarget = "a"\n', "prompts.toml", "anchors"),
    ('slider = 3\n', "prompts.toml", "slider"),
    ("[[prompts]\n", "prompts.toml", "file"),
])
def test_bad_file_structure(tmp_path, text, entry, field):
    load_error(tmp_path, text, entry, field)


def test_neutral_files_missing_or_empty(tmp_path):
    message = load_error(tmp_path, 'neutral_prompt_file = "nope.txt"\n[[targets]]\ntarget_class = "a"\npositive = "P"\n',
                         "prompts.toml", "neutral_prompt_file")
    assert "nope.txt" in message
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    load_error(tmp_path, '[[targets]]\ntarget_class = "a"\npositive = "P"\nprompt_file = "blank.txt"\n', "targets[0]", "prompt_file")


def test_bad_file_kinds(tmp_path):
    load_error(tmp_path, "target: a", "prompts.txt", "file", name="prompts.txt")
    load_error(tmp_path, "- [unclosed", "prompts.yaml", "file", name="prompts.yaml")  # p1atdev LECO YAML: must parse
    load_error(tmp_path, "just text", "prompts.yml", "file", name="prompts.yml")
    load_error(tmp_path, "[1, 2]", "prompts.json", "file", name="prompts.json")
    load_error(tmp_path, "{not json", "prompts.json", "file", name="prompts.json")
    with pytest.raises(SpecError, match="missing.toml, field 'file'"):
        load_prompt_file(tmp_path / "missing.toml")


def test_json_unknown_key_is_named(tmp_path):
    text = json.dumps({"targets": [{"target_class": "a", "positive": "P", "pole": "x"}]})
    load_error(tmp_path, text, "targets[0]", "pole", name="prompts.json")
