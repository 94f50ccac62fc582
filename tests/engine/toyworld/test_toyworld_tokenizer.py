"""The toy model's tokenizer is the real CLIP BPE tokenizer (49408 tokens, CLIP's ids)."""

import json

import pytest
from support.comfy import COMFYUI

from loba.toyworld.model import BOS, EOS, clip_tokenizer


def test_real_clip_ids(tmp_path):
    tokenizer = clip_tokenizer(tmp_path)
    assert len(tokenizer) == 49408
    ids = tokenizer("a large blue triangle on a dark background").input_ids
    assert ids == [BOS, 320, 3638, 1746, 14615, 525, 320, 3144, 5994, EOS]  # CLIP ViT-L/14's ids for these words


def test_vocabulary_equals_the_one_comfyui_ships(tmp_path):
    clip_tokenizer(tmp_path)
    if COMFYUI is None:
        pytest.skip("NO ComfyUI found: the byte-for-byte vocabulary check needs its sd1_tokenizer (the ids test still ran)")
    shipped = COMFYUI / "comfy" / "sd1_tokenizer"
    assert json.loads((tmp_path / "vocab.json").read_text()) == json.loads((shipped / "vocab.json").read_text())
    ours = [line for line in (tmp_path / "merges.txt").read_text().splitlines()[1:] if line]
    theirs = [line for line in (shipped / "merges.txt").read_text().splitlines()[1:] if line]
    assert ours == theirs
