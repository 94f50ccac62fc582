"""read_checkpoint: every wrong file is a ConfigError('resume') naming the file and the fix, never a raw
EOFError/KeyError, and never PyTorch's advice to load with weights_only=False."""

import collections
import pickle

import pytest
import torch

from loba.errors import ConfigError
from loba.train.checkpoint import FORMAT, FORMAT_VERSION, read_checkpoint, write_checkpoint


class Payload:
    """A class a pickle would instantiate: what a crafted checkpoint could carry."""


def complete_state() -> dict:
    return {"step": 2, "network": {}, "optimizer": {}, "scheduler": {}, "scaler": {}, "generator": torch.zeros(4, dtype=torch.uint8),
            "config": {}, "prompts_fingerprint": "abc"}


def write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def cases(tmp_path):
    good = write_checkpoint(tmp_path / "good.pt", complete_state())
    missing = complete_state()
    del missing["optimizer"], missing["generator"]
    wrong = {**complete_state(), "step": "two"}
    return {
        "empty": (write_bytes(tmp_path / "empty.pt", b""), "is empty (0 bytes"),
        "truncated": (write_bytes(tmp_path / "cut.pt", good.read_bytes()[:40]), "is not a LOBA checkpoint: it"),
        "text": (write_bytes(tmp_path / "text.pt", b"hello, not a checkpoint"), "is not a LOBA checkpoint: it"),
        "a tensor": (torch.save(torch.ones(2), tmp_path / "tensor.pt") or tmp_path / "tensor.pt", "is not a LOBA checkpoint;"),
        "a foreign dict": (torch.save({"state_dict": {}}, tmp_path / "foreign.pt") or tmp_path / "foreign.pt",
                           "is not a LOBA checkpoint;"),
        "a pickle": (write_bytes(tmp_path / "pickle.pt", pickle.dumps(collections.OrderedDict(x=Payload()))),
                     "holds Python objects other than tensors"),
        "missing keys": (write_checkpoint(tmp_path / "missing.pt", missing), "incomplete LOBA checkpoint (no optimizer, generator)"),
        "wrong types": (write_checkpoint(tmp_path / "wrong.pt", wrong), "damaged LOBA checkpoint (step of the wrong type)"),
        "newer format": (_newer(tmp_path / "newer.pt"), f"newer than this LOBA reads ({FORMAT_VERSION})"),
        "a folder": ((tmp_path / "folder.pt").mkdir() or tmp_path / "folder.pt", "does not exist or is not a file"),
    }


def _newer(path):
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION + 1, **complete_state()}, path)
    return path


def test_every_wrong_checkpoint_gets_a_clear_message(tmp_path):
    for name, (path, problem) in cases(tmp_path).items():
        with pytest.raises(ConfigError) as caught:
            read_checkpoint(path)
        message = str(caught.value)
        assert caught.value.field == "resume" and str(path) in message and problem in message, (name, message)
        assert "weights_only" not in message and caught.value.__cause__ is None, name
        assert caught.value.__context__ is None or isinstance(caught.value.__context__, ConfigError), name


def test_a_complete_checkpoint_reads_back(tmp_path):
    state = read_checkpoint(write_checkpoint(tmp_path / "good.pt", complete_state()))
    assert state["step"] == 2 and state["format"] == FORMAT
