"""Helpers for the prompt-file tests: write a TOML/JSON file and load it, or expect a named error."""

import textwrap

import pytest

from loba.errors import SpecError
from loba.prompts import load_prompt_file


def write(tmp_path, text, name="prompts.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path, text, name="prompts.toml"):
    return load_prompt_file(write(tmp_path, text, name))


def load_error(tmp_path, text, entry, field, name="prompts.toml"):
    with pytest.raises(SpecError) as caught:
        load(tmp_path, text, name)
    message = str(caught.value)
    assert (caught.value.entry, caught.value.field) == (entry, field), message
    assert message.startswith(f"{entry}, field '{field}'")
    return message


def table(pairs):
    return [(p.target, p.positive, p.unconditional, p.neutral, p.action, p.multiplier) for p in pairs]


