"""Shared fixtures: tiny diffusers backends built offline; the ComfyUI fixtures (comfy, pack, toy) come
from tests/support as plugins, so a test names them as arguments without importing them."""

from __future__ import annotations

import pytest
import torch
from support.backends import make_backend
from support.tiny_models import tiny_tokenizer

pytest_plugins = ["support.comfy", "support.nodes"]


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Two-core machines: one intra-op thread keeps runs fast and CPU results bit-reproducible.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture
def sd1_backend(tokenizer):
    return make_backend(tokenizer, "sd1")


@pytest.fixture
def sdxl_backend(tokenizer):
    return make_backend(tokenizer, "sdxl")
